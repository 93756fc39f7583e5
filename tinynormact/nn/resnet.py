"""Convolutional residual networks: the residual block for feature maps and the ResNet builders.

A ``ConvResidualBlock`` computes

    y = shortcut(x) + alpha * branch(x),   then phi(y) when the block has a post-activation

with the shortcut the identity or a 1x1 projection (a strided Conv, with BN when the branch has
it) where the shape changes. Two branches are built here:

- ``basic_block``: conv k x k (stride s), [BN], phi, conv k x k, [BN] (He et al. 2016);
- ``bottleneck_block``: conv 1x1, [BN], phi, conv 3x3 (stride s), [BN], phi, conv 1x1 to
  4 x width, [BN] (ResNet-50's block).

Builders (each a ``Sequential``; one ``rng`` draws every weight in order, so a seed fixes the
network; every activation is its own module, so an adaptive one keeps one lambda per layer):

- ``resnet_cifar(depth)``: the CIFAR ResNets of He et al. (2016, section 4.2), depth 6n + 2:
  a 3x3 stem of 16 channels, three stages of n basic blocks at 16, 32, 64 channels (stride 2
  and a projection shortcut at the start of stages 2 and 3), global average pooling, a Linear.
  ``resnet20``, ``resnet32``, ``resnet56`` are depths 20, 32, 56;
- ``resnet50``: bottleneck stages of 3, 4, 6, 3 blocks at widths 64-512 (outputs 256-2048) with
  a 3x3 stride-1 stem and no max pooling, the usual adaptation to 32x32 inputs;
- ``resnet1d``: a small 1-D residual CNN for MNIST-1D (40 features seen as one channel of
  length 40).

The CIFAR builders follow He et al.: BN after every conv and phi after the addition
(``post_activation=True``). ``resnet1d`` defaults to the project's residual form x + F(x)
without BN or post-activation, the form of THEORY E17-E18 (docs/THEORY.md, "Convolutional
networks"), so that normalized activations are compared without batch normalization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynormact.engine import ops
from tinynormact.engine.autograd import Tensor
from tinynormact.nn import init as nn_init
from tinynormact.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.factory import activation as make_activation
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.mlp import gain_source
from tinynormact.nn.module import Module, Sequential
from tinynormact.nn.pooling import GlobalAvgPool, Unflatten
from tinynormact.theory.activations import ActivationFunction

__all__ = [
    "ConvResidualBlock",
    "basic_block",
    "bottleneck_block",
    "resnet1d",
    "resnet20",
    "resnet32",
    "resnet50",
    "resnet56",
    "resnet_cifar",
]

_CONV = {1: Conv1d, 2: Conv2d}
_NORM = {1: BatchNorm1d, 2: BatchNorm2d}


class ConvResidualBlock(Module):
    """shortcut(x) + alpha * branch(x), then ``post_activation`` (a module, or None).

    ``shortcut`` None is the identity. Build blocks with ``basic_block`` or ``bottleneck_block``.
    """

    def __init__(
        self,
        branch: Module,
        shortcut: Module | None = None,
        post_activation: Module | None = None,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.post_activation = post_activation
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        branch = self.branch(x)
        if self.alpha != 1.0:
            branch = branch * self.alpha
        y = (x if self.shortcut is None else self.shortcut(x)) + branch
        return y if self.post_activation is None else self.post_activation(y)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class _Parts:
    """What every conv, BN and activation of one network shares: dims, options, one rng.

    ``source`` arguments name the activation that produced a conv's input (None: the data or an
    identity residual stream), from which kaiming schemes take their gain (THEORY E8,
    ``mlp.gain_source``)."""

    def __init__(
        self,
        dims: int,
        activation: str | ActivationFunction,
        activation_options: dict[str, Any] | None,
        batch_norm: bool,
        init: str | nn_init.Initializer,
        dtype: Any,
        rng: nn_init.Rng,
    ) -> None:
        self.dims, self.activation, self.options = dims, activation, dict(activation_options or {})
        self.batch_norm, self.init, self.dtype = batch_norm, init, dtype
        self.rng = nn_init.as_generator(rng)

    def act(self) -> Activation:
        return make_activation(self.activation, **self.options)

    def conv(self, n_in: int, n_out: int, kernel: int, stride: int, source: Activation | None) -> Module:
        """A conv with 'same' padding (kernel // 2), no bias when BN follows."""
        gain_from = gain_source(self.init, source)
        padding, bias = kernel // 2, not self.batch_norm
        return _CONV[self.dims](
            n_in, n_out, kernel, stride, padding, bias, self.init, gain_from, self.dtype, self.rng
        )

    def norm(self, channels: int) -> list[Module]:
        return [_NORM[self.dims](channels, dtype=self.dtype)] if self.batch_norm else []

    def conv_act(
        self, n_in: int, n_out: int, kernel: int, stride: int, source: Activation | None
    ) -> list[Module]:
        """conv, [BN], phi."""
        return [self.conv(n_in, n_out, kernel, stride, source), *self.norm(n_out), self.act()]

    def projection(self, n_in: int, n_out: int, stride: int, source: Activation | None) -> Module | None:
        """None (identity) when the shape is kept, else a 1x1 strided conv [+ BN]."""
        if stride == 1 and n_in == n_out:
            return None
        return Sequential(self.conv(n_in, n_out, 1, stride, source), *self.norm(n_out))


def basic_block(
    parts: _Parts,
    n_in: int,
    n_out: int,
    stride: int,
    kernel: int,
    post: bool,
    alpha: float,
    source: Activation | None = None,
) -> ConvResidualBlock:
    """conv k (stride), [BN], phi, conv k, [BN]; identity or projection shortcut. ``source``: the
    activation that produced the block's input (None: the data or an identity stream)."""
    first = parts.conv_act(n_in, n_out, kernel, stride, source)
    branch = Sequential(*first, parts.conv(n_out, n_out, kernel, 1, first[-1]), *parts.norm(n_out))
    shortcut = parts.projection(n_in, n_out, stride, source)
    return ConvResidualBlock(branch, shortcut, parts.act() if post else None, alpha)


def bottleneck_block(
    parts: _Parts,
    n_in: int,
    width: int,
    stride: int,
    post: bool,
    alpha: float,
    source: Activation | None = None,
) -> ConvResidualBlock:
    """conv 1x1, [BN], phi, conv 3x3 (stride), [BN], phi, conv 1x1 to 4 x width, [BN]."""
    n_out = 4 * width
    first = parts.conv_act(n_in, width, 1, 1, source)
    second = parts.conv_act(width, width, 3, stride, first[-1])
    branch = Sequential(*first, *second, parts.conv(width, n_out, 1, 1, second[-1]), *parts.norm(n_out))
    shortcut = parts.projection(n_in, n_out, stride, source)
    return ConvResidualBlock(branch, shortcut, parts.act() if post else None, alpha)


def _head(parts: _Parts, channels: int, num_classes: int, source: Activation | None) -> list[Module]:
    """Global average pooling and a Linear; ``source`` produced the pooled stream."""
    gain_from = gain_source(parts.init, source)
    return [
        GlobalAvgPool(),
        Linear(channels, num_classes, True, parts.init, gain_from, parts.dtype, parts.rng),
    ]


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def resnet_cifar(
    depth: int,
    num_classes: int = 10,
    in_channels: int = 3,
    width: int = 16,
    activation: str | ActivationFunction = "relu",
    activation_options: dict[str, Any] | None = None,
    batch_norm: bool = True,
    post_activation: bool = True,
    alpha: float = 1.0,
    init: str | nn_init.Initializer = "kaiming_normal",
    dtype: Any = None,
    rng: nn_init.Rng = None,
) -> Sequential:
    """The CIFAR ResNet of depth 6n + 2 (He et al. 2016): stem, 3 stages of n basic blocks at
    width, 2 width, 4 width channels, global average pooling, Linear. Input (batch, in_channels,
    32, 32) or any size that halves twice."""
    depth = _check_count("depth", depth, 8)
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, ...), got {depth}")
    n = (depth - 2) // 6
    parts = _Parts(2, activation, activation_options, batch_norm, init, dtype, rng)
    layers: list[Module] = parts.conv_act(in_channels, width, 3, 1, None)
    channels, source = width, layers[-1]
    for stage in range(3):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            n_out = width << stage
            layers.append(basic_block(parts, channels, n_out, stride, 3, post_activation, alpha, source))
            channels, source = n_out, layers[-1].post_activation
    return Sequential(*layers, *_head(parts, channels, num_classes, source))


def resnet20(**options: Any) -> Sequential:
    """``resnet_cifar(20)``: 3 blocks per stage, 0.27 M parameters for 10 classes."""
    return resnet_cifar(20, **options)


def resnet32(**options: Any) -> Sequential:
    """``resnet_cifar(32)``: 5 blocks per stage."""
    return resnet_cifar(32, **options)


def resnet56(**options: Any) -> Sequential:
    """``resnet_cifar(56)``: 9 blocks per stage."""
    return resnet_cifar(56, **options)


def resnet50(
    num_classes: int = 100,
    in_channels: int = 3,
    width: int = 64,
    stages: Sequence[int] = (3, 4, 6, 3),
    activation: str | ActivationFunction = "relu",
    activation_options: dict[str, Any] | None = None,
    batch_norm: bool = True,
    post_activation: bool = True,
    alpha: float = 1.0,
    init: str | nn_init.Initializer = "kaiming_normal",
    dtype: Any = None,
    rng: nn_init.Rng = None,
) -> Sequential:
    """Bottleneck ResNet-50 for 32x32 inputs: a 3x3 stride-1 stem of ``width`` channels (no max
    pooling), stages of (3, 4, 6, 3) bottleneck blocks at widths width, 2, 4, 8 x width (outputs
    4x that; stride 2 at the start of every stage but the first), global average pooling,
    Linear. 23.7 M parameters for 100 classes at width 64."""
    parts = _Parts(2, activation, activation_options, batch_norm, init, dtype, rng)
    layers: list[Module] = parts.conv_act(in_channels, width, 3, 1, None)
    channels, source = width, layers[-1]
    for stage, blocks in enumerate(stages):
        for block in range(_check_count("blocks per stage", blocks)):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(
                bottleneck_block(parts, channels, width << stage, stride, post_activation, alpha, source)
            )
            channels, source = 4 * (width << stage), layers[-1].post_activation
    return Sequential(*layers, *_head(parts, channels, num_classes, source))


def resnet1d(
    in_features: int = 40,
    num_classes: int = 10,
    width: int = 32,
    stages: Sequence[int] = (1, 1, 1),
    kernel_size: int = 3,
    activation: str | ActivationFunction = "relu",
    activation_options: dict[str, Any] | None = None,
    batch_norm: bool = False,
    post_activation: bool = False,
    alpha: float = 1.0,
    init: str | nn_init.Initializer = "lecun_normal",
    dtype: Any = None,
    rng: nn_init.Rng = None,
) -> Sequential:
    """A 1-D residual CNN for sequences given as (batch, in_features) rows (MNIST-1D: 40):
    one channel of length in_features, a conv of kernel 5 to ``width`` channels and phi, then
    ``stages[i]`` basic blocks at width * 2^i channels (stride 2 at the start of every stage but
    the first), global average pooling, Linear."""
    parts = _Parts(1, activation, activation_options, batch_norm, init, dtype, rng)
    in_features = _check_count("in_features", in_features)
    layers: list[Module] = [Unflatten(1, in_features), *parts.conv_act(1, width, 5, 1, None)]
    channels, source = width, layers[-1]
    for stage, blocks in enumerate(stages):
        for block in range(_check_count("blocks per stage", blocks)):
            stride = 2 if stage > 0 and block == 0 else 1
            n_out = width << stage
            layers.append(
                basic_block(parts, channels, n_out, stride, kernel_size, post_activation, alpha, source)
            )
            channels, source = n_out, layers[-1].post_activation
    return Sequential(*layers, *_head(parts, channels, num_classes, source))
