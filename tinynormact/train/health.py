"""Detecting a diverged run: which layer went non-finite first.

After every step the loop checks the loss and the gradients (``loss_and_arrays_finite``: the
loss and one number for all the parameters and gradients travel to the host together, one
transfer a step in the common case). When one of them is NaN or Inf, ``locate_nonfinite``
replays the step's forward pass with a forward hook on every layer and reports, in forward order,
the first layer whose parameters, output or parameter gradients are not finite.
"""

from __future__ import annotations

import math
from typing import Any

from tinynormact.engine import autograd, backend
from tinynormact.nn import Module

__all__ = [
    "TrainingDiverged",
    "all_finite",
    "first_nonfinite_parameter",
    "locate_nonfinite",
    "loss_and_arrays_finite",
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


def _sum_of_squares(arrays: list[Any], like: Any) -> Any:
    """The sum of squares of every entry of ``arrays`` as a 0-d array of ``like``'s device and
    dtype (no host synchronisation). It is NaN or Inf whenever an entry is, so one dot product per
    array decides the common case (twice as fast as the largest |g|); it also overflows for huge
    finite entries (|g| above ~1e19 in float32), where callers fall back to the exact check."""
    xp = backend.get_array_module(like)
    with backend.np.errstate(over="ignore", invalid="ignore"):  # an overflow is expected here
        total = sum((a.ravel().dot(a.ravel()) for a in arrays), xp.zeros((), dtype=like.dtype))
    return total.astype(like.dtype)


def loss_and_arrays_finite(loss: Any, arrays: list[Any]) -> tuple[float, bool]:
    """(the loss as a float, whether every entry of ``arrays`` is finite), from ONE host transfer:
    the 0-d ``loss`` array and the arrays' sum of squares are stacked on the device and moved
    together (a GPU step then stalls once, not once per check)."""
    xp = backend.get_array_module(loss)
    value, squares = backend.to_numpy(xp.stack([loss, _sum_of_squares(arrays, loss)]))
    return float(value), math.isfinite(squares) or all(all_finite(a) for a in arrays)


def first_nonfinite_parameter(model: Module) -> str | None:
    """The name of the first parameter of ``model`` holding NaN or Inf (None when all are
    finite), with one host synchronisation in the common case."""
    params = list(model.named_parameters())
    if not params:
        return None
    squares = backend.to_numpy(_sum_of_squares([p.data for _, p in params], params[0][1].data))
    if math.isfinite(squares):
        return None
    return next((name for name, p in params if not all_finite(p.data)), None)


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
