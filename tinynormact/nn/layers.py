"""The basic layers: Linear (h = x W^T + b) and Activation (x = phi(h))."""

from __future__ import annotations

from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.nn import init as nn_init
from tinynormact.nn.module import Module, Parameter
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction


class Linear(Module):
    """h = x @ weight.T + bias for x of shape (batch, in_features); one fused graph node.

    ``weight`` has shape (out_features, in_features), ``bias`` (out_features,) starts at zero.
    ``init`` is a scheme name of ``nn.init`` (default "lecun_normal": Var(W) = 1 / fan_in, the
    sigma_w^2 = 1 of THEORY E8-E14) or a callable ``init(weight, rng=rng)``. ``gain_from`` only
    sets the initialization gain: the activation (a name or ActivationFunction) that produced
    this layer's *input*, whose gain the theory computes (THEORY E8; see ``nn.init.initialize``).
    ``rng`` is an int seed or a NumPy Generator; ``dtype`` defaults to the default dtype.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        gain_from: str | ActivationFunction | None = None,
        dtype: Any = None,
        rng: nn_init.Rng = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if int(value) != value or value < 1:
                raise ValueError(f"Linear: {name} must be an integer >= 1, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = backend.get_default_dtype() if dtype is None else dtype
        self.weight = Parameter(backend.np.zeros((self.out_features, self.in_features)), dtype=dtype)
        nn_init.initialize(self.weight, init, gain_from, rng)
        self.bias = Parameter(backend.np.zeros(self.out_features), dtype=dtype) if bias else None

    def forward(self, x: Any) -> Tensor:
        return ops.linear(ops.as_tensor(x), self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Activation(Module):
    """x = phi(h) elementwise, for any activation name of ``activations`` with its parameters.

    ``Activation("relu")``, ``Activation("swish", beta=2.0)``. ``function`` is the
    ActivationFunction applied, which the theory and the initializers use. For a normalized
    activation ("nswish") use the factory ``nn.activation``, which builds either kind.
    """

    def __init__(self, name: str | ActivationFunction, **params: Any) -> None:
        super().__init__()
        self.function = activations.get(name, **params)

    def forward(self, x: Any) -> Tensor:
        return ops.activation(ops.as_tensor(x), self.function)

    def extra_repr(self) -> str:
        return repr(self.function)
