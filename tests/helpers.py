"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path
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


def grid_file(path: Path, grid: Any, **changes: object) -> Path:
    """``grid`` (a Grid, with ``changes``) as a TOML grid file, written by hand: the library
    only reads TOML."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    values = {**dataclasses.asdict(grid), **changes}
    # TOML has no null: an option left to its default (None) is left out of the file
    path.write_text("".join(f"{key} = {value(v)}\n" for key, v in values.items() if v is not None))
    return path


def scheduler_address(scheduler_file: Path, process: Any, timeout: float = 60.0) -> str:
    """The address a ``dask scheduler --scheduler-file`` process writes, once the file is
    complete: the scheduler writes it in place, so under load it can exist and still be empty
    or partial (a JSON error if read at once)."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "dask scheduler did not start"
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
