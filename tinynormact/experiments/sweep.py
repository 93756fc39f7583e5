"""Running a grid into its sweep folder: only the runs the folder lacks, each written as it finishes.

``run_sweep`` checks the folder (``sweep_folder``), opens the executor (``executors``; an
unreachable scheduler fails before the folder is touched), fills the data cache once in this
process (so local workers do not all download the dataset at once), says how long the missing
runs should take (``estimate``: a few timed steps of each network shape), then submits them and
writes each record the moment it arrives, with a progress bar over all runs (in a log, where a
bar would be one long line, a line at every tenth of the runs instead). Ctrl-C stops the
workers; the runs written so far stay, and the outcome says "interrupted".
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tinynormact.data import DataSplits
from tinynormact.experiments.estimate import TIMED_STEPS, estimate_seconds
from tinynormact.experiments.executors import Executor, check_scheduler_address, open_executor
from tinynormact.experiments.grid import Grid, RunSpec
from tinynormact.experiments.runner import BLAS_THREADS
from tinynormact.experiments.sweep_folder import open_sweep_folder
from tinynormact.train import load_data, using_device

__all__ = ["MAX_RUNS_UNASKED", "SweepOutcome", "run_sweep"]

MAX_RUNS_UNASKED = 10_000  # a larger grid runs only when asked for (``yes``): likely a typo


@dataclass
class SweepOutcome:
    """``status`` "completed" or "interrupted"; ``runs``: the records in the folder, in grid
    order; ``executor``: where this session's runs ran; ``ran``: how many it ran."""

    status: str
    runs: list[dict[str, Any]]
    executor: str
    ran: int


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class ProgressLines:
    """Progress for a log (standard error not a terminal): ``notice`` gets a line each time
    another tenth of the ``total`` runs has finished, with the time this session has taken and
    the time left at its rate so far."""

    def __init__(self, total: int, initial: int, notice: Callable[[str], None]) -> None:
        self.total, self.initial, self.done = total, initial, initial
        self.notice = notice
        self.tenths = self._tenths()
        self.start = time.monotonic()

    def _tenths(self) -> int:
        return self.done * 10 // self.total

    def update(self) -> None:
        self.done += 1
        if self._tenths() == self.tenths:
            return
        self.tenths = self._tenths()
        elapsed = time.monotonic() - self.start
        line = f"{self.done} of {self.total} runs finished; {_duration(elapsed)} so far"
        if self.done < self.total:
            left = elapsed / (self.done - self.initial) * (self.total - self.done)
            line += f", about {_duration(left)} left"
        self.notice(line)

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def _estimate_line(todo: list[RunSpec], splits: DataSplits, executor: Executor) -> str:
    """The estimated time of the runs ``todo`` on ``executor`` (``estimate``), as a notice; an
    estimate that fails says why and the sweep goes on (its runs record their own failures)."""
    workers = max(executor.workers, 1)
    try:
        seconds = estimate_seconds(todo, splits, workers)
    except Exception as exc:  # advice only: the runs themselves report what is wrong
        return f"estimated time: not available (a timed step raised {type(exc).__name__}: {exc})"
    where = "1 worker" if workers == 1 else f"{workers} workers"
    return (
        f"estimated time: about {_duration(seconds)} on {where} at this machine's speed "
        f"({TIMED_STEPS} timed steps of each network shape; the progress shows the real rate)"
    )


def run_sweep(
    grid: Grid,
    out: str | Path,
    device: str = "cpu",
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    notice: Callable[[str], None] = _notice,
    yes: bool = False,
) -> SweepOutcome:
    """Run the runs of ``grid`` on ``device`` that the sweep folder ``out`` lacks, on ``jobs``
    local workers or the Dask cluster at ``scheduler``. An existing folder of the same grid is
    resumed (``notice`` says how many runs it holds); ``resume=True`` requires one; ``force``
    starts again. ``progress``: a progress bar over the runs (None: a bar on a terminal, else
    ``ProgressLines``). A grid of more than MAX_RUNS_UNASKED runs needs ``yes``; ``notice``
    says how many runs a sweep has and their estimated time (``estimate``) before it starts."""
    out = Path(out)
    check_scheduler_address(scheduler)
    if grid.size > MAX_RUNS_UNASKED and not yes:  # counted before building 10^6 configurations
        raise ValueError(
            f"grid {grid.name!r} has {grid.size} runs, more than {MAX_RUNS_UNASKED}; check its axes, "
            "or pass --yes to run them all"
        )
    specs = grid.runs(device)  # a bad grid fails here, before anything is written
    identity = {"grid": grid.to_dict(), "device": device, "blas_threads": BLAS_THREADS}
    folder, finished = open_sweep_folder(out, identity, specs, force=force, resume=resume, notice=notice)
    todo = [spec for spec in specs if spec.file_name not in finished]
    if finished:
        notice(f"resuming {out}: {len(finished)} of {len(specs)} runs already finished, {len(todo)} to run")
    elif len(specs) > 1:
        notice(f"{out}: {len(specs)} runs to run")
    status, description = "completed", "none (every run was finished)"
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(open_executor(jobs, scheduler, notice)) if todo else None
        with using_device(device):  # before the folder: a Ctrl-C here leaves nothing behind
            splits = load_data(specs[0].config)  # fills the data cache; image datasets as images
        if executor is not None:
            notice(_estimate_line(todo, splits, executor))
        folder.create()
        if executor is not None:
            description = executor.description
            if progress is None and not sys.stderr.isatty():
                bar = ProgressLines(len(specs), len(finished), notice)
            else:
                bar = tqdm(total=len(specs), initial=len(finished), unit="run", disable=progress is False)
            try:
                with bar:
                    for spec, record in executor.run(todo):
                        folder.write_run(spec, record)
                        finished[spec.file_name] = record
                        bar.update()
            except KeyboardInterrupt:
                status = "interrupted"
    runs = [finished[spec.file_name] for spec in specs if spec.file_name in finished]
    return SweepOutcome(status, runs, description, ran=len(runs) - (len(specs) - len(todo)))
