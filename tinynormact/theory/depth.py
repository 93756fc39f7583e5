"""THEORY E8-E11 and E17-E18: second moments through random MLPs and residual MLPs at
initialization; the SELU solver and the forward fixed point and criticality of E8.

Assumptions shared by the profiles (the standard mean-field analysis): weights are i.i.d. with
zero mean and variance weight_var / fan_in, biases i.i.d. with variance bias_var, inputs are
independent of the weights, and the width is large, so every pre-activation is Gaussian with
second moment q. Backward, the *gradient independence assumption*: the weights used in the
backward pass are treated as independent of those used in the forward pass.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.moments import Act, QLike, _as_q, gaussian_moments

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

    from scipy.optimize import brentq  # SciPy loads when a root is sought

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
    from scipy.optimize import brentq  # SciPy loads when a root is sought

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
        from scipy.optimize import brentq  # SciPy loads when a root is sought

        q_star = brentq(mismatch, q[i], q[i + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps)
        return float((q_star - bias_var) / gaussian_moments(act, q_star).m2)
    if bias_var == 0.0 and abs(float(act.f(np.zeros(1))[0])) < 1e-15:
        return float(1.0 / gaussian_moments(act, 1e-30).d2)
    raise ValueError(
        f"no critical weight variance for {act!r} with bias_var={bias_var!r}: the condition "
        "(q - bias_var) * d2(q) = m2(q) has no root for q - bias_var in [1e-6, 1e6]"
    )
