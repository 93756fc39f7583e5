"""Which modules a ``VarianceTracker`` watches: each ``Linear`` or convolution with the
``Activation`` after it (a batch norm between them skipped over), as one tracked layer, and the
table of one recorded step."""

from __future__ import annotations

import math
from typing import Any

from tinynormact.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Module

__all__ = ["Step", "TrackedLayer", "find_layers"]


class Step:
    """One recorded step: its number and its (statistic, layer) table on the model's device.
    Hooks write only while it is open; closing moves the table to the host record."""

    __slots__ = ("number", "table", "open")

    def __init__(self, number: int, table: Any) -> None:
        self.number, self.table, self.open = number, table, True


class TrackedLayer:
    """One tracked layer: a Linear and the Activation after it (or None), plus what hooks of
    one forward hand to each other."""

    def __init__(self, index: int, name: str, linear: Linear, activation: Activation | None) -> None:
        self.index, self.name, self.linear, self.activation = index, name, linear, activation
        self.preact: Any = None  # the recorded forward's h and its mean square, which the
        self.preact_sq: Any = math.nan  # activation hook reuses when its input is that same array
        self.weight_steps: list[Step] = []  # steps whose delta hook ran in the current backward


_WEIGHTED = (Linear, Conv1d, Conv2d)
_BATCH_NORMS = (BatchNorm1d, BatchNorm2d)


def find_layers(model: Module) -> list[TrackedLayer]:
    """Every Linear and convolution in module order, each paired with an Activation that directly
    follows it, or follows a batch norm that directly follows it."""
    leaves = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    layers: list[TrackedLayer] = []
    for k, (name, module) in enumerate(leaves):
        if isinstance(module, _WEIGHTED):
            after = [m for _, m in leaves[k + 1 : k + 3]]
            if after and isinstance(after[0], _BATCH_NORMS):
                after = after[1:]
            following = after[0] if after else None
            activation = following if isinstance(following, Activation) else None
            layers.append(TrackedLayer(len(layers), name, module, activation))
    if not layers:
        raise ValueError(
            f"VarianceTracker: {type(model).__name__} contains no Linear, Conv1d or Conv2d layer to track"
        )
    return layers
