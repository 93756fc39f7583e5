"""Running the grid of a preset: each run in this process or in a pool of worker processes.

Every run is seeded by its config, so its numbers do not depend on ``jobs`` or on the order in
which runs finish. A run that diverges is recorded with status "diverged" (its history up to the
divergence and the message) instead of stopping the reproduction.

Worker processes are started with "spawn" and with the BLAS thread pools limited to one thread
each (OMP_NUM_THREADS and friends, set before they import NumPy): small matrix products gain
nothing from threads, and N workers times M threads would oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

from tinynormact.experiments.presets import RunSpec
from tinynormact.train import TrainingDiverged, TrainResult, train

__all__ = ["run_one", "run_all"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _summary(spec: RunSpec, result: TrainResult, seconds: float) -> dict[str, Any]:
    """The JSON-ready record of one run."""
    history = result.history
    completed = result.status == "completed"
    trained_losses = history["train_loss"][1:]  # epochs 1..E (epoch 0 is the untrained network)
    return {
        "architecture": spec.architecture,
        "activation": spec.activation,
        "form": spec.form,
        "seed": spec.seed,
        "status": result.status,
        "message": result.message,
        "final_train_loss": history["train_loss"][-1] if completed else float("nan"),
        "final_test_loss": history["test_loss"][-1] if completed else float("nan"),
        "final_test_acc": history["test_acc"][-1] if completed else float("nan"),
        # area under the train-loss curve per epoch: lower means faster convergence
        "mean_train_loss": sum(trained_losses) / len(trained_losses) if completed else float("nan"),
        "epochs_to_target": result.epochs_to_target,
        "seconds": seconds,
        "history": {key: values for key, values in history.items() if key != "seconds"},
    }


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run of the grid and return its record (diverged runs included)."""
    start = time.perf_counter()
    try:
        result = train(spec.config, progress=False)
    except TrainingDiverged as exc:
        result = exc.result
    return _summary(spec, result, time.perf_counter() - start)


def _init_worker() -> None:
    """Workers ignore Ctrl-C (the parent process stops them) and give tqdm a thread lock: its
    default multiprocessing lock would be a named semaphore that a stopped worker leaks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())


@contextlib.contextmanager
def _single_threaded_workers() -> Iterator[None]:
    """Set the BLAS thread variables to 1 (where unset) for the processes started inside."""
    unset = [name for name in _THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: "1" for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def run_all(specs: Iterable[RunSpec], jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Yield the record of every run as it finishes, using ``jobs`` processes.

    Closing the generator early (or Ctrl-C while iterating) stops the workers.
    """
    specs = list(specs)
    if jobs <= 1:
        for spec in specs:
            yield run_one(spec)
        return
    with _single_threaded_workers():
        pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(specs)), initializer=_init_worker)
    try:
        yield from pool.imap_unordered(run_one, specs)
    except BaseException:  # Ctrl-C or an error: stop the workers now
        pool.terminate()
        raise
    else:  # let the workers exit on their own, running their clean-up
        pool.close()
    finally:
        pool.join()
