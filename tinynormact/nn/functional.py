"""Stateless functions on Tensors (``import tinynormact.nn.functional as F``).

- ``activation(x, name, **params)`` for any activation name, and one function per name
  (``F.relu(x)``, ``F.swish(x, beta=2.0)``, ...);
- any ActivationFunction, such as the static normalization of THEORY E15
  ``F.activation(x, theory.normalized("swish"))``; the "n<name>" spelling, and the adaptive
  normalization (which keeps running statistics), are layers: ``nn.activation("nswish")``;
- ``softmax``, ``log_softmax`` (from ``ops``), ``softmax_cross_entropy``, ``mse_loss`` (from
  ``losses``).
"""

from __future__ import annotations

from typing import Any

from tinynormact.engine import ops
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.ops import log_softmax, softmax
from tinynormact.nn.losses import mse_loss, softmax_cross_entropy
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction

__all__ = [
    "activation",
    "elu",
    "erf",
    "gelu",
    "identity",
    "leaky_relu",
    "log_softmax",
    "mish",
    "mse_loss",
    "relu",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softmax_cross_entropy",
    "softplus",
    "softsign",
    "swish",
    "tanh",
]


def activation(x: Any, name: str | ActivationFunction, **params: Any) -> Tensor:
    """phi(x) for the activation ``name`` (or an ActivationFunction) with its ``params``."""
    return ops.activation(ops.as_tensor(x), activations.get(name, **params))


def identity(x: Any) -> Tensor:
    """x."""
    return activation(x, "identity")


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    return activation(x, "relu")


def leaky_relu(x: Any, slope: float = 0.01) -> Tensor:
    """x for x > 0, slope * x otherwise."""
    return activation(x, "leaky_relu", slope=slope)


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return activation(x, "elu", alpha=alpha)


def selu(x: Any) -> Tensor:
    """scale * elu_alpha(x) with SELU's self-normalizing constants."""
    return activation(x, "selu")


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x) ("tanh" for the tanh approximation)."""
    return activation(x, "gelu", approximate=approximate)


def swish(x: Any, beta: float = 1.0) -> Tensor:
    """x * sigmoid(beta * x)."""
    return activation(x, "swish", beta=beta)


def silu(x: Any) -> Tensor:
    """x * sigmoid(x) (swish with beta = 1)."""
    return activation(x, "swish")


def mish(x: Any) -> Tensor:
    """x * tanh(softplus(x))."""
    return activation(x, "mish")


def softplus(x: Any) -> Tensor:
    """log(1 + exp(x))."""
    return activation(x, "softplus")


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent."""
    return activation(x, "tanh")


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + exp(-x))."""
    return activation(x, "sigmoid")


def softsign(x: Any) -> Tensor:
    """x / (1 + |x|)."""
    return activation(x, "softsign")


def erf(x: Any) -> Tensor:
    """The error function."""
    return activation(x, "erf")
