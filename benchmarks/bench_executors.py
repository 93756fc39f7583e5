"""The executor layer's overhead: the runs of the ``quick`` preset in this process, on the
process-pool fallback (the pool ``--jobs`` used before Dask) and on a local Dask cluster.

Each executor runs every run of the grid once (a sweep of a minute needs no repeats; the
machine's other load shows in the spread between ``make bench`` runs), timed from starting its
workers to the last result, cluster start and shutdown included; the data cache is filled
first. The table gives each wall time, its ratio to the in-process time, and checks that the
three produced the same numbers. ``BENCH_EXECUTORS_GRID`` names another preset, ``BENCH_SEEDS``
keeps its first seeds only, ``BENCH_JOBS`` sets the workers (default 2). Each row is printed as
soon as it is measured, with the machine's load average.
"""

from __future__ import annotations

import os
import time

from tinynormact.data import load_dataset
from tinynormact.experiments import PRESETS
from tinynormact.experiments.executors import InProcess, ProcessPool, open_executor
from tinynormact.experiments.report import format_table


def _timed(run_all) -> tuple[float, dict[str, dict]]:
    start = time.perf_counter()
    histories = run_all()
    return time.perf_counter() - start, histories


def main() -> None:
    grid = PRESETS[os.environ.get("BENCH_EXECUTORS_GRID", "quick")]
    if "BENCH_SEEDS" in os.environ:
        grid = grid.with_seeds(int(os.environ["BENCH_SEEDS"]))
    jobs = int(os.environ.get("BENCH_JOBS", "2"))
    specs = grid.runs()
    load_dataset(grid.dataset, **grid.dataset_options)

    def collect(executor) -> dict[str, dict]:
        return {spec.file_name: record["history"] for spec, record in executor.run(specs)}

    def on_dask() -> dict[str, dict]:
        with open_executor(jobs) as executor:
            return collect(executor)

    print(f"grid {grid.name!r}: {len(specs)} runs on {os.cpu_count()} CPUs", flush=True)
    header = ["executor", "wall s", "ratio to in-process", "same numbers", "load average before, after"]
    rows, reference = [], None
    for name, run_all in (
        ("in this process", lambda: collect(InProcess())),
        (f"process pool, {jobs} processes (the old --jobs)", lambda: collect(ProcessPool(jobs))),
        (f"local Dask cluster, {jobs} workers", on_dask),
    ):
        load_before = os.getloadavg()[0]
        seconds, histories = _timed(run_all)
        reference = reference or (seconds, histories)
        same = "yes" if histories == reference[1] else "NO"
        load = f"{load_before:.1f}, {os.getloadavg()[0]:.1f}"
        rows.append([name, f"{seconds:.1f}", f"{seconds / reference[0]:.2f}", same, load])
        print("  ", " | ".join(rows[-1]), flush=True)
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
