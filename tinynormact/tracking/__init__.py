"""Instrumentation: what a network does while it trains, measured and recorded.

- ``tracker``: ``VarianceTracker``, per-layer forward and backward second moments through the
  public hooks; ``measure_propagation`` at initialization;
- ``records``: a tracked run's record, in memory or streamed to disk (``rows.npy``, ``meta.json``);
- ``plots``: matplotlib figures from records and theory (loads matplotlib when imported);
- ``costs``: FLOPs per example and the memory estimate of a training step.
"""

import importlib
from typing import Any

from tinynormact.tracking.tracker import (
    STATISTICS,
    VarianceTracker,
    measure_propagation,
    read_json,
    theory_record,
)

__all__ = ["STATISTICS", "VarianceTracker", "measure_propagation", "read_json", "theory_record"]


def __getattr__(name: str) -> Any:
    """``tracking.plots`` and ``tracking.costs`` import on first use (plots loads matplotlib)."""
    if name in ("plots", "costs"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
