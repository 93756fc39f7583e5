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
import scipy.special

from tinynormact import activations, theory

pytestmark = pytest.mark.theory

SIGMAS = 5.0
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554804

# the test's own activations: (phi, phi')
PHI = {
    "tanh": (np.tanh, lambda h: 1.0 - np.tanh(h) ** 2),
    "relu": (lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(float)),
    "erf": (scipy.special.erf, lambda h: 2 / math.sqrt(math.pi) * np.exp(-h * h)),
    "selu": (
        lambda h: SELU_SCALE * np.where(h > 0, h, SELU_ALPHA * np.expm1(np.minimum(h, 0))),
        lambda h: SELU_SCALE * np.where(h > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(h, 0))),
    ),
}


def assert_agrees(samples, predicted, allowance: float = 0.0, power: bool = True, what: str = "") -> None:
    """The mean of independent ``samples`` (axis 0) agrees with ``predicted`` within 5 SE plus a
    relative ``allowance``; with ``power``, a prediction 10% larger would be rejected."""
    samples, predicted = np.asarray(samples, dtype=float), np.asarray(predicted, dtype=float)
    mean = samples.mean(axis=0)
    tolerance = SIGMAS * samples.std(axis=0, ddof=1) / math.sqrt(len(samples)) + allowance * np.abs(predicted)
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
