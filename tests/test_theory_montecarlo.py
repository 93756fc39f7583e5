"""Monte Carlo checks of the variance theory: Gaussian moments by sampling, and mlp_profile and
residual_profile against deep random networks simulated here with plain NumPy arrays (their
own phi and phi', not the library's layers or activations).

Tolerances. A prediction p is compared with the mean of R independent measurements y_1..y_R
(samples of a Gaussian variable, or whole random networks with fresh weights and inputs):

    |mean(y) - p| <= 5 * SE + allowance * |p|,     SE = std(y) / sqrt(R)

SE is the standard error of the mean for R independent samples (for y = g^2 with g Gaussian it
is sqrt(2 / R) in relative terms; here it is measured, since y is rarely Gaussian). For networks,
``allowance`` covers the O(1/width) corrections to the infinite-width theory, compounding over
depth: per nonlinear layer, the relative bias of E[m2(q_hat)] against m2(q) is about
|q^2 m2''(q) / (2 m2(q))| * Var(q_hat) / q^2 <= 1/2 * 4 / n for the activations used here (the
fluctuation q_hat of the layer's mean square over n units has relative variance <= 4/n), and
backward the gradient independence assumption errs by O(1/n) too; so allowance = 2 L / n for L
nonlinear layers of width >= n. Every check also asserts that the same tolerance rejects a
prediction 10% off (``assert_agrees``), so none of these checks can pass vacuously.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special

from tinynormact import activations, theory

pytestmark = pytest.mark.theory

SIGMAS = 5.0
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554804

# the test's own activations: (phi, phi')
PHI = {
    "tanh": (np.tanh, lambda h: 1.0 - np.tanh(h) ** 2),
    "relu": (lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(float)),
    "swish": (
        lambda h: h * scipy.special.expit(h),
        lambda h: scipy.special.expit(h) * (1 + h * scipy.special.expit(-h)),
    ),
    "erf": (scipy.special.erf, lambda h: 2 / math.sqrt(math.pi) * np.exp(-h * h)),
    "selu": (
        lambda h: SELU_SCALE * np.where(h > 0, h, SELU_ALPHA * np.expm1(np.minimum(h, 0))),
        lambda h: SELU_SCALE * np.where(h > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(h, 0))),
    ),
}


def assert_agrees(
    samples, predicted, allowance: float = 0.0, power: bool = True, what: str = "", predicted_error=0.0
) -> None:
    """The mean of independent ``samples`` (axis 0) agrees with ``predicted`` within 5 SE plus a
    relative ``allowance``; with ``power``, a prediction 10% larger would be rejected. A prediction
    that is itself an average over samples has a relative standard error ``predicted_error``,
    combined with the measured SE in quadrature."""
    samples, predicted = np.asarray(samples, dtype=float), np.asarray(predicted, dtype=float)
    mean = samples.mean(axis=0)
    measured_se = samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
    standard_error = np.hypot(measured_se, np.asarray(predicted_error) * np.abs(predicted))
    tolerance = SIGMAS * standard_error + allowance * np.abs(predicted)
    assert np.all(np.abs(mean - predicted) <= tolerance), (
        f"{what}: measured {mean}, predicted {predicted}, tolerance {tolerance}"
    )
    if power:
        assert np.all(np.abs(mean - 1.1 * predicted) > tolerance), (
            f"{what}: tolerance {tolerance} would accept a prediction 10% off {predicted}"
        )


# --- E1-E4 by sampling -----------------------------------------------------------------------------


ZOO = [activations.get(name) for name in activations.names()] + [
    activations.get("gelu", approximate="tanh"),
    activations.get("leaky_relu", slope=0.2),
]


@pytest.mark.parametrize("q", [0.5, 2.0])
@pytest.mark.parametrize("act", ZOO, ids=[repr(act) for act in ZOO])
def test_gaussian_moments_agree_with_sampling(act, q):
    x = math.sqrt(q) * np.random.default_rng(1).standard_normal(200_000)
    phi, dphi = act.f(x), act.df(x)
    predicted = theory.gaussian_moments(act, q)
    assert_agrees(phi, predicted.m1, power=False, what="m1")  # m1 may be 0: no relative power
    assert_agrees(phi**2, predicted.m2, what="m2")
    assert_agrees(dphi**2, predicted.d2, what="d2")


# --- E8-E10: a deep random MLP -------------------------------------------------------------------


def simulate_mlp(name, widths, weight_var, bias_var, final_activation, batch, rng):
    """One random MLP and one batch: per-layer E[h^2], E[x^2], E[delta^2] and per-example E[gW^2].

    The loss is sum(out * r) with r ~ N(0, 1) independent per example and unit, so the gradient
    at the output has per-example second moment 1; the weight gradient's per-example second
    moment mean_ij (delta_i x_j)^2 is computed from the per-example norms of delta and x.
    """
    phi, dphi = PHI[name]
    layers = len(widths) - 1
    x = rng.standard_normal((batch, widths[0]))  # E[x_0^2] = 1
    xs, hs, ws = [x], [], []
    for l in range(layers):
        w = rng.standard_normal((widths[l + 1], widths[l])) * math.sqrt(weight_var[l] / widths[l])
        b = rng.standard_normal(widths[l + 1]) * math.sqrt(bias_var)
        h = x @ w.T + b
        x = phi(h) if l < layers - 1 or final_activation else h
        ws.append(w), hs.append(h), xs.append(x)
    delta = rng.standard_normal((batch, widths[-1]))
    deltas = [delta * dphi(hs[-1]) if final_activation else delta]
    for l in range(layers - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ ws[l + 1]) * dphi(hs[l]))
    return {
        "q": [np.mean(h**2) for h in hs],
        "x_sq": [np.mean(x**2) for x in xs[1:]],
        "delta_sq": [np.mean(d**2) for d in deltas],
        "weight_grad_sq": [
            np.mean(np.mean(d**2, axis=1) * np.mean(x**2, axis=1))
            for d, x in zip(deltas, xs[:-1], strict=True)
        ],
    }


MLP_CASES = [
    # name, widths, weight_var per layer, bias_var, final_activation, networks
    ("tanh", [512] + [1024] * 10, [1.5] * 10, 0.0, False, 8),
    ("selu", [512, 1024, 768, 1024, 512, 1024, 1024, 768, 1024],
     [1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0, 1.0], 0.0, True, 8),
    ("erf", [1024] * 10, [2.0] * 9, 0.1, True, 12),
]  # fmt: skip


@pytest.mark.parametrize(("name", "widths", "weight_var", "bias_var", "final", "networks"), MLP_CASES)
def test_mlp_profile_agrees_with_simulated_networks(name, widths, weight_var, bias_var, final, networks):
    rng = np.random.default_rng(2024)
    runs = [simulate_mlp(name, widths, weight_var, bias_var, final, 128, rng) for _ in range(networks)]
    profile = theory.mlp_profile(name, widths, weight_var, bias_var, q0=1.0, final_activation=final)
    nonlinear_layers = len(widths) - (1 if final else 2)
    allowance = 2 * nonlinear_layers / min(widths[1:])
    for key in ("q", "x_sq", "delta_sq", "weight_grad_sq"):
        samples = [run[key] for run in runs]
        assert_agrees(samples, getattr(profile, key), allowance, what=f"{name} {key}")


# --- E19-E22 at depth: the stable and the unstable fixed point -----------------------------------


def quad_m2(phi, q: float) -> float:
    """E[phi(x)^2], x ~ N(0, q), by SciPy's adaptive quadrature (the test's own oracle)."""
    density = lambda x: math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    reach = 40 * math.sqrt(q)
    return scipy.integrate.quad(lambda x: phi(np.array([x]))[0] ** 2 * density(x), -reach, reach)[0]


def normalized_balanced(name: str):
    """(phi_hat, phi_hat') of the default static normalized form: balanced rule, no centring,
    lambda^2 = (1/rho + 1/rho') / 2 at q = 1 from the test's own quadrature."""
    phi, dphi = PHI[name]
    density = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    d2 = scipy.integrate.quad(lambda x: dphi(np.array([x]))[0] ** 2 * density(x), -40, 40)[0]
    lam = math.sqrt((1 / quad_m2(phi, 1.0) + 1 / d2) / 2)
    return (lambda h: lam * phi(h)), (lambda h: lam * dphi(h))


def amplified_allowance(phi, layers: int, width: int) -> float:
    """The module's allowance 2 L / n, with the error made at layer l carried to layer L by the
    slopes of the log q-map in between: g_k = chi_q(q_k) q_k / q_{k+1} (E19), so
    allowance = 2 / n * sum_l prod_{k > l} g_k. It is 2 L / n when every g_k is 1, stays bounded
    near a stable fixed point (g < 1) and grows geometrically near an unstable one (g > 1)."""
    q, gains = 1.0, []
    for _ in range(layers):
        step = 1e-4 * q
        slope = (quad_m2(phi, q + step) - quad_m2(phi, q - step)) / (2 * step)
        q_next = quad_m2(phi, q)
        gains.append(slope * q / q_next)
        q = q_next
    carried = [np.prod(gains[l + 1 :]) for l in range(layers)]
    return 2.0 * float(np.sum(carried)) / width


PHI["nswish"] = normalized_balanced("swish")
PHI["ntanh"] = normalized_balanced("tanh")


def test_default_nswish_follows_e8_e9_at_the_depth_its_unstable_fixed_point_allows():
    """The default normalized swish (balanced, not centred) has an unstable fixed point at
    q* = 1.20 just above q0 = 1 (E22), with chi_q ~ 1.14-1.17 around it (E19): finite-width
    errors grow by that factor per layer, so E8-E9 hold only at modest depth. At 4 nonlinear
    layers of width 1024 the amplified allowance is 2 / n * sum 1.17^k ~ 1% and the batch mean
    agrees (the spread between networks grows layer by layer for the same reason, hence 16
    networks); at depth 30 it does not (next test)."""
    rng = np.random.default_rng(31)
    widths, layers = [1024] * 6, 4
    runs = [simulate_mlp("nswish", widths, [1.0] * 5, 0.0, False, 128, rng) for _ in range(16)]
    profile = theory.mlp_profile(theory.normalized("swish"), widths)
    allowance = amplified_allowance(PHI["nswish"][0], layers, 1024)
    assert 2 * layers / 1024 < allowance < 0.015
    for key in ("q", "x_sq", "delta_sq", "weight_grad_sq"):
        assert_agrees([run[key] for run in runs], getattr(profile, key), allowance, what=f"nswish {key}")


def test_at_depth_30_the_stable_fixed_point_holds_and_the_unstable_one_does_not():
    """ntanh (balanced) has a stable q* = 0.861 with chi_q = 0.49 (E19-E22): errors decay, and E8
    holds at depth 30 within the bounded allowance. nswish's q0 = 1 lies just below its unstable
    q* = 1.20: the E8 mean-field value from q0 = 1 decays towards the stable q* = 0, but the
    examples that finite width pushes above 1.20 grow by lambda^2 / 2 = 1.36 per layer, and the
    batch mean of q_30 exceeds E8 by orders of magnitude (measured 5.6e3-1.4e5-fold at width 256,
    seeds 0-3), while the per-example median stays within a factor of a few. These two nswish
    bounds are qualitative, not precision checks: 100-fold is far below every measured excess, and
    the factor 5 covers the spread of the median between networks measured in docs/THEORY.md
    (0.3-3.3 at widths 256-2048); the quantitative check of nswish is the shallow one above."""
    rng = np.random.default_rng(30)
    widths = [512] * 32
    runs = [simulate_mlp("ntanh", widths, [1.0] * 31, 0.0, False, 128, rng) for _ in range(8)]
    profile = theory.mlp_profile(theory.normalized("tanh"), widths)
    allowance = amplified_allowance(PHI["ntanh"][0], 30, 512)
    assert allowance < 2 * 30 / 512  # errors decay near a stable fixed point
    assert_agrees([run["q"] for run in runs], profile.q, allowance, what="ntanh q")

    widths = [256] * 32
    swish = theory.mlp_profile(theory.normalized("swish"), widths).q[-1]
    for _ in range(4):
        phi = PHI["nswish"][0]
        x = rng.standard_normal((256, 256))
        for _ in range(31):
            h = x @ rng.standard_normal((256, 256)).T / 16.0
            x = phi(h)
        per_example = np.mean(h * h, axis=1)
        assert per_example.mean() > 100 * swish  # the batch mean escapes
        assert swish / 5 < np.median(per_example) < 5 * swish  # the typical example follows E8


# --- E17-E18: a deep random residual MLP ----------------------------------------------------------


def simulate_residual(name, width, depth, branch_depth, alpha, weight_var, bias_var, batch, rng):
    """One random residual MLP and one batch: E[x_l^2] and E[g_l^2] for l = 0..depth."""
    phi, dphi = PHI[name]
    x = rng.standard_normal((batch, width))
    xs, blocks = [x], []
    for _ in range(depth):
        u, layers = x, []
        for j in range(branch_depth + 1):
            w = rng.standard_normal((width, width)) * math.sqrt(weight_var / width)
            h = u @ w.T + rng.standard_normal(width) * math.sqrt(bias_var)
            layers.append((w, h))
            u = phi(h) if j < branch_depth else h
        x = x + alpha * u
        xs.append(x), blocks.append(layers)
    g = rng.standard_normal((batch, width))
    grads = [g]
    for layers in reversed(blocks):
        d = g
        for j in range(branch_depth, -1, -1):
            w, h = layers[j]
            d = (d * dphi(h) if j < branch_depth else d) @ w
        g = g + alpha * d
        grads.insert(0, g)
    return [np.mean(x**2) for x in xs], [np.mean(g**2) for g in grads]


RESIDUAL_CASES = [
    # name, width, depth, branch_depth, alpha, weight_var, bias_var
    ("tanh", 512, 8, 1, 1.0, 1.5, 0.0),
    ("relu", 768, 8, 2, 0.4, 1.0, 0.1),
]


@pytest.mark.parametrize(("name", "width", "depth", "k", "alpha", "weight_var", "bias_var"), RESIDUAL_CASES)
def test_residual_profile_agrees_with_simulated_networks(name, width, depth, k, alpha, weight_var, bias_var):
    rng = np.random.default_rng(7)
    runs = [simulate_residual(name, width, depth, k, alpha, weight_var, bias_var, 128, rng) for _ in range(8)]
    profile = theory.residual_profile(name, width, depth, k, alpha, weight_var, bias_var)
    allowance = 2 * depth * k / width
    assert_agrees([run[0] for run in runs], profile.x_sq, allowance, what=f"{name} x_sq")
    assert_agrees([run[1] for run in runs], profile.grad_sq, allowance, what=f"{name} grad_sq")
