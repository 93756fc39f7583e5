"""Pooling and shape layers: MaxPool1d/2d, AvgPool1d/2d, GlobalAvgPool, Flatten, Unflatten."""

from __future__ import annotations

from typing import Any

from tinynormact.engine import convolution, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.convolution import IntOrTuple
from tinynormact.nn.module import Module

__all__ = ["AvgPool1d", "AvgPool2d", "Flatten", "GlobalAvgPool", "MaxPool1d", "MaxPool2d", "Unflatten"]


class _PoolNd(Module):
    """A pooling window of ``kernel_size`` moved by ``stride`` (default: the kernel) over an
    input padded by ``padding`` (at most half the kernel), as PyTorch's layers."""

    dims = 0
    pool = staticmethod(convolution.max_pool)

    def __init__(
        self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = convolution.as_tuple(kernel_size, self.dims, f"{layer}: kernel_size")
        self.stride = (
            self.kernel_size
            if stride is None
            else convolution.as_tuple(stride, self.dims, f"{layer}: stride")
        )
        self.padding = convolution.as_tuple(padding, self.dims, f"{layer}: padding", low=0)

    def forward(self, x: Any) -> Tensor:
        return self.pool(ops.as_tensor(x), self.kernel_size, self.stride, self.padding, self.dims, repr(self))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(_PoolNd):
    """The maximum of each window of a (batch, channels, length) input."""

    dims = 1


class MaxPool2d(_PoolNd):
    """The maximum of each window of a (batch, channels, height, width) input."""

    dims = 2


class AvgPool1d(_PoolNd):
    """The mean of each window of a (batch, channels, length) input."""

    dims = 1
    pool = staticmethod(convolution.avg_pool)


class AvgPool2d(_PoolNd):
    """The mean of each window of a (batch, channels, height, width) input."""

    dims = 2
    pool = staticmethod(convolution.avg_pool)


class GlobalAvgPool(Module):
    """The mean over all positions: (batch, channels, *spatial) -> (batch, channels) (PyTorch's
    AdaptiveAvgPool to size 1, then a flatten)."""

    def forward(self, x: Any) -> Tensor:
        return convolution.global_avg_pool(ops.as_tensor(x), repr(self))


class Flatten(Module):
    """Merge the axes from ``start_dim`` (default 1) on: (batch, ...) -> (batch, features)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = int(start_dim)

    def forward(self, x: Any) -> Tensor:
        return convolution.flatten(ops.as_tensor(x), self.start_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Unflatten(Module):
    """(batch, features) -> (batch, *shape), e.g. MNIST-1D's 40 features as (1, 40): one
    channel of length 40 for a Conv1d."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        size = 1
        for n in self.shape:
            size *= n
        if x.ndim != 2 or x.shape[1] != size:
            raise ValueError(f"{self!r}: expected an input of shape (batch, {size}), got shape {x.shape}")
        return ops.reshape(x, (x.shape[0], *self.shape))

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))
