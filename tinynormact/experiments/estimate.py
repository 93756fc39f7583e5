"""How long a sweep will take, said before it starts: a few timed steps of each network shape.

``estimate_seconds`` builds the trainer of the first run of every network shape (architecture,
depth, width) the sweep has to run, times ``TIMED_STEPS`` optimizer steps after one warm-up step,
with the BLAS threads every run gets, takes the fastest (the least disturbed by other work on
the machine), and sums over the runs: each run's steps (epochs x batches
per epoch) at its shape's step time, plus its evaluations (a forward pass over both splits every
epoch, counted as a third of a training step per example: a backward pass costs about two
forwards). Activation, form, learning rate and seed are not timed apart, and the time is this
machine's: the figure is rough, and the progress bar's rate replaces it once runs finish (how
close it came on the presets: docs/run-folders.md).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from threadpoolctl import threadpool_limits

from tinynormact.data import DataSplits
from tinynormact.experiments.grid import RunSpec
from tinynormact.experiments.runner import BLAS_THREADS
from tinynormact.train import Trainer, TrainingDiverged, using_device

__all__ = ["TIMED_STEPS", "estimate_seconds", "step_seconds"]

TIMED_STEPS = 3
_FORWARD_SHARE = 1 / 3  # of a training step's time per example: forward 1, backward about 2


def step_seconds(spec: RunSpec, splits: DataSplits) -> tuple[float, Trainer]:
    """The fastest of ``TIMED_STEPS`` optimizer steps of ``spec``'s network (after one warm-up
    step), in seconds, and the trainer that took them. A run that diverges within them is timed
    on the steps it took, the diverging one included: its sweep run will stop there too."""
    config = spec.config
    with using_device(config.device, config.dtype), threadpool_limits(limits=BLAS_THREADS):
        trainer = Trainer(config, splits)
        first = list(itertools.islice(trainer.batches(), TIMED_STEPS + 1))  # fewer in a tiny set
        times = []
        for x, y in itertools.islice(itertools.cycle(first), TIMED_STEPS + 1):
            start = time.perf_counter()
            try:
                trainer.train_step(x, y)
            except TrainingDiverged:
                times.append(time.perf_counter() - start)
                break
            times.append(time.perf_counter() - start)
    return min(times[1:] or times), trainer


def estimate_seconds(specs: Sequence[RunSpec], splits: DataSplits, workers: int) -> float:
    """The estimated wall time of running ``specs`` on ``workers`` workers as fast as this
    machine, training each run's epochs and evaluating both splits after each (see the module
    docstring for what is and is not timed)."""
    shapes: dict[tuple[str, int, int], tuple[float, int]] = {}
    examples = len(splits.train) + len(splits.test)  # evaluated after every epoch
    total = 0.0
    for spec in specs:
        shape = (spec.architecture, spec.depth, spec.width)
        if shape not in shapes:
            seconds, trainer = step_seconds(spec, splits)
            shapes[shape] = seconds, len(trainer.loader)
        seconds, steps_per_epoch = shapes[shape]
        eval_steps = _FORWARD_SHARE * examples / spec.config.batch_size
        total += spec.config.epochs * (steps_per_epoch + eval_steps) * seconds
    return total / max(workers, 1)
