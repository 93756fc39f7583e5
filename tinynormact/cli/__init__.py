"""The ``tinynormact`` command (also ``python -m tinynormact``).

Subcommands: ``reproduce`` (the paper's comparisons and a report), ``sweep`` (a grid file, the
same report), ``train`` (one configuration), ``theory`` (the gains table), ``propagate`` (signal
propagation at initialization), ``plot`` (redraw a report's figures) and ``data download``
(fetch a dataset's archive). ``main(argv)`` returns the exit code (EXIT_CODES): 0 on success, 1
when training diverged, 2 for a usage or input error (one line on stderr, no traceback; a run
folder in use by another process included), 3 for an unexpected error (one line on stderr
naming a log file that holds the traceback), 130 after Ctrl-C.

Each subcommand imports what it needs when it runs (or when its options are built, for its
help): ``tinynormact --help`` loads no array library, and only the commands that draw load
Matplotlib, only the sweeps Dask, only ``data download`` the downloader.
"""

from __future__ import annotations

from tinynormact.cli.common import EXIT_CODES
from tinynormact.cli.options import build_parser
from tinynormact.cli.program import main

__all__ = ["EXIT_CODES", "build_parser", "main"]
