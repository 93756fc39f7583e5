"""What a training step of a network costs: FLOPs per example and an estimate of its memory.

Both are counted from one forward pass of a single example (the FLOPs through forward hooks on
the layers, ``Module.register_forward_hook``; the memory from the graph it builds), so they hold
for any network built from ``nn`` layers.

- ``forward_flops``: 2 x (multiply-adds) of the convolutions and Linear layers for one example
  (batch norm, activations, additions and pooling are left out: under 1% for a ResNet). A
  training step costs about 3 x that (backward computes the input gradient and the weight
  gradient, each as much arithmetic as the forward product): ``TRAINING_FLOPS_FACTOR``.
- ``step_memory_estimate``: the arrays this engine keeps from forward to backward, counted, not
  modelled: a forward pass of one example in training mode builds the graph, and the distinct
  arrays its backward closures hold (each once, however many closures share it: a conv and the
  ReLU before it hold the same array) are what a step keeps, times the batch. On top: backward's
  own arrays at its peak (``BACKWARD_ARRAYS`` arrays the size of the largest array kept), and
  the parameters, their gradients and the optimizer's per-parameter state.
  An upper bound for the engine's arrays, NumPy or CuPy alike: tracemalloc's peak of a step
  was 85-98% of it (ResNet-20 and ResNet-50; relu, static and adaptive nswish;
  tests/test_cifar_training.py); a memory pool's rounding and caching come on top.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from tinynormact.engine import autograd, backend
from tinynormact.engine.autograd import Tensor
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.layers import Linear
from tinynormact.nn.module import Module

__all__ = ["TRAINING_FLOPS_FACTOR", "MemoryEstimate", "forward_flops", "step_memory_estimate"]

TRAINING_FLOPS_FACTOR = 3  # forward + input gradient + weight gradient, each one product


# Backward's own arrays on top of the kept ones, in sizes of the largest array kept: the
# gradient arriving at a layer and the one it computes. (The peak is an upper bound: as backward
# runs, each node's arrays are freed while the parameters' gradients are made.)
BACKWARD_ARRAYS = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step: ``activations`` kept for backward, ``backward_peak``
    (backward's own arrays, ``BACKWARD_ARRAYS``), ``parameters`` (values and gradients) and
    ``optimizer_state``; ``total`` is their sum."""

    activations: int
    backward_peak: int
    parameters: int
    optimizer_state: int

    @property
    def total(self) -> int:
        return self.activations + self.backward_peak + self.parameters + self.optimizer_state


def _trace(model: Module, example_shape: tuple[int, ...], batch: int) -> list[tuple[Module, tuple, tuple]]:
    """(layer, input shape, output shape) of every conv and Linear layer in the order one
    forward pass calls them (in evaluation mode, so that no running statistic
    changes, and without a graph)."""
    calls: list[tuple[Module, tuple, tuple]] = []
    kinds = (Conv1d, Conv2d, Linear)

    def hook(module: Module, inputs: tuple[Any, ...], output: Any) -> None:
        calls.append((module, tuple(inputs[0].shape), tuple(output.shape)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    dtype = next(iter(model.parameters())).dtype
    x = Tensor(backend.np.zeros((batch, *example_shape), dtype=dtype))
    training = model.training
    model.eval()
    try:
        with autograd.no_grad():
            model(x)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return calls


def forward_flops(model: Module, example_shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of the convolutions and Linear layers in the forward pass of
    one example of shape ``example_shape`` (for a conv: 2 * out_channels * output positions *
    in_channels * kernel size; for a Linear: 2 * in * out)."""
    total = 0
    for module, _, out_shape in _trace(model, example_shape, 1):
        if isinstance(module, (Conv1d, Conv2d)):
            total += 2 * math.prod(out_shape[1:]) * math.prod(module.weight.shape[1:])
        elif isinstance(module, Linear):
            total += 2 * math.prod(module.weight.shape)
    return total


def step_memory_estimate(
    model: Module, example_shape: tuple[int, ...], batch: int, optimizer_slots: int = 1
) -> MemoryEstimate:
    """Estimated bytes of a training step at ``batch`` (see the module docstring).

    ``optimizer_slots``: arrays of state per parameter (1 for SGD with momentum, 2 for Adam).
    The kept arrays come from a forward pass of one example and scale linearly with the batch.
    """
    held = _arrays_held_for_backward(model, example_shape)
    n_parameters = sum(p.data.size for p in model.parameters())
    itemsize = backend.np.dtype(next(iter(model.parameters())).dtype).itemsize
    return MemoryEstimate(
        activations=sum(held) * batch,
        backward_peak=BACKWARD_ARRAYS * max(held, default=0) * batch,
        parameters=2 * n_parameters * itemsize,
        optimizer_state=optimizer_slots * n_parameters * itemsize,
    )


def _arrays_held_for_backward(model: Module, example_shape: tuple[int, ...]) -> list[int]:
    """Bytes of each distinct array that the graph of one example's training forward holds for
    backward (parameters and the example itself left out), on a copy of the model (a training
    forward updates running statistics)."""
    model = copy.deepcopy(model).train()
    dtype = next(iter(model.parameters())).dtype
    x = Tensor(backend.np.zeros((1, *example_shape), dtype=dtype))
    with backend.np.errstate(all="ignore"):  # one example's batch statistics may divide by 0
        out = model(x)
    skip = {id(p.data) for p in model.parameters()} | {id(x.data)}
    found: dict[int, int] = {}
    seen: set[int] = set()
    for node in autograd.topological_order(out.graph_node()):
        _collect_arrays(node.backward, skip, found, seen)
    return list(found.values())


def _collect_arrays(obj: Any, skip: set[int], found: dict[int, int], seen: set[int]) -> None:
    """Add to ``found`` (id -> bytes) every array reachable from ``obj`` through Tensors,
    closures, partial functions, tuples and lists (a view counts as the array it views)."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if id(obj) in seen or obj is None:
        return
    seen.add(id(obj))
    if hasattr(obj, "nbytes") and hasattr(obj, "shape"):  # an array, NumPy's or CuPy's
        base = obj if getattr(obj, "base", None) is None else obj.base
        if id(base) not in skip and id(obj) not in skip:
            found[id(base)] = base.nbytes
    elif isinstance(obj, partial):
        for item in (*obj.args, *obj.keywords.values()):
            _collect_arrays(item, skip, found, seen)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _collect_arrays(item, skip, found, seen)
    elif callable(obj) and getattr(obj, "__closure__", None):
        for cell in obj.__closure__:
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not yet filled
                continue
            _collect_arrays(contents, skip, found, seen)
