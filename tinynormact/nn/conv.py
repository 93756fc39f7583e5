"""Conv1d and Conv2d: PyTorch's layers (groups=1, dilation 1) on ``convolution.conv``."""

from __future__ import annotations

import math
from typing import Any

from tinynormact.engine import backend, convolution, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.convolution import IntOrTuple
from tinynormact.nn import init as nn_init
from tinynormact.nn.module import Module, Parameter
from tinynormact.theory.activations import ActivationFunction

__all__ = ["Conv1d", "Conv2d"]


class _ConvNd(Module):
    """out = conv(x, weight) + bias over ``dims`` spatial axes (see ``convolution``).

    ``weight`` has shape (out_channels, in_channels, *kernel_size), ``bias`` (out_channels,)
    starts at zero. ``init``, ``activation``, ``dtype`` and ``rng`` are those of ``nn.Linear``,
    with fan_in = in_channels * prod(kernel_size): the default "lecun_normal" gives
    Var(W) = 1 / fan_in, the sigma_w^2 = 1 of THEORY E8 read per output position (see
    docs/THEORY.md, "Convolutional networks").
    """

    dims = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        activation: str | ActivationFunction | None = None,
        dtype: Any = None,
        rng: nn_init.Rng = None,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{layer}: {name} must be an integer >= 1, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = convolution.as_tuple(kernel_size, self.dims, f"{layer}: kernel_size")
        self.stride = convolution.as_tuple(stride, self.dims, f"{layer}: stride")
        self.padding = convolution.as_tuple(padding, self.dims, f"{layer}: padding", low=0)
        dtype = backend.get_default_dtype() if dtype is None else dtype
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Parameter(backend.np.zeros(shape), dtype=dtype)
        nn_init.initialize(self.weight, init, activation, rng)
        self.bias = Parameter(backend.np.zeros(self.out_channels), dtype=dtype) if bias else None

    @property
    def fan_in(self) -> int:
        """in_channels * prod(kernel_size): the inputs each output element sums."""
        return self.in_channels * math.prod(self.kernel_size)

    def forward(self, x: Any) -> Tensor:
        return convolution.conv(
            ops.as_tensor(x), self.weight, self.bias, self.stride, self.padding, repr(self)
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class Conv1d(_ConvNd):
    """1-D convolution: input (batch, in_channels, length) -> (batch, out_channels, length')."""

    dims = 1


class Conv2d(_ConvNd):
    """2-D convolution: input (batch, in_channels, height, width) -> (batch, out_channels, h', w')."""

    dims = 2
