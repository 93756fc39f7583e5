"""Detecting a diverged run: which layer went non-finite first.

After every step the loop checks the loss and the gradients (``gradients_finite``: one number
for all of them in the common case). When one of them is NaN or Inf, ``locate_nonfinite``
replays the step's forward pass with a forward hook on every layer and reports, in forward order,
the first layer whose parameters, output or parameter gradients are not finite.
"""

from __future__ import annotations

import math
from typing import Any

from tinynormact import autograd, backend
from tinynormact.nn import Module

__all__ = [
    "TrainingDiverged",
    "all_finite",
    "first_nonfinite_parameter",
    "gradients_finite",
    "locate_nonfinite",
]


class TrainingDiverged(RuntimeError):
    """Training produced NaN or Inf. ``step`` is the 1-based optimizer step, ``layer`` the first
    layer found non-finite; ``result`` (set by ``train``) holds what was recorded before."""

    def __init__(self, step: int, epoch: int, what: str, layer: str) -> None:
        where = f"training diverged at step {step} (epoch {epoch})"
        super().__init__(f"{where}: {what}; first non-finite: {layer}")
        self.step, self.epoch, self.layer = step, epoch, layer
        self.result: Any = None


def all_finite(array: Any) -> bool:
    """Whether every entry of ``array`` is finite."""
    return bool(backend.get_array_module(array).isfinite(array).all())


def gradients_finite(grads: list[Any]) -> bool:
    """Whether every entry of every array in ``grads`` is finite, with one host synchronisation.

    A sum of squares is NaN or Inf whenever an entry is, so one dot product per array decides
    the common case (twice as fast as the largest |g|); it also overflows for huge finite entries
    (|g| above ~1e19 in float32), and only then does the exact elementwise check decide.
    """
    if not grads:
        return True
    with backend.np.errstate(over="ignore", invalid="ignore"):  # an overflow is expected here
        total = sum(g.ravel().dot(g.ravel()) for g in grads)  # 0-d arrays: one sync below
    return math.isfinite(float(total)) or all(all_finite(g) for g in grads)


def first_nonfinite_parameter(model: Module) -> str | None:
    """The name of the first parameter of ``model`` holding NaN or Inf (None when all are
    finite), with one host synchronisation in the common case (see ``gradients_finite``)."""
    params = list(model.named_parameters())
    if gradients_finite([p.data for _, p in params]):
        return None
    return next(name for name, p in params if not all_finite(p.data))


def _leaf_layers_in_forward_order(model: Module, x: Any) -> list[tuple[str, Module, bool]]:
    """(name, layer, output finite) for every layer without children, in the order the forward
    pass calls them, from a replay of the forward pass on ``x`` (current mode, no graph)."""
    calls: list[tuple[str, Module, bool]] = []
    names = {id(module): name for name, module in model.named_modules()}
    leaves = [module for module in model.modules() if not any(True for _ in module.children())]

    def record(module: Module, inputs: Any, output: Any) -> None:
        calls.append((names[id(module)], module, all_finite(output.data)))

    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    try:
        with autograd.no_grad(), backend.np.errstate(all="ignore"):  # non-finite values are expected
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def locate_nonfinite(model: Module, x: Any) -> str:
    """A description of the first layer, in forward order, whose parameters, output (on the batch
    ``x``) or parameter gradients are not finite; "no layer" when all are finite."""
    calls = _leaf_layers_in_forward_order(model, x)
    for name, layer, _ in calls:
        for pname, param in layer.named_parameters():
            if not all_finite(param.data):
                return f"parameter {pname!r} of layer {name!r} ({type(layer).__name__})"
    for name, layer, output_finite in calls:
        if not output_finite:
            return f"output of layer {name!r} ({type(layer).__name__})"
    for name, layer, _ in calls:
        for pname, param in layer.named_parameters():
            if param.grad is not None and not all_finite(param.grad):
                return f"gradient of parameter {pname!r} of layer {name!r} ({type(layer).__name__})"
    return "no layer (the loss itself overflowed)"
