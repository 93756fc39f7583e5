"""The theory of the adaptive normalized activation (docs/THEORY.md, E23-E29): ``tn.theory.adaptive``.

The adaptive layer (``nn.NormalizedActivation(mode="adaptive")``, E16) recomputes lambda from
each batch. For a Gaussian batch h ~ N(0, q) its lambda is a function of q, Lambda(q), and the
layer's forward map and backward factor follow from the Gaussian moments E1-E4 as E19-E20 do
for the static form; ``estimate`` is the layer's option of the same name:

- E23 ``adaptive_lambda``: Lambda(q) for "batch" and "gaussian" (the rule applied to the gains
  at q itself), for "output" (E25: the static lambda times sqrt(s(q_n) / s(q)), q_n the layer's
  nominal q), and clipped to [lambda_static / c, c lambda_static] with a bound c (E28);
- E26 ``adaptive_q_map`` F(q) = weight_var Lambda(q)^2 s(q) (s = m2, centred v) and its slope
  ``adaptive_q_map_slope``;
- E27 ``adaptive_backward_factor`` chi(q) = weight_var Lambda(q)^2 d2(q), lambda held constant
  in backward (the layer's default);
- E29 ``adaptive_profile``: q_l through a network whose layers have weight variances w_l, the
  drift of q when training moves the weights.

The "batch" estimate equals E23 for a Gaussian batch only; the "gaussian" estimate (E24) equals
it for every batch with the same q_b. The assumptions are those of the rest of ``theory`` (mean field:
Gaussian pre-activations at large width, gradient independence in backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynormact.engine.backend import np
from tinynormact.theory.moments import Act, GaussianMoments, gaussian_moments
from tinynormact.theory.normalization import lambda_from_gains, normalization

__all__ = [
    "ESTIMATES",
    "lambda_ceiling",
    "adaptive_lambda",
    "adaptive_q_map",
    "adaptive_q_map_slope",
    "adaptive_backward_factor",
    "adaptive_profile",
]

ESTIMATES = ("batch", "gaussian", "output")
_SLOPE_STEP = 1e-4  # relative step of the central difference in log q (error ~ 1e-8)


def lambda_ceiling(eps: float = 1e-8) -> float:
    """E27's ceiling: with both gains floored at ``eps`` every rule gives lambda = 1/sqrt(eps)."""
    return 1.0 / np.sqrt(eps)


def _spread(moments: GaussianMoments, center: bool) -> Any:
    return moments.v if center else moments.m2


def adaptive_lambda(
    act: Act,
    q: Any,
    rule: str = "balanced",
    center: bool = False,
    estimate: str = "batch",
    lambda_bound: float = 0.0,
    q_nominal: float = 1.0,
) -> Any:
    """THEORY E23 (E25 for "output", E28 with a bound): the lambda the adaptive layer applies to a
    Gaussian batch of second moment ``q`` (an array of q gives an array)."""
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown estimate {estimate!r}; valid: {', '.join(ESTIMATES)}")
    q = np.asarray(q, dtype=np.float64)
    moments = gaussian_moments(act, q)
    static = float(normalization(act, rule, q_nominal, center).lambda_)
    if estimate == "output":
        nominal = float(_spread(gaussian_moments(act, q_nominal), center))
        lam = static * np.sqrt(nominal / _spread(moments, center))
    else:
        lam = lambda_from_gains(rule, _spread(moments, center) / q, moments.d2)
    if lambda_bound:
        lam = np.clip(lam, static / lambda_bound, static * lambda_bound)
    return lam


def adaptive_q_map(act: Act, q: Any, weight_var: float = 1.0, **options: Any) -> Any:
    """THEORY E26: F(q) = weight_var Lambda(q)^2 s(q), the next layer's q (``options`` are
    ``adaptive_lambda``'s). "batch" forward: F(q) = weight_var q, the identity at weight_var 1;
    "output": F = weight_var lambda_static^2 s(q_nominal), a constant."""
    moments = gaussian_moments(act, q)
    lam = adaptive_lambda(act, q, **options)
    return weight_var * lam**2 * _spread(moments, options.get("center", False))


def adaptive_q_map_slope(act: Act, q: Any, weight_var: float = 1.0, **options: Any) -> Any:
    """THEORY E26: dF/dq, by a central difference in log q (relative step 1e-4). 1 for the
    "batch" forward rule at weight_var 1 (every q is a fixed point), 0 for "output"."""
    q = np.asarray(q, dtype=np.float64)
    up, down = q * (1 + _SLOPE_STEP), q / (1 + _SLOPE_STEP)
    rise = adaptive_q_map(act, up, weight_var, **options) - adaptive_q_map(act, down, weight_var, **options)
    return rise / (up - down)


def adaptive_backward_factor(act: Act, q: Any, weight_var: float = 1.0, **options: Any) -> Any:
    """THEORY E27: chi(q) = weight_var Lambda(q)^2 d2(q), lambda constant in backward. For
    "batch": forward rule weight_var kappa(q), backward weight_var, balanced
    weight_var (1 + kappa(q)) / 2 (kappa_c when centred)."""
    return weight_var * adaptive_lambda(act, q, **options) ** 2 * gaussian_moments(act, q).d2


def adaptive_profile(
    act: Act, weight_vars: Sequence[float], q0: float = 1.0, **options: Any
) -> np.ndarray:
    """THEORY E29: q_l of a stack of (Linear of weight variance w_l / fan_in, adaptive layer),
    q_1 = w_1 q0, q_{l+1} = F_{w_{l+1}}(q_l). For the "batch" forward rule q_L = q0 prod w_l:
    training that moves the weight variances by factors w_l moves q by their product, with no
    depth over which a deviation is forgotten (E21's xi_q is infinite); for "output"
    q_{l+1} = w_{l+1} lambda_static^2 s(q_nominal) whatever q_l is."""
    weight_vars = [float(w) for w in weight_vars]
    if not weight_vars or min(weight_vars) <= 0:
        raise ValueError(f"weight_vars must be a non-empty list of positive numbers, got {weight_vars!r}")
    q = [weight_vars[0] * float(q0)]
    for w in weight_vars[1:]:
        q.append(float(adaptive_q_map(act, q[-1], w, **options)))
    return np.array(q)
