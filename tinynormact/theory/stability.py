"""THEORY E19-E22: the stability of the fixed points of E8 (the q map's slope, the backward
factor, depth scales) and the growth at large q."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction
from tinynormact.theory.depth import _SEARCH_DECADES, _variance
from tinynormact.theory.moments import Act, QLike, _as_q, _nodes, _shaped, gaussian_moments

# --- E19-E22: stability of the fixed points of E8 ----------------------------------------------


def q_map_slope(act: Act, q: Any = 1.0, weight_var: float = 1.0) -> QLike:
    """THEORY E19: chi_q(q) = d/dq [weight_var * m2(q)] = weight_var * E[x phi(x) phi'(x)] / q.

    The slope of the forward map of E8 (the bias adds a constant and drops out). Stein's lemma
    turns d m2 / dq = E[phi(x)^2]' into E[x phi phi'] / q, so only phi and phi' are needed.
    ``q`` may be an array.
    """
    act = activations.get(act)
    q = _as_q(q)
    weight_var = _variance(weight_var, "weight_var", positive=True)
    flat_q, x, w = _nodes(act, q)
    return _shaped(weight_var * np.sum(w * x * act.f(x) * act.df(x), axis=1) / flat_q, q)


def backward_factor(act: Act, q: Any = 1.0, weight_var: float = 1.0) -> QLike:
    """THEORY E20: chi(q) = weight_var * d2(q), the per-layer factor of E9 for equal widths.

    E[delta^2] is multiplied by chi from layer l + 1 to layer l, so over L layers at a fixed point
    q* the backward signal changes by chi(q*)^L.
    """
    weight_var = _variance(weight_var, "weight_var", positive=True)
    return weight_var * gaussian_moments(act, q).d2


def depth_scale(slope: Any) -> QLike:
    """THEORY E21: xi = 1 / |log slope|, the depth over which a deviation changes e-fold.

    For a stable fixed point (chi_q < 1) deviations of q decay as chi_q^l = exp(-l / xi_q); for
    an unstable one they grow as exp(l / xi_q). The same applies to chi and the backward signal.
    inf when the slope is exactly 1 (no depth scale).
    """
    slope = np.asarray(slope, dtype=np.float64)
    with np.errstate(divide="ignore"):
        scale = 1.0 / np.abs(np.log(slope))
    return float(scale) if scale.ndim == 0 else scale


class FixedPoint(NamedTuple):
    """A fixed point q* of E8 (THEORY E22) with its slope chi_q (E19), backward factor chi (E20)
    and depth scale 1 / |log chi_q| (E21). ``stability``: "stable" (chi_q < 1), "unstable"
    (chi_q > 1), "marginal" (chi_q = 1 to 1e-9) or "every q" (the map is the identity: q = nan)."""

    q: float
    chi_q: float
    chi: float
    stability: str
    depth_scale: float


_FIXED_POINT_GRID = np.logspace(-_SEARCH_DECADES / 2, _SEARCH_DECADES / 2, 24 * _SEARCH_DECADES + 1)
_ZERO_X = 1e-150  # phi' just left and right of 0, for the slope at q* = 0


def _fixed_point(
    act: ActivationFunction, q: float, weight_var: float, stability: str | None = None
) -> FixedPoint:
    """E19-E21 at the fixed point q (NaN: every q is fixed, and q = 1 stands for all of them).
    At q = 0 both slopes are the limit weight_var (phi'(0-)^2 + phi'(0+)^2) / 2 (phi(x) ~ phi'(0+-) x
    for small |x|), taken from phi' on either side of 0 so that a slope of exactly 1 reads as 1."""
    if q == 0.0:
        side = np.array([-_ZERO_X, _ZERO_X])
        chi_q = chi = weight_var * float(np.mean(act.df(side) ** 2))
    else:
        at = q if math.isfinite(q) else 1.0
        chi_q, chi = float(q_map_slope(act, at, weight_var)), float(backward_factor(act, at, weight_var))
    if stability is None:
        stability = "marginal" if abs(chi_q - 1.0) <= 1e-9 else "stable" if chi_q < 1.0 else "unstable"
    scale = math.inf if stability in ("marginal", "every q") else depth_scale(chi_q)
    return FixedPoint(q, chi_q, chi, stability, scale)


def fixed_points(act: Act, weight_var: float = 1.0, bias_var: float = 0.0) -> list[FixedPoint]:
    """THEORY E22: every fixed point q* = weight_var * m2(q*) + bias_var of E8, in increasing q.

    q* = 0 is one when bias_var = 0 and phi(0) = 0 (its slope is the limit weight_var phi'(0)^2,
    the mean of the two one-sided values at a kink);
    the others are the sign changes of weight_var * m2(q) + bias_var - q on a log grid from 1e-6
    to 1e6 (24 points per decade), refined with brentq. A fixed point where the map only touches
    the diagonal without crossing it is not found. When the map is the identity on the whole grid
    (relu with weight_var = 2), one entry with q = nan and stability "every q" is returned.
    A stable q* attracts the iteration from both sides; an unstable one repels it, so q_l moves
    to the next stable point below or above, or to 0 or infinity.
    """
    act = activations.get(act)
    weight_var = _variance(weight_var, "weight_var", positive=True)
    bias_var = _variance(bias_var, "bias_var", positive=False)
    grid = _FIXED_POINT_GRID

    def excess(q: QLike) -> QLike:
        return weight_var * gaussian_moments(act, q).m2 + bias_var - q

    values = excess(grid)
    if np.all(np.abs(values) <= 1e-9 * grid):
        return [_fixed_point(act, math.nan, weight_var, "every q")]
    points = []
    if bias_var == 0.0 and abs(float(act.f(np.zeros(1))[0])) < 1e-15:
        points.append(_fixed_point(act, 0.0, weight_var))
    signs = np.sign(values)
    roots = [float(q) for q, sign in zip(grid, signs, strict=True) if sign == 0]
    from scipy.optimize import brentq  # SciPy loads when a root is sought

    for i in np.flatnonzero(signs[:-1] * signs[1:] < 0):
        roots.append(brentq(excess, grid[i], grid[i + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps))
    distinct = [q for i, q in enumerate(sorted(roots)) if i == 0 or q > sorted(roots)[i - 1] * (1 + 1e-9)]
    return points + [_fixed_point(act, q, weight_var) for q in distinct]


def large_q_growth(act: Act, weight_var: float = 1.0) -> float:
    """weight_var * rho(q) at q = 1e6: the factor by which E8 multiplies a very large q per layer.

    Above the largest fixed point q grows without bound when it exceeds 1 (swish: 1/2 times
    weight_var lambda^2, the relu-like tail), and falls back when it is below 1 (tanh: 0).
    """
    weight_var = _variance(weight_var, "weight_var", positive=True)
    q = float(_FIXED_POINT_GRID[-1])
    return weight_var * gaussian_moments(act, q).m2 / q
