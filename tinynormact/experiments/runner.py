"""One run of a grid: train its configuration and turn the result into a JSON-ready record.

``run_one`` is what every executor runs, in this process or on a worker. Every run is seeded by
its configuration, and runs with its BLAS thread pools pinned to ``BLAS_THREADS`` (threadpoolctl;
a product summed by several threads can differ in its last bits from one summed by one), so its
numbers do not depend on where it runs or on the order in which runs finish; the record says
``blas_threads``. A run that diverges is recorded with status "diverged" (its history up to the divergence
and the message); a run that could not finish (its worker died too often, or it raised) is
recorded by ``failed_record`` with status "failed" and the reason.
"""

from __future__ import annotations

import math
import time
from typing import Any

from threadpoolctl import threadpool_limits

from tinynormact.experiments.grid import RunSpec, config_hash
from tinynormact.train import TrainingDiverged, TrainResult, train

__all__ = ["BLAS_THREADS", "NUMBERS", "coordinates", "failed_record", "run_one"]

BLAS_THREADS = 1  # every run, in this process or on any worker: the executor must not change numbers
NUMBERS = ("final_train_loss", "final_test_loss", "final_test_acc", "mean_train_loss", "seconds")


def coordinates(spec: RunSpec) -> dict[str, Any]:
    """What names a run in its record: its coordinates, setting, configuration and its hash."""
    return {
        "architecture": spec.setting,
        "activation": spec.activation,
        "form": spec.form,
        "seed": spec.seed,
        "width": spec.width,
        "depth": spec.depth,
        "lr": spec.lr,
        "config_hash": config_hash(spec.config),
        "config": spec.config.to_dict(),
        "blas_threads": BLAS_THREADS,
    }


def _summary(spec: RunSpec, result: TrainResult, seconds: float) -> dict[str, Any]:
    """The JSON-ready record of one run."""
    history = result.history
    completed = result.status == "completed"
    trained_losses = history["train_loss"][1:]  # epochs 1..E (epoch 0 is the untrained network)
    return {
        **coordinates(spec),
        "status": result.status,
        "message": result.message,
        "final_train_loss": history["train_loss"][-1] if completed else math.nan,
        "final_test_loss": history["test_loss"][-1] if completed else math.nan,
        "final_test_acc": history["test_acc"][-1] if completed else math.nan,
        # area under the train-loss curve per epoch: lower means faster convergence
        "mean_train_loss": sum(trained_losses) / len(trained_losses) if completed else math.nan,
        "epochs_to_target": result.epochs_to_target,
        "flags": result.flags,
        "seconds": seconds,
        "history": {key: values for key, values in history.items() if key != "seconds"},
    }


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run of the grid and return its record (diverged runs included)."""
    start = time.perf_counter()
    with threadpool_limits(limits=BLAS_THREADS):
        try:
            result = train(spec.config, progress=False)
        except TrainingDiverged as exc:
            result = exc.result
    return _summary(spec, result, time.perf_counter() - start)


def failed_record(spec: RunSpec, reason: str) -> dict[str, Any]:
    """The record of a run that did not finish: status "failed", ``reason`` as its message."""
    nan = math.nan
    return {
        **coordinates(spec),
        "status": "failed",
        "message": reason,
        "final_train_loss": nan,
        "final_test_loss": nan,
        "final_test_acc": nan,
        "mean_train_loss": nan,
        "epochs_to_target": None,
        "flags": [],
        "seconds": nan,
        "history": {},
    }
