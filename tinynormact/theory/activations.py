"""The activation zoo: each activation is a pair (phi, phi') defined once, on arrays.

The same pair is used by the autograd op (``ops.activation``), by the layers in ``nn`` and by the
variance theory in ``theory`` (docs/THEORY.md), so the network and the theory can never disagree
about what an activation is.

    >>> act = get("swish", beta=1.0)
    >>> act
    swish(beta=1.0)
    >>> act.f(x), act.df(x)          # phi(x) and phi'(x), elementwise, same dtype as x

Every ``f``/``df`` works on NumPy and CuPy arrays, keeps the input's dtype (all constants are
Python floats, which never upcast float32 arrays) and is written to stay finite without overflow
warnings for |x| up to 1e4: exponentials only ever see non-positive arguments.

Conventions at kinks: relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha (the left value).
``kinks`` lists the points where phi or phi' is not smooth; the Gaussian quadrature in ``theory``
splits its integrals there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tinynormact.engine import backend
from tinynormact.infra.validation import is_finite_real

__all__ = ["ActivationFunction", "affine", "get", "is_alias", "names"]

Array = Any  # a NumPy or CuPy array

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_GELU_TANH_CUBIC = 0.044715
# SELU's constants (Klambauer et al. 2017); theory.solve_selu re-derives them.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554804


@dataclass(frozen=True, eq=False, repr=False)
class ActivationFunction:
    """An activation phi with its derivative phi'.

    ``name`` is the canonical name, ``params`` its parameters, ``f``/``df`` compute phi and phi'
    elementwise on an array, ``kinks`` are the x where phi or phi' is not smooth.
    ``df_from_output``, where phi is invertible enough, computes phi'(x) from y = phi(x) (tanh:
    1 - y^2): the autograd op's backward then needs no recomputation of phi.
    """

    name: str
    params: dict[str, Any]
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    kinks: tuple[float, ...] = ()
    description: str = field(default="")
    df_from_output: Callable[[Array], Array] | None = None

    def __call__(self, x: Array) -> Array:
        return self.f(x)

    def __repr__(self) -> str:
        return self.description or self.name


# --- phi and phi' of every activation -------------------------------------------------------------


def _identity(x: Array) -> Array:
    return x.copy()


def _identity_df(x: Array) -> Array:
    return backend.get_array_module(x).ones_like(x)


def _step(x: Array) -> Array:
    """1 where x > 0, else 0, in x's dtype (arithmetic on this mask is branch-free, and several
    times faster than ``where`` on random signs)."""
    return (x > 0).astype(x.dtype)


def _relu(x: Array) -> Array:
    return backend.get_array_module(x).maximum(x, 0)


def _relu_df(x: Array) -> Array:
    return _step(x)


def _leaky_relu(x: Array, slope: float) -> Array:
    xp = backend.get_array_module(x)
    if slope == 0.0:  # relu: one pass instead of two
        return xp.maximum(x, 0.0)
    return xp.maximum(x, slope * x) if slope <= 1.0 else xp.minimum(x, slope * x)


def _leaky_relu_df(x: Array, slope: float) -> Array:
    return slope + (1.0 - slope) * _step(x)


def _elu(x: Array, alpha: float, scale: float = 1.0) -> Array:
    xp = backend.get_array_module(x)
    return scale * (xp.maximum(x, 0) + alpha * xp.expm1(xp.minimum(x, 0)))


def _elu_df(x: Array, alpha: float, scale: float = 1.0) -> Array:
    xp = backend.get_array_module(x)
    positive = _step(x)
    return scale * (positive + (1.0 - positive) * alpha * xp.exp(xp.minimum(x, 0)))


def _sigmoid(x: Array) -> Array:
    xp = backend.get_array_module(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    s = 1.0 / (1.0 + e)  # sigmoid(|x|)
    return s * (1.0 + (e - 1.0) * (x < 0))  # sigmoid(x) = e * s for x < 0: no cancellation


def _sigmoid_df(x: Array) -> Array:
    s = _sigmoid(x)
    return s * (1.0 - s)


def _softplus(x: Array) -> Array:
    xp = backend.get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def _swish(x: Array, beta: float) -> Array:
    return x * _sigmoid(beta * x)


def _swish_df(x: Array, beta: float) -> Array:
    s = _sigmoid(beta * x)
    return s + beta * x * s * (1.0 - s)


def _mish(x: Array) -> Array:
    return x * backend.get_array_module(x).tanh(_softplus(x))


def _mish_df(x: Array) -> Array:
    t = backend.get_array_module(x).tanh(_softplus(x))
    return t + x * (1.0 - t * t) * _sigmoid(x)


def _gelu(x: Array, approximate: str) -> Array:
    xp = backend.get_array_module(x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_CUBIC * x**3)))
    return 0.5 * x * (1.0 + backend.erf(x / _SQRT_2))


def _gelu_df(x: Array, approximate: str) -> Array:
    xp = backend.get_array_module(x)
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_CUBIC * x**3))
        dinner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_CUBIC * x * x)
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner
    gaussian_pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return 0.5 * (1.0 + backend.erf(x / _SQRT_2)) + x * gaussian_pdf


def _tanh_df(x: Array) -> Array:
    t = backend.get_array_module(x).tanh(x)
    return 1.0 - t * t


def _softsign(x: Array) -> Array:
    return x / (1.0 + backend.get_array_module(x).abs(x))


def _softsign_df(x: Array) -> Array:
    d = 1.0 + backend.get_array_module(x).abs(x)
    return 1.0 / (d * d)


def _tanh_df_from_output(y: Array) -> Array:
    return 1.0 - y * y


def _sigmoid_df_from_output(y: Array) -> Array:
    return y * (1.0 - y)


def _relu_df_from_output(y: Array) -> Array:
    return _step(y)


def _leaky_relu_df_from_output(y: Array, slope: float) -> Array:
    return _step(y) if slope == 0.0 else slope + (1.0 - slope) * _step(y)


def _elu_df_from_output(y: Array, alpha: float, scale: float = 1.0) -> Array:
    # for x <= 0, y = scale * alpha * (e^x - 1), so phi'(x) = scale * alpha * e^x = y + scale * alpha
    positive = _step(y)
    return scale * positive + (1.0 - positive) * (y + scale * alpha)


def _softplus_df_from_output(y: Array) -> Array:
    # y = log(1 + e^x) gives sigmoid(x) = 1 - e^-y
    return -backend.get_array_module(y).expm1(-y)


def _identity_df_from_output(y: Array) -> Array:
    return backend.get_array_module(y).ones_like(y)


def _erf(x: Array) -> Array:
    return backend.erf(x)


def _erf_df(x: Array) -> Array:
    return _TWO_OVER_SQRT_PI * backend.get_array_module(x).exp(-x * x)


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    """One parameter: its default, a validity check and the words that describe valid values."""

    default: Any
    valid: Callable[[Any], bool]
    expected: str


_REAL = _Param(None, is_finite_real, "a finite real number")
_NON_NEGATIVE = _Param(None, lambda v: is_finite_real(v) and v >= 0, "a finite real number >= 0")
_POSITIVE = _Param(None, lambda v: is_finite_real(v) and v > 0, "a finite real number > 0")


def _with_default(kind: _Param, default: Any) -> _Param:
    return _Param(default, kind.valid, kind.expected)


@dataclass(frozen=True)
class _Entry:
    f: Callable[..., Array]
    df: Callable[..., Array]
    params: dict[str, _Param] = field(default_factory=dict)
    kinks: tuple[float, ...] = ()
    df_from_output: Callable[..., Array] | None = None


_REGISTRY: dict[str, _Entry] = {
    "identity": _Entry(_identity, _identity_df, df_from_output=_identity_df_from_output),
    "relu": _Entry(_relu, _relu_df, kinks=(0.0,), df_from_output=_relu_df_from_output),
    # phi(x) = slope * x is decreasing for a negative slope: y > 0 no longer means x > 0
    "leaky_relu": _Entry(_leaky_relu, _leaky_relu_df, {"slope": _with_default(_REAL, 0.01)}, (0.0,)),
    "elu": _Entry(
        _elu,
        _elu_df,
        {"alpha": _with_default(_NON_NEGATIVE, 1.0)},
        (0.0,),
        df_from_output=_elu_df_from_output,
    ),
    "selu": _Entry(
        _elu,
        _elu_df,
        {"alpha": _with_default(_NON_NEGATIVE, SELU_ALPHA), "scale": _with_default(_POSITIVE, SELU_SCALE)},
        (0.0,),
        df_from_output=_elu_df_from_output,
    ),
    "gelu": _Entry(
        _gelu,
        _gelu_df,
        {"approximate": _Param("none", lambda v: v in ("none", "tanh"), "one of 'none', 'tanh'")},
    ),
    "swish": _Entry(_swish, _swish_df, {"beta": _with_default(_NON_NEGATIVE, 1.0)}),
    "mish": _Entry(_mish, _mish_df),
    "softplus": _Entry(_softplus, _sigmoid, df_from_output=_softplus_df_from_output),
    # NumPy's ufunc itself (it dispatches to CuPy's): the autograd op can then write in place
    "tanh": _Entry(backend.np.tanh, _tanh_df, df_from_output=_tanh_df_from_output),
    "sigmoid": _Entry(_sigmoid, _sigmoid_df, df_from_output=_sigmoid_df_from_output),
    "softsign": _Entry(_softsign, _softsign_df, kinks=(0.0,)),
    "erf": _Entry(_erf, _erf_df),
}
_ALIASES = {"silu": "swish"}


def names() -> list[str]:
    """The canonical names of the registered activations."""
    return list(_REGISTRY)


def _canonical(name: str) -> str | None:
    name = _ALIASES.get(name, name)
    return name if name in _REGISTRY else None


def _describe(name: str, params: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})" if params else name


def get(name: str | ActivationFunction, **params: Any) -> ActivationFunction:
    """The activation called ``name`` with ``params`` overriding its defaults.

    An ActivationFunction is returned unchanged. An unknown name, parameter or invalid value
    raises ValueError saying what would be valid.
    """
    if isinstance(name, ActivationFunction):
        if params:
            raise ValueError(f"get({name!r}) got parameters {params}; pass a name to set parameters")
        return name
    canonical = _canonical(name) if isinstance(name, str) else None
    if canonical is None:
        valid = ", ".join(names() + list(_ALIASES))
        raise ValueError(f"unknown activation {name!r}; valid activations are {valid}")
    entry = _REGISTRY[canonical]
    for key, value in params.items():
        if key not in entry.params:
            valid = ", ".join(entry.params) or "none"
            raise ValueError(f"activation {canonical!r} has no parameter {key!r}; its parameters: {valid}")
        if not entry.params[key].valid(value):
            expected = entry.params[key].expected
            raise ValueError(f"activation {canonical!r}: parameter {key}={value!r} must be {expected}")
    values = {key: params.get(key, spec.default) for key, spec in entry.params.items()}
    values = {key: float(v) if is_finite_real(v) else v for key, v in values.items()}

    def with_values(fn: Callable[..., Array]) -> Callable[[Array], Array]:
        return partial(fn, **values) if values else fn  # no wrapper when there is nothing to bind

    return ActivationFunction(
        name=canonical,
        params=values,
        f=with_values(entry.f),
        df=with_values(entry.df),
        kinks=entry.kinks,
        description=_describe(canonical, values),
        df_from_output=None if entry.df_from_output is None else with_values(entry.df_from_output),
    )


def is_alias(name: str) -> bool:
    """Whether ``name`` is another name of a registered activation ("silu" for swish)."""
    return name in _ALIASES


def affine(act: str | ActivationFunction, scale: float, shift: float = 0.0) -> ActivationFunction:
    """The activation x -> scale * (phi(x) - shift), with derivative scale * phi'(x).

    Used for the normalized activations (THEORY E12-E15) and the scaling identities.
    """
    base = get(act)
    scale, shift = float(scale), float(shift)
    if not (math.isfinite(scale) and math.isfinite(shift)):
        raise ValueError(f"affine({base!r}): scale={scale!r} and shift={shift!r} must be finite")

    def f(x: Array) -> Array:
        return scale * (base.f(x) - shift) if shift else scale * base.f(x)

    def df(x: Array) -> Array:
        return scale * base.df(x)

    df_from_output = None
    if base.df_from_output is not None and scale != 0.0:
        base_df_from_output = base.df_from_output

        def df_from_output(y: Array) -> Array:
            return scale * base_df_from_output(y / scale + shift)

    def label(inner: str) -> str:
        return f"{scale:.6g}*({inner}{-shift:+.6g})" if shift else f"{scale:.6g}*{inner}"

    return ActivationFunction(
        name=label(base.name),
        params={"scale": scale, "shift": shift},
        f=f,
        df=df,
        kinks=base.kinks,
        description=label(repr(base)),
        df_from_output=df_from_output,
    )
