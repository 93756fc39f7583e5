"""Kaiming initialization in the builders takes the gain of the activation *before* each Linear
(THEORY E8, "Initialization gains"): weight_var_l * fan_in = 1 / rho(1) of the activation that
produced layer l's input, 1 for a layer that sees the data or a residual stream.

Oracles: rho(1) = E[phi(z)^2], z ~ N(0, 1), by SciPy quadrature of the activations written in
this file (not the library's); the E8 prediction with those gains is q_l = 1 after every Linear.

Tolerances.
- Weight variance: the sample variance of N i.i.d. entries has relative standard error
  sqrt(2 / N) for a normal law (smaller for a uniform one, whose kurtosis is 1.8 < 3); allowed:
  4 standard errors.
- q after each Linear: q_l of one network fluctuates with its weights and data; R independent
  networks give a sample standard deviation s_l, and the mean over them a standard error
  s_l / sqrt(R). Allowed: 4 standard errors plus 2 / width for the O(1/n) finite-width terms.
Both tests assert that a 10% error in the prediction would fail the same check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

import tinynormact as tn
from tests.helpers import host
from tinynormact import nn

pytestmark = pytest.mark.theory

PHI = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "swish": lambda z: z / (1.0 + np.exp(-z)),
    "gelu": lambda z: z * 0.5 * (1.0 + special.erf(z / math.sqrt(2.0))),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}
SCHEMES = ("kaiming_normal", "kaiming_uniform")
WIDTH, BATCH, LINEARS, NETWORKS = 512, 64, 3, 24


def rho_at_one(name: str) -> float:
    """E[phi(z)^2] / E[z^2] at q = 1, by quadrature of the phi written above."""
    integrand = lambda z: PHI[name](z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return integrate.quad(integrand, -12, 12, limit=200)[0]


def linear_weight_factors(model: nn.Module) -> list[float]:
    """weight_var * fan_in of every Linear, in order (sample variance over its entries)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [float(np.var(host(m.weight))) * m.in_features for m in linears]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_linear_gets_the_gain_of_its_input(scheme: str) -> None:
    n = 300
    g2 = 1.0 / rho_at_one("tanh")  # 1.5925^2 = 2.536
    tolerance = 4 * math.sqrt(2.0 / (n * n))
    mlp = nn.MLP([n] * 5, "tanh", init=scheme, dtype="float64", rng=0)
    residual = nn.ResidualMLP(n, n, 1, n, "tanh", branch_depth=2, init=scheme, dtype="float64", rng=1)
    cases = [
        (mlp, [1.0, g2, g2, g2]),  # data, then phi(h) for every later Linear, the last included
        (residual, [1.0, 1.0, g2, g2, 1.0]),  # projection, branch (stream, phi, phi), output
    ]
    for model, expected in cases:
        got = np.array(linear_weight_factors(model))
        assert np.all(np.abs(got / expected - 1) <= tolerance), (got, expected)
        assert np.any(np.abs(got / (1.1 * np.array(expected)) - 1) > tolerance)  # 10% off fails


def q_after_each_linear(name: str, scheme: str, seed: int) -> np.ndarray:
    model = nn.MLP([WIDTH] * (LINEARS + 1), name, init=scheme, dtype="float64", rng=seed)
    q = []
    model[0].register_forward_hook(lambda m, i, out: q.append(float(np.mean(host(out) ** 2))))
    for layer in list(model)[1:]:
        if isinstance(layer, nn.Linear):
            layer.register_forward_hook(lambda m, i, out: q.append(float(np.mean(host(out) ** 2))))
    x = np.random.default_rng(10_000 + seed).standard_normal((BATCH, WIDTH))  # q0 = 1
    with tn.no_grad():
        model(tn.Tensor(x))
    return np.array(q)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", sorted(PHI))
def test_kaiming_networks_keep_q_at_one_as_e8_predicts(name: str, scheme: str) -> None:
    """With the gain of the activation before each Linear, E8 predicts q_l = 1 after every
    Linear from q0 = 1. (The old rule, the gain of the activation after, gave 2.53, 1.43, 1.16,
    0.42 for tanh.)"""
    q = np.array([q_after_each_linear(name, scheme, seed) for seed in range(NETWORKS)])
    mean, se = q.mean(axis=0), q.std(axis=0, ddof=1) / math.sqrt(NETWORKS)
    tolerance = 4 * se + 2.0 / WIDTH
    assert np.all(np.abs(mean - 1.0) <= tolerance), (mean, tolerance)
    assert np.all(np.abs(mean - 1.1) > tolerance)  # a 10% error in the prediction would fail
