"""Residual networks: ResidualBlock x + alpha * F(x) and the ResidualMLP builder (THEORY E17-E18)."""

from __future__ import annotations

from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.infra.validation import check_integer
from tinynormact.nn import init as nn_init
from tinynormact.nn.layers import Linear
from tinynormact.nn.mlp import MLP, gain_source
from tinynormact.nn.module import Module, Parameter, Sequential
from tinynormact.theory.activations import ActivationFunction


class ResidualBlock(Module):
    """x + alpha * F(x), or x + alpha * gate * F(x) with ``gate=True``.

    The branch F is ``branch_depth`` (Linear, activation) pairs followed by a Linear, all of
    ``width`` units (an ``MLP`` of widths [width] * (branch_depth + 2)), as in THEORY E17-E18.
    The optional gate is a learnable scalar initialised at 0, so the block starts as the identity.
    The other options are those of ``MLP`` (``batch_norm``: a BatchNorm1d before each of the
    branch's activations).
    """

    def __init__(
        self,
        width: int,
        activation: str | ActivationFunction = "relu",
        branch_depth: int = 1,
        alpha: float = 1.0,
        gate: bool = False,
        activation_options: dict[str, Any] | None = None,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        dtype: Any = None,
        rng: nn_init.Rng = None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        width, branch_depth = check_integer("width", width, 1), check_integer("branch_depth", branch_depth, 1)
        self.alpha = float(alpha)
        widths = [width] * (branch_depth + 2)
        self.branch = MLP(widths, activation, activation_options, bias, init, dtype, rng, batch_norm)
        dtype = backend.get_default_dtype() if dtype is None else dtype
        self.gate = Parameter(0.0, dtype=dtype) if gate else None

    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        branch = self.branch(x)
        scale = self.alpha if self.gate is None else self.gate * self.alpha
        return x + branch * scale

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gate={self.gate is not None}"


class ResidualMLP(Sequential):
    """Linear(in_features, width), then ``depth`` ResidualBlocks of ``width``, then
    Linear(width, out_features). No activation sits between the input projection and the
    first block, nor before the output Linear. Options as in ``ResidualBlock`` and ``MLP``; one
    ``rng`` draws every weight in order."""

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int,
        out_features: int,
        activation: str | ActivationFunction = "relu",
        branch_depth: int = 1,
        alpha: float = 1.0,
        gate: bool = False,
        activation_options: dict[str, Any] | None = None,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        dtype: Any = None,
        rng: nn_init.Rng = None,
        batch_norm: bool = False,
    ) -> None:
        depth = check_integer("depth", depth, 1)
        rng = nn_init.as_generator(rng)
        gain_from = gain_source(init, None)  # both see a residual stream, not an activation
        block_options = dict(
            activation=activation,
            branch_depth=branch_depth,
            alpha=alpha,
            gate=gate,
            activation_options=activation_options,
            bias=bias,
            init=init,
            dtype=dtype,
            rng=rng,
            batch_norm=batch_norm,
        )
        super().__init__(
            Linear(in_features, width, bias, init, gain_from, dtype, rng),
            *(ResidualBlock(width, **block_options) for _ in range(depth)),
            Linear(width, out_features, bias, init, gain_from, dtype, rng),
        )
