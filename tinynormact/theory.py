"""The variance theory of docs/THEORY.md (equations E1-E18), on the host with NumPy and SciPy.

Everything here is a function of an activation (an ``activations.ActivationFunction`` or its name)
and of the second moment q of the pre-activations; nothing here touches autograd.

- E1-E4   ``gaussian_moments``: m1, m2, v, d2 of phi(sqrt(q) z), z ~ N(0, 1)
- E5-E7   ``rho``, ``rho_c``, ``rho_prime``, ``kappa``: the per-layer gains
- E8-E11  ``mlp_profile``: forward and backward second moments through a random MLP
- E12-E15 ``normalization``, ``normalized``, ``init_gain``: the normalizing factor lambda
- E17-E18 ``residual_profile``: the same for residual MLPs
- ``solve_selu``, ``forward_fixed_point``, ``critical_weight_var``, ``gains_table``
- E19-E22 ``q_map_slope``, ``backward_factor``, ``depth_scale``, ``fixed_points``: the stability
  of E8's fixed points, and ``stability_table``

Assumptions shared by the profiles (the standard mean-field analysis): weights are i.i.d. with
zero mean and variance weight_var / fan_in, biases i.i.d. with variance bias_var, inputs are
independent of the weights, and the width is large, so every pre-activation is Gaussian with
second moment q. Backward, the *gradient independence assumption*: the weights used in the
backward pass are treated as independent of those used in the forward pass.

Statistics convention (shared by ``tracking`` and ``plots``)
-------------------------------------------------------------
All quantities are second moments E[y^2] (not variances about the mean; ddof plays no role),
averaged over units and over examples, and backward quantities are *per example*: delta_l is
d loss_b / d h_l for one example's loss loss_b. The training loss is the batch *mean*
loss = (1/B) sum_b loss_b, so its gradient with respect to an activation is delta_l / B, and its
weight gradient is the mean over the batch of the per-example weight gradients. For B independent
examples with zero-mean per-example gradients, the second moment of that batch-mean weight
gradient is the per-example value divided by B (E10). Per-example values are what this module
returns; divide by B to compare with ``.grad`` of a mean-loss batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from scipy.optimize import brentq

from tinynormact import activations
from tinynormact.activations import ActivationFunction
from tinynormact.backend import np

__all__ = [
    "RULES",
    "GaussianMoments",
    "Normalization",
    "MLPProfile",
    "ResidualProfile",
    "gaussian_moments",
    "rho",
    "rho_c",
    "rho_prime",
    "kappa",
    "lambda_from_gains",
    "normalization",
    "normalized",
    "init_gain",
    "mlp_profile",
    "residual_profile",
    "solve_selu",
    "forward_fixed_point",
    "critical_weight_var",
    "q_map_slope",
    "backward_factor",
    "depth_scale",
    "FixedPoint",
    "fixed_points",
    "large_q_growth",
    "stability_table",
    "activation_stability",
    "format_fixed_points",
    "format_stability_table",
    "gains_table",
    "format_gains_table",
]

Act = str | ActivationFunction
QLike = float | np.ndarray
RULES = ("forward", "backward", "balanced")


class GaussianMoments(NamedTuple):
    """E1-E4 at one q (or arrays of them, one per q)."""

    m1: QLike
    m2: QLike
    v: QLike
    d2: QLike


class Normalization(NamedTuple):
    """phi_hat(x) = lambda * (phi(x) - mu) (THEORY E12-E15); ``lambda_`` because ``lambda`` is a
    Python keyword."""

    lambda_: QLike
    mu: QLike


# --- E1-E4: Gaussian expectations ------------------------------------------------------------------
#
# E[g(sqrt(q) z)] = integral of g(sqrt(q) z) N(z) dz, truncated to |z| <= 10 (the Gaussian mass
# outside is 1.5e-23, negligible even against activations that grow linearly). The range is cut
# into panels, each integrated by Gauss-Legendre. The panel edges are: a uniform grid in z (which
# resolves the Gaussian), a grid of fixed points in x = sqrt(q) z mapped to z (which resolves the
# activation's own features when q is large and they shrink in z), and the kinks of phi (so that
# no panel straddles a kink, where Gauss rules converge slowly). Every q gets the same number of
# panels, so a whole array of q is one vectorized evaluation of phi and phi'.

_Z_MAX = 10.0
_Z_EDGES = np.linspace(-_Z_MAX, _Z_MAX, 21)
_X_EDGES = np.array([-16.0, -8.0, -4.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


def _as_q(q: Any, name: str = "q") -> QLike:
    """q as a float (scalar input) or float64 array, checked to be finite and > 0."""
    arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be a finite number > 0 (a second moment), got {q!r}")
    return float(arr) if arr.ndim == 0 else arr


def _quadrature(kinks: tuple[float, ...], q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w, shape (len(q), points), with sum(w * g(z)) = E[g(z)], z ~ N(0,1)."""
    root_q = np.sqrt(q)[:, None]
    edges = np.concatenate(
        [
            np.broadcast_to(_Z_EDGES, (len(q), len(_Z_EDGES))),
            _X_EDGES / root_q,
            np.asarray(kinks, dtype=np.float64).reshape(1, -1) / root_q,
        ],
        axis=1,
    )
    edges = np.sort(np.clip(edges, -_Z_MAX, _Z_MAX), axis=1)
    half = 0.5 * (edges[:, 1:] - edges[:, :-1])[..., None]
    middle = 0.5 * (edges[:, 1:] + edges[:, :-1])[..., None]
    z = middle + half * _GL_NODES
    w = half * _GL_WEIGHTS * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z.reshape(len(q), -1), w.reshape(len(q), -1)


def _nodes(act: ActivationFunction, q: QLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points x ~ N(0, q) and weights w, shape (q.size, points): E[g(x)] = sum(w * g(x), axis=1)."""
    flat_q = np.atleast_1d(q).ravel()
    z, w = _quadrature(act.kinks, flat_q)
    return flat_q, np.sqrt(flat_q)[:, None] * z, w


def _shaped(values: np.ndarray, q: QLike) -> QLike:
    """One value per q, as a float for a scalar q and in q's shape otherwise."""
    return float(values[0]) if np.ndim(q) == 0 else values.reshape(np.shape(q))


def gaussian_moments(act: Act, q: Any = 1.0) -> GaussianMoments:
    """THEORY E1-E4: m1 = E[phi(x)], m2 = E[phi(x)^2], v = m2 - m1^2, d2 = E[phi'(x)^2].

    x = sqrt(q) z with z ~ N(0, 1), i.e. x ~ N(0, q). ``q`` may be an array: the results then
    have its shape. Accurate to about 1e-12 for every registered activation (kinks included).
    """
    act = activations.get(act)
    q = _as_q(q)
    _, x, w = _nodes(act, q)
    phi, dphi = act.f(x), act.df(x)
    m1 = np.sum(w * phi, axis=1)
    m2 = np.sum(w * phi * phi, axis=1)
    v = np.sum(w * (phi - m1[:, None]) ** 2, axis=1)  # two-pass: no cancellation in m2 - m1^2
    d2 = np.sum(w * dphi * dphi, axis=1)
    return GaussianMoments(*(_shaped(values, q) for values in (m1, m2, v, d2)))


# --- E5-E7: the two gains and their ratio ----------------------------------------------------------


def rho(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E5: forward gain rho(q) = m2(q) / q."""
    q = _as_q(q)
    return gaussian_moments(act, q).m2 / q


def rho_c(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E5 (centred): rho_c(q) = v(q) / q."""
    q = _as_q(q)
    return gaussian_moments(act, q).v / q


def rho_prime(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E6: backward gain rho'(q) = d2(q)."""
    return gaussian_moments(act, q).d2


def kappa(act: Act, q: Any = 1.0) -> QLike:
    """THEORY E7: kappa(q) = rho'(q) / rho(q)."""
    q = _as_q(q)
    m = gaussian_moments(act, q)
    return m.d2 * q / m.m2


# --- E12-E15: normalization --------------------------------------------------------------------------


def _check_rule(rule: str, what: str = "rule") -> str:
    if rule not in RULES:
        raise ValueError(f"unknown normalization {what} {rule!r}; valid: {', '.join(RULES)}")
    return rule


def lambda_from_gains(rule: str, rho: Any, rho_prime: Any) -> Any:
    """THEORY E12-E14: lambda from the two gains (centred: pass rho_c as ``rho``).

    E12 forward 1/sqrt(rho), E13 backward 1/sqrt(rho'), E14 balanced sqrt((1/rho + 1/rho') / 2).
    Only ``/``, ``+``, ``*`` and ``** 0.5`` are used, so the gains may be floats, arrays or
    Tensors (the adaptive layer in ``nn`` differentiates through this same function).
    """
    _check_rule(rule)
    if rule == "forward":
        lambda_squared = 1.0 / rho
    elif rule == "backward":
        lambda_squared = 1.0 / rho_prime
    else:
        lambda_squared = 0.5 * (1.0 / rho + 1.0 / rho_prime)
    return lambda_squared**0.5


def _lambda(m: GaussianMoments, q: QLike, rule: str, center: bool) -> QLike:
    """lambda from the Gaussian moments at q (rho_c when centred)."""
    return lambda_from_gains(rule, (m.v if center else m.m2) / q, m.d2)


def normalization(act: Act, rule: str = "balanced", q: Any = 1.0, center: bool = False) -> Normalization:
    """THEORY E12-E15: the scale lambda and shift mu of phi_hat = lambda * (phi - mu).

    shift = m1(q) when ``center`` else 0. Rules (weights of variance 1/fan_in):
    "forward" (E12) lambda = 1/sqrt(rho), with rho_c when centred, so that rho(phi_hat) = 1;
    "backward" (E13) lambda = 1/sqrt(rho'), so that rho'(phi_hat) = 1;
    "balanced" (E14) lambda^2 = (1/rho + 1/rho') / 2 (rho_c when centred), so that the mean of
    1/rho(phi_hat) and 1/rho'(phi_hat) is 1. E14 is the reading of the paper by its only public
    re-implementation, not a formula from the paper itself.
    """
    _check_rule(rule)
    q = _as_q(q)
    m = gaussian_moments(act, q)
    lam = _lambda(m, q, rule, center)
    return Normalization(float(lam) if np.ndim(lam) == 0 else lam, m.m1 if center else 0.0)


def normalized(act: Act, rule: str = "balanced", q: Any = 1.0, center: bool = False) -> ActivationFunction:
    """THEORY E15 (static normalization): the activation lambda * (phi - mu) fixed at ``q``."""
    if np.ndim(q) != 0:
        raise ValueError(f"normalized() needs one q, got an array of shape {np.shape(q)}")
    lam, mu = normalization(act, rule, q, center)
    return activations.affine(act, lam, mu)


def init_gain(act: Act, convention: str = "forward", q: Any = 1.0) -> QLike:
    """The gain g for weights of standard deviation g / sqrt(fan_in) that keep one signal critical.

    "forward": g = 1/sqrt(rho(q)) keeps E[h^2] = q layer after layer (E8 with weight_var = g^2);
    "backward": g = 1/sqrt(rho'(q)) keeps E[delta^2] (E9); "balanced" is E14's compromise.
    It is the uncentred lambda of ``normalization`` with the same rule: multiplying the next
    layer's weights by g and multiplying phi by g change every second moment identically.
    Examples at q = 1: relu sqrt(2) (He), identity 1, tanh forward 1.5925 (PyTorch's heuristic
    gain for tanh, 5/3, is a different convention).
    """
    _check_rule(convention, "convention")
    return normalization(act, convention, q).lambda_


# --- E8-E11: random MLP at initialization ---------------------------------------------------------


@dataclass(frozen=True)
class MLPProfile:
    """Per-layer second moments of a random MLP, arrays indexed by layer l = 1..L (entry l - 1).

    q: E[h_l^2] of the pre-activations; x_sq: E[x_l^2] of the layer's output; delta_sq:
    E[(d loss_b / d h_l)^2] per example; weight_grad_sq: E[(d loss_b / d W_l)_ij^2] per example;
    bias_grad_sq: E[(d loss_b / d b_l)_i^2] per example.
    """

    q: np.ndarray
    x_sq: np.ndarray
    delta_sq: np.ndarray
    weight_grad_sq: np.ndarray
    bias_grad_sq: np.ndarray


def _per_layer(value: float | Sequence[float], layers: int, name: str, positive: bool) -> np.ndarray:
    """A variance given once or per layer, as an array of length ``layers``, checked."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(layers, float(arr))
    low_ok = arr > 0 if positive else arr >= 0
    if arr.shape != (layers,) or not np.all(np.isfinite(arr) & low_ok):
        valid = f"a finite number {'> 0' if positive else '>= 0'}" + (
            f" or {layers} of them" if layers > 1 else ""
        )
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return arr


def _variance(value: float, name: str, positive: bool) -> float:
    """One variance, checked."""
    return float(_per_layer(value, 1, name, positive)[0])


def _count(value: Any, name: str) -> int:
    """``value`` as an int >= 1; ValueError naming ``name`` unless it is a whole number >= 1.

    Integral floats (3.0) are accepted; bools, strings, fractions (2.7) and non-finite values
    are not.
    """
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and int(value) == value and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def mlp_profile(
    act: Act,
    widths: Sequence[int],
    weight_var: float | Sequence[float] = 1.0,
    bias_var: float | Sequence[float] = 0.0,
    q0: float = 1.0,
    final_activation: bool = False,
    grad_out_sq: float = 1.0,
) -> MLPProfile:
    """THEORY E8-E10: forward and backward second moments of a random MLP at initialization.

    widths = [n_0, ..., n_L]. Layer l: h_l = W_l x_{l-1} + b_l, Var(W_l) = weight_var_l / n_{l-1},
    Var(b_l) = bias_var_l (scalars or one per layer), x_l = phi(h_l) for l < L, and for l = L
    only if ``final_activation`` (the library's MLP ends with a plain Linear). q0 = E[x_0^2] of
    the input, grad_out_sq = E[(d loss_b / d out)^2] per example at the output.

    Forward (E8): q_l = weight_var_l * E[x_{l-1}^2] + bias_var_l, E[x_l^2] = m2(q_l).
    Backward (E9): E[delta_l^2] = weight_var_{l+1} * (n_{l+1} / n_l) * d2(q_l) * E[delta_{l+1}^2],
    seeded by E[delta_L^2] = grad_out_sq (times d2(q_L) with a final activation).
    Weight gradient (E10): E[gW_l^2] = E[delta_l^2] * E[x_{l-1}^2]; bias gradient E[delta_l^2].
    Assumptions: those of the module docstring (large widths, independent zero-mean weights,
    gradient independence, inputs independent of weights); quantities are per example.
    """
    act = activations.get(act)
    valid = "[n_0, ..., n_L] with L >= 1 and every n an integer >= 1"
    if isinstance(widths, str | bytes) or not hasattr(widths, "__iter__"):
        raise ValueError(f"widths must be {valid}, got {widths!r}")
    widths = list(widths)
    if len(widths) < 2:
        raise ValueError(f"widths must be {valid}, got {widths!r}")
    checked = []
    for i, n in enumerate(widths):
        try:
            checked.append(_count(n, f"widths[{i}]"))
        except ValueError:
            raise ValueError(f"widths must be {valid}, got {widths!r} (widths[{i}] = {n!r})") from None
    widths = checked
    layers = len(widths) - 1
    s_w = _per_layer(weight_var, layers, "weight_var", positive=True)
    s_b = _per_layer(bias_var, layers, "bias_var", positive=False)
    q0 = _as_q(q0, "q0")
    grad_out_sq = _as_q(grad_out_sq, "grad_out_sq")

    q, x_sq, d2 = np.empty(layers), np.empty(layers), np.empty(layers)
    previous = q0
    for l in range(layers):
        q[l] = s_w[l] * previous + s_b[l]
        moments = gaussian_moments(act, q[l])
        applies_phi = l < layers - 1 or final_activation
        x_sq[l] = moments.m2 if applies_phi else q[l]
        d2[l] = moments.d2 if applies_phi else 1.0
        previous = x_sq[l]

    delta_sq = np.empty(layers)
    delta_sq[-1] = grad_out_sq * d2[-1]
    for l in range(layers - 2, -1, -1):
        fan_ratio = widths[l + 2] / widths[l + 1]
        delta_sq[l] = s_w[l + 1] * fan_ratio * d2[l] * delta_sq[l + 1]

    inputs_sq = np.concatenate([[q0], x_sq[:-1]])
    return MLPProfile(q, x_sq, delta_sq, delta_sq * inputs_sq, delta_sq.copy())


# --- E17-E18: residual MLP at initialization --------------------------------------------------------


@dataclass(frozen=True)
class ResidualProfile:
    """Second moments through a random residual MLP x_{l+1} = x_l + alpha * F_l(x_l).

    x_sq[l] = E[x_l^2] and grad_sq[l] = E[(d loss_b / d x_l)^2] for l = 0..depth; per block l:
    branch_q[l, j] = E[h^2] at the branch's (j+1)-th activation, branch_sq[l] = E[F_l(x_l)^2],
    chi[l] = the branch's backward factor (E18).
    """

    x_sq: np.ndarray
    grad_sq: np.ndarray
    branch_q: np.ndarray
    branch_sq: np.ndarray
    chi: np.ndarray


def residual_profile(
    act: Act,
    width: int,
    depth: int,
    branch_depth: int = 1,
    alpha: float = 1.0,
    weight_var: float = 1.0,
    bias_var: float = 0.0,
    q0: float = 1.0,
    grad_out_sq: float = 1.0,
) -> ResidualProfile:
    """THEORY E17-E18: second moments through ``depth`` residual blocks of constant ``width``.

    Block l: x_{l+1} = x_l + alpha * F_l(x_l), F_l = (Linear, phi) * branch_depth, then Linear;
    every Linear has Var(W) = weight_var / width and Var(b) = bias_var. With k = branch_depth:

    E17 forward: q_1 = weight_var * E[x_l^2] + bias_var, q_{j+1} = weight_var * m2(q_j) + bias_var
    (E8 through the branch), E[F_l^2] = weight_var * m2(q_k) + bias_var, and
    E[x_{l+1}^2] = E[x_l^2] + alpha^2 * E[F_l^2].
    E18 backward: g_l = g_{l+1} + alpha * J_l^T g_{l+1}, J_l the branch Jacobian, so
    E[g_l^2] = E[g_{l+1}^2] * (1 + alpha^2 * chi_l), chi_l = weight_var * prod_j weight_var * d2(q_j)
    (E9 through the branch: k activations, k + 1 Linears), seeded with E[g_depth^2] = grad_out_sq.

    Assumptions: the module's, plus: each branch's weights are independent of x_l and of the
    other blocks, so the cross terms E[x_l F_l(x_l)] and E[g_{l+1} J_l^T g_{l+1}] vanish (the
    branch's last weights have zero mean); equal widths make every fan ratio of E9 equal to 1,
    so ``width`` enters only as a requirement of large width.
    """
    act = activations.get(act)
    width, depth = _count(width, "width"), _count(depth, "depth")
    branch_depth = _count(branch_depth, "branch_depth")
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    s_w = _variance(weight_var, "weight_var", positive=True)
    s_b = _variance(bias_var, "bias_var", positive=False)
    q0, grad_out_sq = _as_q(q0, "q0"), _as_q(grad_out_sq, "grad_out_sq")

    x_sq = np.empty(depth + 1)
    branch_q, branch_sq, chi = np.empty((depth, branch_depth)), np.empty(depth), np.empty(depth)
    x_sq[0] = q0
    for l in range(depth):
        signal_sq, chi[l] = x_sq[l], s_w
        for j in range(branch_depth):
            branch_q[l, j] = s_w * signal_sq + s_b
            moments = gaussian_moments(act, branch_q[l, j])
            signal_sq = moments.m2
            chi[l] *= s_w * moments.d2
        branch_sq[l] = s_w * signal_sq + s_b
        x_sq[l + 1] = x_sq[l] + alpha**2 * branch_sq[l]

    grad_sq = np.empty(depth + 1)
    grad_sq[depth] = grad_out_sq
    for l in range(depth - 1, -1, -1):
        grad_sq[l] = grad_sq[l + 1] * (1.0 + alpha**2 * chi[l])
    return ResidualProfile(x_sq, grad_sq, branch_q, branch_sq, chi)


# --- fixed points: SELU and criticality ---------------------------------------------------------


def solve_selu() -> tuple[float, float]:
    """SELU's (alpha, scale) from its fixed-point conditions E[selu(z)] = 0, E[selu(z)^2] = 1.

    selu = scale * elu_alpha, so the mean condition fixes alpha alone (E1 of elu_alpha = 0, a
    root in alpha), and then scale = 1 / sqrt(m2) of elu_alpha (E2), both at q = 1.
    """

    def mean(alpha: float) -> float:
        return gaussian_moments(activations.get("elu", alpha=alpha), 1.0).m1

    alpha = brentq(mean, 0.5, 5.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    scale = 1.0 / math.sqrt(gaussian_moments(activations.get("elu", alpha=alpha), 1.0).m2)
    return float(alpha), scale


_SEARCH_DECADES = 12  # how far (in powers of ten) the fixed-point searches look on each side


def forward_fixed_point(act: Act, weight_var: float, bias_var: float = 0.0, q0: float = 1.0) -> float:
    """The q* that the E8 recursion q -> weight_var * m2(q) + bias_var reaches from q0.

    The map is nondecreasing in q for every registered activation, so the recursion moves
    monotonically towards the nearest fixed point on the side where it starts moving.
    Degenerate cases: 0.0 when q decays to zero (tanh with weight_var < 1 and no bias), inf when it
    grows without bound (relu with weight_var > 2), and q0 itself when every q is a fixed point
    (relu with weight_var = 2 and no bias).
    """
    act = activations.get(act)
    q0 = _as_q(q0, "q0")
    weight_var = _variance(weight_var, "weight_var", positive=True)
    bias_var = _variance(bias_var, "bias_var", positive=False)

    def excess(q: QLike) -> QLike:
        return weight_var * gaussian_moments(act, q).m2 + bias_var - q

    start = excess(q0)
    if abs(start) <= 1e-12 * q0:
        return q0
    direction = 1.0 if start > 0 else -1.0
    grid = q0 * np.logspace(0.0, direction * _SEARCH_DECADES, 12 * _SEARCH_DECADES + 1)
    crossed = np.flatnonzero(np.sign(excess(grid)) != np.sign(start))
    if crossed.size == 0:
        return math.inf if direction > 0 else 0.0
    i = crossed[0]
    return float(brentq(excess, grid[i - 1], grid[i], xtol=1e-300, rtol=4 * np.finfo(float).eps))


def critical_weight_var(act: Act, bias_var: float = 0.0) -> float:
    """The weight_var with weight_var * d2(q*) = 1 at its own forward fixed point q* (E8, E9).

    At such a point the backward factor of E9 is 1 (the "edge of chaos"). With
    weight_var = (q* - bias_var) / m2(q*) (the fixed-point condition solved for weight_var), the
    condition becomes (q* - bias_var) * d2(q*) = m2(q*), a root in q* (the smallest is taken).
    Degenerate cases:
    - d2 independent of q (relu, leaky_relu, identity): 1/d2 (relu: 2, identity: 1); q* is
      arbitrary without bias and infinite with bias;
    - no root, bias_var = 0 and phi(0) = 0 (tanh, erf, ...): the fixed point is q* = 0 and the
      answer is the limit 1/d2(0) (tanh: 1);
    - otherwise ValueError.
    """
    act = activations.get(act)
    bias_var = _variance(bias_var, "bias_var", positive=False)
    q = bias_var + np.logspace(-6.0, 6.0, 12 * 12 + 1)
    m = gaussian_moments(act, q)
    if np.ptp(m.d2) <= 1e-12 * np.max(m.d2):
        return float(1.0 / m.d2[0])

    def mismatch(q_star: QLike) -> QLike:
        moments = gaussian_moments(act, q_star)
        return (q_star - bias_var) * moments.d2 - moments.m2

    crossed = np.flatnonzero(np.diff(np.sign(mismatch(q))) != 0)
    if crossed.size:
        i = crossed[0]
        q_star = brentq(mismatch, q[i], q[i + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps)
        return float((q_star - bias_var) / gaussian_moments(act, q_star).m2)
    if bias_var == 0.0 and abs(float(act.f(np.zeros(1))[0])) < 1e-15:
        return float(1.0 / gaussian_moments(act, 1e-30).d2)
    raise ValueError(
        f"no critical weight variance for {act!r} with bias_var={bias_var!r}: the condition "
        "(q - bias_var) * d2(q) = m2(q) has no root for q - bias_var in [1e-6, 1e6]"
    )


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


def stability_table(
    acts: Sequence[str] | None = None,
    rules: Sequence[str] = RULES,
    centers: Sequence[bool] = (False, True),
    q: float = 1.0,
    weight_var: float = 1.0,
) -> list[dict[str, Any]]:
    """E19-E22 for the static normalized forms (E15 at ``q``) of ``acts`` under each rule and
    centring, in a network with weights of variance weight_var / fan_in and no bias.

    Keys: activation, rule, center, chi_q (E19 at q), chi (E20 at q), fixed_points (a list of
    ``FixedPoint``), reached (E8's limit from q0 = q, ``forward_fixed_point``) and
    reached_stability (that fixed point's stability), large_q_growth.
    ``acts`` defaults to the activations of the reproduction's presets.
    """
    rows = []
    for name in acts or ("relu", "tanh", "sigmoid", "swish", "gelu", "elu"):
        for rule in rules:
            for center in centers:
                act = normalized(name, rule, q, center)
                rows.append(
                    _stability_row(act, q, weight_var) | {"activation": name, "rule": rule, "center": center}
                )
    return rows


def _stability_row(act: ActivationFunction, q: float, weight_var: float) -> dict[str, Any]:
    points = fixed_points(act, weight_var)
    reached = forward_fixed_point(act, weight_var, 0.0, q)
    match = [
        p.stability for p in points if p.stability == "every q" or math.isclose(p.q, reached, rel_tol=1e-6)
    ]
    return {
        "chi_q": float(q_map_slope(act, q, weight_var)),
        "chi": float(backward_factor(act, q, weight_var)),
        "fixed_points": points,
        "reached": reached,
        "reached_stability": match[0] if match else ("escapes" if reached == math.inf else "not found"),
        "large_q_growth": large_q_growth(act, weight_var),
    }


def activation_stability(
    acts: Sequence[Act], q: float = 1.0, weight_var: float = 1.0
) -> list[dict[str, Any]]:
    """``stability_table``'s columns for activations given as they are (e.g. ``normalized(...)``)."""
    return [
        {"activation": _table_label(activations.get(a))} | _stability_row(activations.get(a), q, weight_var)
        for a in acts
    ]


def format_fixed_points(points: Sequence[FixedPoint]) -> str:
    """'q* (chi_q, stability, xi_q)' for each fixed point (E19, E21, E22), e.g.
    '0 (0.681, stable, xi 2.6); 1.202 (1.17, unstable, xi 6.3)'."""
    if points and points[0].stability == "every q":
        return f"every q ({points[0].chi_q:.3g}, marginal, xi inf)"
    return (
        "; ".join(f"{p.q:.4g} ({p.chi_q:.3g}, {p.stability}, xi {p.depth_scale:.2g})" for p in points)
        or "none"
    )


def format_stability_table(rows: Sequence[dict[str, Any]]) -> str:
    """``stability_table`` or ``activation_stability`` rows as an aligned text table."""
    if not rows:
        return ""
    header = [k for k in ("activation", "rule", "center") if k in rows[0]]
    header += ["chi_q at q", "chi at q", "fixed points: q* (chi_q, stability, xi_q)", "E8 limit from q0 = q"]
    header += ["growth at large q"]
    lines = [header]
    for row in rows:
        cells = [str(row[k]) for k in ("activation", "rule", "center") if k in row]
        cells += [f"{row['chi_q']:.4f}", f"{row['chi']:.4f}", format_fixed_points(row["fixed_points"])]
        cells += [f"{row['reached']:.4g} ({row['reached_stability']})", f"{row['large_q_growth']:.4f}"]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


# --- the gains table ------------------------------------------------------------------------------


def _table_label(act: ActivationFunction) -> str:
    """The bare name for an activation with its default parameters, else its full repr."""
    try:
        defaults = activations.get(act.name).params
    except ValueError:  # not a registered name (e.g. an affine activation)
        return repr(act)
    return act.name if act.params == defaults else repr(act)


_TABLE_LAMBDAS = (
    ("lambda_forward", "forward", False),
    ("lambda_backward", "backward", False),
    ("lambda_balanced", "balanced", False),
    ("lambda_forward_c", "forward", True),
    ("lambda_balanced_c", "balanced", True),
)


def gains_table(acts: Sequence[Act] | None = None, q: float = 1.0) -> list[dict[str, Any]]:
    """One row per activation with E5-E7, lambda under each rule (E12-E14) and the init gains.

    Keys: activation, m1, rho, rho_c, rho_prime, kappa, lambda_forward, lambda_backward,
    lambda_balanced, lambda_forward_c, lambda_balanced_c (the centred rules, with shift m1),
    gain_forward, gain_backward (``init_gain``'s conventions; they equal the uncentred lambdas).
    ``acts`` defaults to every registered activation with its default parameters.
    """
    q = _as_q(q)
    if np.ndim(q) != 0:
        raise ValueError(f"gains_table needs one q, got an array of shape {np.shape(q)}")
    rows = []
    for act in activations.names() if acts is None else acts:
        act = activations.get(act)
        m = gaussian_moments(act, q)
        lam = {  # centring does not change phi', so there is no separate centred backward rule
            key: float(_lambda(m, q, rule, center)) for key, rule, center in _TABLE_LAMBDAS
        }
        rows.append(
            {
                "activation": _table_label(act),
                "m1": m.m1,
                "rho": m.m2 / q,
                "rho_c": m.v / q,
                "rho_prime": m.d2,
                "kappa": m.d2 * q / m.m2,
                **lam,
                "gain_forward": lam["lambda_forward"],
                "gain_backward": lam["lambda_backward"],
            }
        )
    return rows


def format_gains_table(rows: Sequence[dict[str, Any]]) -> str:
    """``gains_table`` rows as an aligned text table (numbers to 6 decimals)."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[f"{row[c]:.6f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns] + cells
    aligned = [
        [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        for line in lines
    ]
    return "\n".join("  ".join(line) for line in aligned)
