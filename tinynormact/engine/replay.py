"""Replay a recorded training step without rebuilding its graph: an optional optimization.

The eager engine (``autograd``, ``ops``) is the one to read: every forward makes a Tensor and a
graph Node per operation, and every ``backward()`` sorts the graph again. For a small network
that bookkeeping costs as much as the arithmetic (docs/benchmarks.md, "MLP step"). A replay
keeps the graph of one step and runs it again on new inputs:

- ``record(compute_loss, *inputs)`` runs ``compute_loss`` once, eagerly, on copies of the inputs
  that the replay owns, while every operation also hands over its ``forward(out)`` (``ops``
  module docstring), then runs ``backward(retain_graph=True)`` from the loss: that first step is
  an ordinary eager step, and it fills the parameters' ``.grad``.
- ``step(*inputs)`` copies the new inputs into those arrays, runs the recorded forwards in
  order, each writing into its recorded output array (so every backward closure of the graph
  sees the new values), and runs ``autograd.backpropagate``, the loop of ``backward()``, over
  the recorded order. The arithmetic is the eager step's, operation for operation: the numbers
  are the same, bit for bit (tests/test_replay.py). Each parameter's ``.grad`` is replaced, as
  ``zero_grad()`` then ``backward()`` would leave it; the optimizer's ``step()`` is the caller's.

What a replay needs, and ``record`` refuses what it can see breaks it: every operation of the
step is one of ``ops.REPLAYABLE`` (not batch norm, convolutions, indexing or the adaptive
activations); the step does the same operations on every call (no Python branch on the data);
the inputs keep their shapes and dtypes; parameters change in place (every optimizer here does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinynormact.engine import autograd, backend, ops
from tinynormact.engine.autograd import Tensor

__all__ = ["ReplayError", "ReplayedStep", "record"]


class ReplayError(ValueError):
    """A step that cannot be replayed, or inputs that do not fit the recorded step."""


class ReplayedStep:
    """The recorded forward and backward of one step; ``step(*inputs)`` runs them again and
    returns the loss as a new Tensor (outside any graph)."""

    def __init__(self, inputs: list[Tensor], steps: list[tuple[Tensor, Any]], loss: Tensor) -> None:
        self._inputs, self._loss = inputs, loss
        # (output, forward, whether it writes in place: every array; a scalar loss is new each time)
        self._steps = [(tensor, forward, not backend.np.isscalar(tensor.data)) for tensor, forward in steps]
        self._order = autograd.topological_order(loss.graph_node())
        # the tensors whose .grad backward fills: leaves, and any retain_grad() one still alive
        targets = [node.grad_target() for node in self._order if node.grad_target is not None]
        self._leaves = [tensor for tensor in targets if tensor is not None]
        self._seed = backend.get_array_module(loss.data).ones_like(loss.data)

    def __call__(self, *inputs: Any) -> Tensor:
        if len(inputs) != len(self._inputs):
            raise ReplayError(f"the step was recorded with {len(self._inputs)} inputs, got {len(inputs)}")
        for position, (buffer, value) in enumerate(zip(self._inputs, inputs, strict=True)):
            _copy_into(buffer, value, position)
        for tensor, forward, in_place in self._steps:
            if in_place:
                forward(tensor.data)
            else:
                tensor.data = forward()
        for leaf in self._leaves:
            leaf.grad = None
        autograd.backpropagate(self._order, self._seed, retain_graph=True)
        return Tensor(self._loss.data.copy())


def _copy_into(buffer: Tensor, value: Any, position: int) -> None:
    """Write input ``value`` into the recorded input array, refusing another shape or dtype."""
    data = value.data if isinstance(value, Tensor) else value
    if type(data) is not type(buffer.data):  # a list, or an array of another device's module
        data = backend.asarray(data, device=buffer.device)
    if data.shape != buffer.shape or data.dtype != buffer.dtype:
        raise ReplayError(
            f"input {position}: the step was recorded with shape {buffer.shape} and dtype "
            f"{buffer.dtype}, got shape {data.shape} and dtype {data.dtype}"
        )
    buffer.data[...] = data


def record(compute_loss: Callable[..., Tensor], *inputs: Any) -> tuple[ReplayedStep, Tensor]:
    """(the replayable step, the first step's loss): ``compute_loss(*inputs)`` run once eagerly
    and its backward, with every operation recorded (module docstring). ``inputs`` are Tensors
    or arrays (copied: later calls write into the copies)."""
    owned = [Tensor(ops.as_tensor(value).data.copy()) for value in inputs]
    previous, autograd._recording["steps"] = autograd._recording["steps"], []
    try:
        loss = compute_loss(*owned)
    finally:
        recorded, autograd._recording["steps"] = autograd._recording["steps"], previous
    _check_recording(recorded, loss)
    step = ReplayedStep(owned, [(tensor, forward) for tensor, forward, _ in recorded], loss)
    for leaf in step._leaves:
        leaf.grad = None
    loss.backward(retain_graph=True)
    return step, Tensor(loss.data.copy())


def _check_recording(recorded: list[tuple[Tensor, Any, str]], loss: Any) -> None:
    """Refuse a step with an operation that cannot be replayed, or that is not one loss."""
    if not isinstance(loss, Tensor) or loss.size != 1 or not loss.requires_grad:
        raise ReplayError(
            "compute_loss must return a one-element Tensor that requires a gradient (the loss), "
            f"got {type(loss).__name__}{'' if not isinstance(loss, Tensor) else f' of shape {loss.shape}'}"
        )
    others = sorted({op for _, forward, op in recorded if forward is None})
    scalars = [op for tensor, _, op in recorded[:-1] if backend.np.isscalar(tensor.data)]
    if scalars:  # written anew on each replay, not in place: a closure holding it would not see it
        raise ReplayError(f"cannot replay a step that computes on from a scalar result ({scalars[0]})")
    if others:
        raise ReplayError(
            f"cannot replay the operation(s) {', '.join(others)}: a replay runs only "
            f"{', '.join(ops.REPLAYABLE)}; run this step eagerly"
        )
