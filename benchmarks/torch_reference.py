"""The same networks in PyTorch (CPU), for the reference column of the benchmarks.

``torch_step(model, ...)`` copies an engine model (the modules ``nn.resnet20`` and
``nn.resnet1d`` are built from) into an equivalent ``torch.nn.Module`` with the same weights,
so one step of each does the same arithmetic on the same data and their first losses agree.
Import this module only when PyTorch is installed (``benchmarks.timing.has_torch``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import tinynormact as tn
from tinynormact.engine.backend import np


def set_threads(threads: int) -> None:
    """PyTorch's intra-op threads (its own pool: OPENBLAS_NUM_THREADS does not reach it)."""
    torch.set_num_threads(threads)


def _copy(array: Any) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.from_numpy(np.array(array, copy=True)))


class _Block(torch.nn.Module):
    """shortcut(x) + alpha * branch(x), then the post-activation (``nn.ConvResidualBlock``)."""

    def __init__(self, block: tn.nn.ConvResidualBlock) -> None:
        super().__init__()
        self.branch = translate(block.branch)
        self.shortcut = None if block.shortcut is None else translate(block.shortcut)
        self.post = None if block.post_activation is None else translate(block.post_activation)
        self.alpha = block.alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x if self.shortcut is None else self.shortcut(x)) + self.alpha * self.branch(x)
        return y if self.post is None else self.post(y)


class _GlobalAvgPool(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


def _conv(module: tn.nn.conv._ConvNd) -> torch.nn.Module:
    layer_type = torch.nn.Conv1d if module.dims == 1 else torch.nn.Conv2d
    layer = layer_type(
        module.in_channels,
        module.out_channels,
        module.kernel_size,
        module.stride,
        module.padding,
        bias=module.bias is not None,
    )
    layer.weight = _copy(module.weight.data)
    if module.bias is not None:
        layer.bias = _copy(module.bias.data)
    return layer


def translate(module: tn.nn.Module) -> torch.nn.Module:
    """The torch module computing what ``module`` computes, holding copies of its parameters."""
    if isinstance(module, tn.nn.Sequential):
        return torch.nn.Sequential(*(translate(m) for m in module))
    if isinstance(module, tn.nn.Unflatten):
        return torch.nn.Unflatten(1, module.shape)
    if isinstance(module, tn.nn.conv._ConvNd):
        return _conv(module)
    if isinstance(module, tn.nn.batchnorm._BatchNorm):
        layer = (torch.nn.BatchNorm2d if 4 in module.ranks else torch.nn.BatchNorm1d)(
            module.num_features, eps=module.eps, momentum=module.momentum
        )
        layer.weight, layer.bias = _copy(module.weight.data), _copy(module.bias.data)
        return layer
    if isinstance(module, tn.nn.Activation) and module.function.name == "relu":
        return torch.nn.ReLU()
    if isinstance(module, tn.nn.GlobalAvgPool):
        return _GlobalAvgPool()
    if isinstance(module, tn.nn.Linear):
        layer = torch.nn.Linear(module.weight.shape[1], module.weight.shape[0])
        layer.weight, layer.bias = _copy(module.weight.data), _copy(module.bias.data)
        return layer
    if isinstance(module, tn.nn.ConvResidualBlock):
        return _Block(module)
    raise TypeError(f"no PyTorch version of {module!r}")


def torch_step(
    model: tn.nn.Module, lr: float, momentum: float, x: Any, labels: Any
) -> tuple[Callable[[], float], float]:
    """(step, first loss): one SGD step of ``model``'s PyTorch copy (softmax cross-entropy, batch
    mean, SGD at ``lr`` with ``momentum``) as a function, and the loss of a first such step."""
    net = translate(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    tx = torch.from_numpy(np.ascontiguousarray(x))
    ty = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def step() -> float:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, step()
