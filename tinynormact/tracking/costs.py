"""What a training step of a network costs: FLOPs per example and an estimate of its memory.

Both are counted from one forward pass of a single example through forward hooks on the layers
(``Module.register_forward_hook``), so they hold for any network built from ``nn`` layers.

- ``forward_flops``: 2 x (multiply-adds) of the convolutions and Linear layers for one example
  (batch norm, activations, additions and pooling are left out: under 1% for a ResNet). A
  training step costs about 3 x that (backward computes the input gradient and the weight
  gradient, each as much arithmetic as the forward product): ``TRAINING_FLOPS_FACTOR``.
- ``step_memory_estimate``: the arrays this engine keeps from forward to backward, scaled to a
  batch (a conv keeps its im2col matrix; batch norm its normalized x_hat; an activation its
  input), the largest conv's backward temporaries (the gradient of its im2col matrix and of its
  padded input), and the parameters, their gradients and the optimizer's per-parameter state.
  An estimate for the engine's arrays, NumPy or CuPy alike, that leaves out short-lived
  temporaries (tracemalloc measured 6% more for a relu ResNet-20, 11% for ResNet-50, 18% for
  adaptive nswish, whose layers keep more); a memory pool's rounding and caching come on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tinynormact.engine import autograd, backend
from tinynormact.engine.autograd import Tensor
from tinynormact.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Module

__all__ = ["TRAINING_FLOPS_FACTOR", "MemoryEstimate", "forward_flops", "step_memory_estimate"]

TRAINING_FLOPS_FACTOR = 3  # forward + input gradient + weight gradient, each one product


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step: ``activations`` kept for backward, ``backward_peak`` (the
    largest conv's backward temporaries), ``parameters`` (values and gradients) and
    ``optimizer_state``; ``total`` is their sum."""

    activations: int
    backward_peak: int
    parameters: int
    optimizer_state: int

    @property
    def total(self) -> int:
        return self.activations + self.backward_peak + self.parameters + self.optimizer_state


def _trace(model: Module, example_shape: tuple[int, ...], batch: int) -> list[tuple[Module, tuple, tuple]]:
    """(layer, input shape, output shape) of every conv, Linear, batch norm and activation in
    the order one forward pass calls them (in evaluation mode, so that no running statistic
    changes, and without a graph)."""
    calls: list[tuple[Module, tuple, tuple]] = []
    kinds = (Conv1d, Conv2d, Linear, BatchNorm1d, BatchNorm2d, Activation)

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
    The shapes come from a forward pass of one example and scale linearly with the batch.
    """
    itemsize = backend.np.dtype(next(iter(model.parameters())).dtype).itemsize
    kept, peak = 0, 0
    for module, in_shape, out_shape in _trace(model, example_shape, 1):
        if isinstance(module, (Conv1d, Conv2d)):
            columns = math.prod(out_shape[2:]) * math.prod(module.weight.shape[1:])
            sizes = zip(in_shape[2:], module.padding, strict=True)
            padded = in_shape[1] * math.prod(n + 2 * p for n, p in sizes)
            kept += columns
            peak = max(peak, columns + padded)
        elif isinstance(module, (BatchNorm1d, BatchNorm2d)):
            kept += math.prod(out_shape[1:])
        elif isinstance(module, Activation):
            kept += math.prod(in_shape[1:])
    n_parameters = sum(p.data.size for p in model.parameters())
    return MemoryEstimate(
        activations=kept * batch * itemsize,
        backward_peak=peak * batch * itemsize,
        parameters=2 * n_parameters * itemsize,
        optimizer_state=optimizer_slots * n_parameters * itemsize,
    )
