"""Speed and memory benchmarks (not tests). Run them all with ``make bench``.

Each ``bench_*.py`` module has a ``main()`` that measures the library against a reference run in
the same process and prints a table of ratios.
"""
