"""Instrumentation: what a network does while it trains, measured and recorded.

- ``tracker``: ``VarianceTracker``, per-layer forward and backward second moments through the
  public hooks; ``propagation``: ``measure_propagation`` at initialization;
- ``statistics``: what each recorded statistic means (its equation) and the reductions computing it;
- ``layers``: which modules are tracked (a Linear or convolution with the activation after it);
- ``records``: a tracked run's record, in memory or streamed to disk (``rows.npy``, ``meta.json``),
  and its JSON and CSV exports;
- ``plots``: matplotlib figures from records and theory (loads matplotlib when imported);
- ``costs``: FLOPs per example and the memory estimate of a training step.
"""

import importlib
from typing import Any

from tinynormact.tracking.propagation import measure_propagation
from tinynormact.tracking.records import read_json
from tinynormact.tracking.statistics import STATISTICS, theory_record
from tinynormact.tracking.tracker import VarianceTracker

__all__ = ["STATISTICS", "VarianceTracker", "measure_propagation", "read_json", "theory_record"]


def __getattr__(name: str) -> Any:
    """``tracking.plots`` and ``tracking.costs`` import on first use (plots loads matplotlib)."""
    if name in ("plots", "costs"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
