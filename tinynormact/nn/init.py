"""Weight initializers. Each fills a (out_features, in_features) Parameter, or a convolution
weight (out_channels, in_channels, *kernel), in place.

Random numbers are drawn on the host from ``rng`` (an int seed or a NumPy Generator made by
``backend.default_rng``) and then moved to the parameter's device, so a seed gives the same
weights on every device.

Conventions. Weights are zero-mean, so pre-activations h = W x have zero mean and their variance
equals their second moment q. The variance factor (THEORY E8) is written Var(W) = g^2 / fan:

- ``lecun_normal``: Var(W) = g^2 / fan_in, g = ``gain`` (default 1: sigma_w^2 = 1 of THEORY);
- ``xavier_uniform`` / ``xavier_normal``: Var(W) = g^2 * 2 / (fan_in + fan_out), a compromise
  between keeping the forward variance (fan_in) and the backward one (fan_out);
- ``kaiming_normal`` / ``kaiming_uniform``: Var(W) = g^2 / fan with g computed from the theory
  for the activation that produced the layer's *input* (``gain``), never looked up in a table:
  E8 reads q_l = sigma_w^2 m2(q_{l-1}), so the gain that keeps q belongs to phi of the previous
  layer; the first layer of a network sees the data (identity, gain 1). ``mode="fan_in"`` uses
  the forward convention (g^2 * rho(q) = 1 keeps the second moment q, E8); ``mode="fan_out"``
  the backward one (g^2 * rho'(q) = 1 keeps E[delta^2], E9). PyTorch's ``nonlinearity=`` names
  the same activation (the one before the layer), but its gains come from a table
  (docs/THEORY.md, "Initialization gains");
- ``orthogonal``: g times a (semi-)orthogonal matrix, so |W x| = g |x| for in <= out.

For a convolution weight, fan_in = in_channels * prod(kernel) (the number of inputs one output
element sums, as a Linear's in_features) and fan_out = out_channels * prod(kernel); orthogonal
treats the weight as the (out_channels, in_channels * prod(kernel)) matrix of im2col.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tinynormact import theory
from tinynormact.engine import backend
from tinynormact.nn.module import Parameter
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction

Rng = int | Any | None  # an int seed, a NumPy Generator, or None for fresh entropy
Initializer = Callable[..., None]

__all__ = [
    "as_generator",
    "gain",
    "lecun_normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_normal",
    "kaiming_uniform",
    "orthogonal",
    "zeros",
    "initialize",
    "takes_gain_from_activation",
    "INITIALIZERS",
]


def as_generator(rng: Rng) -> Any:
    """``rng`` as a NumPy Generator (an int or None seeds a new one)."""
    return rng if isinstance(rng, backend.np.random.Generator) else backend.default_rng(rng)


def _fans(weight: Parameter) -> tuple[int, int]:
    """(fan_in, fan_out): (in, out) of a Linear weight, times prod(kernel) for a convolution."""
    if weight.ndim < 2:
        raise ValueError(
            f"initializers expect an (out, in) or (out, in, *kernel) weight, got shape {weight.shape}"
        )
    receptive_field = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive_field, weight.shape[0] * receptive_field


def _fill(weight: Parameter, values: Any) -> None:
    weight.data = backend.asarray(values, dtype=weight.dtype, device=weight.device)


def _normal(weight: Parameter, std: float, rng: Rng) -> None:
    _fill(weight, std * as_generator(rng).standard_normal(weight.shape))


def _uniform(weight: Parameter, std: float, rng: Rng) -> None:
    bound = math.sqrt(3.0) * std  # U(-a, a) has variance a^2 / 3
    _fill(weight, as_generator(rng).uniform(-bound, bound, weight.shape))


def gain(
    activation: str | ActivationFunction = "identity", convention: str = "forward", q: float = 1.0
) -> float:
    """The gain g of ``theory.init_gain`` (THEORY E12-E14 read as weight scales) at input q.

    "forward": g^2 * rho(q) = 1, the second moment of h is kept (E8); "backward":
    g^2 * rho'(q) = 1, E[delta^2] is kept (E9); "balanced": E14's mean of the two. relu gives
    sqrt(2) under every convention, identity 1.
    """
    return float(theory.init_gain(activations.get(activation), convention, q))


def lecun_normal(weight: Parameter, gain: float = 1.0, rng: Rng = None) -> None:
    """N(0, gain^2 / fan_in): the sigma_w^2 = gain^2 of THEORY E8-E9."""
    fan_in, _ = _fans(weight)
    _normal(weight, gain / math.sqrt(fan_in), rng)


def xavier_normal(weight: Parameter, gain: float = 1.0, rng: Rng = None) -> None:
    """N(0, gain^2 * 2 / (fan_in + fan_out)) (Glorot and Bengio)."""
    fan_in, fan_out = _fans(weight)
    _normal(weight, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def xavier_uniform(weight: Parameter, gain: float = 1.0, rng: Rng = None) -> None:
    """Uniform with variance gain^2 * 2 / (fan_in + fan_out) (Glorot and Bengio)."""
    fan_in, fan_out = _fans(weight)
    _uniform(weight, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(weight: Parameter, activation: str | ActivationFunction, mode: str, q: float) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(weight)
    if mode == "fan_in":
        return gain(activation, "forward", q) / math.sqrt(fan_in)
    return gain(activation, "backward", q) / math.sqrt(fan_out)


def kaiming_normal(
    weight: Parameter,
    activation: str | ActivationFunction = "relu",
    mode: str = "fan_in",
    q: float = 1.0,
    rng: Rng = None,
) -> None:
    """N(0, g^2 / fan): fan_in with the forward gain (E8), fan_out with the backward gain (E9)."""
    _normal(weight, _kaiming_std(weight, activation, mode, q), rng)


def kaiming_uniform(
    weight: Parameter,
    activation: str | ActivationFunction = "relu",
    mode: str = "fan_in",
    q: float = 1.0,
    rng: Rng = None,
) -> None:
    """Uniform with the variance of ``kaiming_normal``."""
    _uniform(weight, _kaiming_std(weight, activation, mode, q), rng)


def orthogonal(weight: Parameter, gain: float = 1.0, rng: Rng = None) -> None:
    """gain times a random (semi-)orthogonal matrix: QR of a Gaussian matrix with the signs of
    R's diagonal moved into Q, which makes Q Haar-distributed."""
    _fans(weight)  # checks the shape
    fan_out, fan_in = weight.shape[0], math.prod(weight.shape[1:])  # the im2col matrix
    rows, cols = max(fan_out, fan_in), min(fan_out, fan_in)
    q, r = backend.np.linalg.qr(as_generator(rng).standard_normal((rows, cols)))
    q = q * backend.np.sign(backend.np.diag(r))
    _fill(weight, gain * (q if fan_out >= fan_in else q.T).reshape(weight.shape))


def zeros(weight: Parameter, rng: Rng = None) -> None:
    """All zeros (biases)."""
    _fill(weight, backend.np.zeros(weight.shape))


INITIALIZERS: dict[str, Initializer] = {
    "lecun_normal": lecun_normal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "orthogonal": orthogonal,
}
_ALIASES = {"lecun": "lecun_normal", "xavier": "xavier_normal", "kaiming": "kaiming_normal"}
_THEORY_GAIN = ("kaiming_normal", "kaiming_uniform")


def takes_gain_from_activation(scheme: str | Initializer) -> bool:
    """Whether the named ``scheme`` computes its gain from an activation (the kaiming schemes);
    the others take a gain of 1 unless ``initialize`` is given one to compute."""
    return isinstance(scheme, str) and _ALIASES.get(scheme, scheme) in _THEORY_GAIN


def initialize(
    weight: Parameter,
    scheme: str | Initializer = "lecun_normal",
    gain_from: str | ActivationFunction | None = None,
    rng: Rng = None,
) -> None:
    """Initialize ``weight`` with a named scheme or a callable ``scheme(weight, rng=rng)``.

    ``gain_from`` is the activation that produced the layer's input (THEORY E8): kaiming schemes
    take their gain from it (relu when None, as PyTorch's default); the other schemes use
    ``gain(gain_from, "forward")`` when it is given, else gain 1.
    """
    if callable(scheme):
        scheme(weight, rng=rng)
        return
    name = _ALIASES.get(scheme, scheme)
    if name not in INITIALIZERS:
        valid = ", ".join([*INITIALIZERS, *_ALIASES])
        raise ValueError(f"unknown initializer {scheme!r}; valid initializers are {valid}")
    if name in _THEORY_GAIN:
        INITIALIZERS[name](weight, activation=gain_from or "relu", rng=rng)
    else:
        g = 1.0 if gain_from is None else gain(gain_from, "forward")
        INITIALIZERS[name](weight, gain=g, rng=rng)
