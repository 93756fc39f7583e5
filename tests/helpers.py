"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import signal
from typing import Any

import numpy as np

import tinynormact as tn


def leaf(shape: tuple[int, ...], seed: int = 0, low: float | None = None) -> tn.Tensor:
    """A float64 leaf tensor on the current device with standard normal (or shifted) entries."""
    values = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        values = low + np.abs(values)
    return tn.Tensor(values, requires_grad=True, dtype="float64")


def host(value: Any) -> np.ndarray:
    """A tensor's or array's data as a NumPy array."""
    if isinstance(value, tn.Tensor):
        return value.numpy()
    return tn.backend.to_numpy(value)


def default_sigint() -> None:
    """``preexec_fn`` for a child process that a test interrupts with SIGINT: a shell that starts
    the suite in the background sets SIGINT to "ignore", children inherit that, and Python then
    installs no KeyboardInterrupt handler; the default disposition lets it install its own."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
