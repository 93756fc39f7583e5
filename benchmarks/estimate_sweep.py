"""Estimate a preset's CPU time from short runs of a sample of its grid (not a ``make bench``
benchmark: ``python -m benchmarks.estimate_sweep full [ACTIVATION ...]``).

For every (architecture, form) and each sampled activation (default: relu, tanh, gelu, mish,
from the cheapest to the most expensive to evaluate), one run of the preset's configuration is
timed in this process (CPU time, BLAS on one thread) at 1 and at 2 epochs: the difference is the
cost of an epoch, the rest the fixed cost (data, model, the evaluation before training). A full
run is estimated as fixed + epochs x per-epoch; the grid's total as the mean over the sample
times the number of runs; its wall time on W workers as total / W, plus one run for the tail.
Divergence, which ends a run early, is ignored (the estimate is an upper bound for it).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

from tinynormact.data import load_dataset
from tinynormact.experiments import PRESETS
from tinynormact.experiments.report import format_table
from tinynormact.experiments.runner import run_one


def _cpu_seconds(spec) -> float:
    start = time.process_time()
    run_one(spec)
    return time.process_time() - start


def main(argv: list[str]) -> int:
    name, sample = (argv[0] if argv else "full"), (argv[1:] or ["relu", "tanh", "gelu", "mish"])
    grid = PRESETS[name]
    load_dataset(grid.dataset, **grid.dataset_options)
    short = {
        epochs: dataclasses.replace(grid, activations=tuple(sample), seeds=(0,), epochs=epochs)
        for epochs in (1, 2)
    }
    rows, estimates = [], []
    for one, two in zip(short[1].runs(), short[2].runs(), strict=True):
        t1, t2 = _cpu_seconds(one), _cpu_seconds(two)
        per_epoch, fixed = t2 - t1, 2 * t1 - t2
        full = fixed + grid.epochs * per_epoch
        estimates.append(full)
        rows.append([one.setting, one.activation, one.form, f"{t1:.2f}", f"{t2:.2f}", f"{full:.0f}"])
    print(
        format_table(
            ["setting", "activation", "form", "1 epoch s", "2 epochs s", f"{grid.epochs} epochs s (est.)"],
            rows,
        )
    )
    runs = len(grid.runs())
    total = statistics.mean(estimates) * runs
    print(
        f"\n{name}: {runs} runs, about {total / 3600:.1f} CPU-hours "
        f"(mean of {len(estimates)} sampled runs x {runs})"
    )
    for workers in (1, 2, 16):
        wall = total / workers + max(estimates)
        print(
            f"  on {workers:2d} workers: about {wall / 3600:.2f} h of wall time "
            "(total / workers + the longest run)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
