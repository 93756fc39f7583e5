"""The ``reproduce`` and ``sweep`` subcommands: a grid, where to run it, the summary and exit code.

``cli`` parses the arguments and calls ``run_grid_command``; this module decides the defaults
(the folder ``runs/<grid name>``; the device of TINYNORMACT_DEVICE, else cpu; as many local
workers as CPU cores on the CPU, one on a GPU)
and where the scheduler comes from: ``--scheduler``, else ``--jobs`` if given, else the
``TINYNORMACT_SCHEDULER`` variable, else local workers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tinynormact.engine import backend
from tinynormact.experiments.executors import SCHEDULER_VARIABLE, check_scheduler_address
from tinynormact.experiments.grid import Grid
from tinynormact.experiments.report import summary_text
from tinynormact.experiments.reproduce import reproduce

__all__ = ["run_grid_command"]


def run_grid_command(
    grid: Grid,
    out: Path | None,
    device: str | None,
    jobs: int | None,
    scheduler: str | None,
    force: bool,
    resume: bool,
) -> int:
    """Run ``grid`` into ``out`` and print its summary; 0 when every run finished, 1 when some
    failed (their reasons are in the report; running the command again retries them)."""
    if jobs is not None and scheduler is not None:
        raise ValueError("--jobs and --scheduler exclude each other: the cluster has its own workers")
    if scheduler is None and jobs is None:
        scheduler = os.environ.get(SCHEDULER_VARIABLE) or None
        try:
            check_scheduler_address(scheduler)
        except ValueError as exc:
            raise ValueError(f"the variable {SCHEDULER_VARIABLE}: {exc}") from None
    device = device or backend.get_device()
    if jobs is None:
        jobs = 1 if device != "cpu" else len(os.sched_getaffinity(0))
    out = out or Path("runs") / grid.name
    try:
        results = reproduce(
            grid, out, device=device, jobs=jobs, scheduler=scheduler, force=force, resume=resume
        )
    except KeyboardInterrupt:
        if not (out / "report.md").exists():  # stopped before any run was kept
            raise KeyboardInterrupt from None
        raise KeyboardInterrupt(
            f"the finished runs are kept and reported in {out}; run the same command again to finish"
        ) from None
    print(summary_text(results))
    print(f"\nreport: {out / 'report.md'} ({results['wall_time_s']:.0f} s)")
    failed = results["settings"]["failed"]
    if failed:
        print(
            f"{failed} run(s) failed (reasons in {out / 'report.md'}); "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
