"""Backward signal propagation through a 30-layer MLP at initialization, against THEORY E9.

Measured: the per-example E[delta_l^2], delta_l = d loss_b / d h_l at every Linear output, read
with the library's backward hooks on ``nn.MLP``. The backward pass is seeded with independent
N(0, 1) gradients u_b per example (so every delta is a per-example gradient) and each profile is
divided by the measured mean(u^2), E9 being linear in the seed.

Predicted (E9, equal widths, LeCun weights sigma_w^2 = 1):
E[delta_l^2] = lambda^2 * d2(q_l) * E[delta_{l+1}^2], with closed forms for relu (d2 = 1/2, so
vanilla relu decays by 1/2 per layer and "nrelu" with the backward rule, lambda = sqrt(2), is
exactly flat) and ``theory.mlp_profile`` for tanh (q_l from E8).

Tolerances. For one example, given delta_{l+1}, the factor ||delta_l||^2 / ||delta_{l+1}||^2 is
(lambda^2 / n) sum_j phi'(h_j)^2 z_j^2 with z_j i.i.d. N(0, 1) (gradient independence), whose
relative variance is v = (3 E[phi'^4] / d2^2 - 1) / n: the sqrt(2/N) of a mean of squared
Gaussians (v = 2/n for phi' = 1) widened by the spread of phi'. For relu E[phi'^4] / d2^2 = 2
exactly (v = 5/n); for tanh |phi'| <= 1 gives E[phi'^4] <= d2, so v <= (3/d2 - 1)/n.
A batch mean over correlated examples varies at most as much as one example, so these are
upper bounds for each network. Then:

- per-layer factor (pooled): the ratios m_l / m_{l+1} have conditional mean equal to E9's
  factor, so their mean over 29 layers and R networks has standard error sqrt(mean(v) / (29 R));
  allowed: 4 standard errors plus 1/n for finite-width O(1/n) terms;
- profile: the factors compound, so m_l / m_29 has relative variance prod_{k >= l}(1 + v_k) - 1;
  over R networks the standard error is its square root over sqrt(R); allowed: 4 standard errors
  plus (29 - l)/n (the O(1/n) terms compounding over depth).

Each test also asserts that a 10% error in E9's per-layer factor would fail its checks.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinynormact as tn
from tinynormact import nn, theory

LAYERS = 30  # Linear layers; activations after the first 29
WIDTH = 256
BATCH = 64
NETWORKS = 8


def measured_profiles(activation: str, options: dict) -> np.ndarray:
    """(NETWORKS, LAYERS) per-example E[delta_l^2] / E[u^2] at init, one row per seeded network."""
    rows = []
    for seed in range(NETWORKS):
        model = nn.MLP([WIDTH] * (LAYERS + 1), activation, options, rng=seed)
        linears = [layer for layer in model if isinstance(layer, nn.Linear)]
        record: dict[int, float] = {}
        for l, layer in enumerate(linears):
            layer.register_full_backward_hook(
                lambda m, gi, go, l=l, rec=record: rec.__setitem__(l, float((go[0] * go[0]).mean()))
            )
        rng = np.random.default_rng(1000 + seed)
        out = model(tn.Tensor(rng.standard_normal((BATCH, WIDTH))))
        u = rng.standard_normal(out.shape)
        out.backward(u)
        rows.append([record[l] / float((u * u).mean()) for l in range(LAYERS)])
    return np.array(rows)


def check_against_e9(measured: np.ndarray, factors: np.ndarray, rel_var: np.ndarray) -> bool:
    """True when ``measured`` agrees with E9's per-layer ``factors`` (length 29) within the
    tolerances of the module docstring; ``rel_var`` is v per layer."""
    ratios = measured[:, :-1] / measured[:, 1:] / factors
    pooled_se = np.sqrt(rel_var.mean() / ratios.size)
    pooled_ok = abs(ratios.mean() - 1.0) <= 4 * pooled_se + 1.0 / WIDTH

    predicted = np.append(np.cumprod(factors[::-1])[::-1], 1.0)  # E[delta_l^2] / E[delta_29^2]
    compounded = np.append(np.cumprod((1.0 + rel_var)[::-1])[::-1] - 1.0, 0.0)
    remaining = np.arange(LAYERS - 1, -1, -1)
    tolerance = 4 * np.sqrt(compounded / NETWORKS) + remaining / WIDTH
    profile_ok = np.all(np.abs(measured.mean(axis=0) / predicted - 1.0) <= tolerance)
    return bool(pooled_ok and profile_ok)


def assert_e9(measured: np.ndarray, factors: np.ndarray, rel_var: np.ndarray) -> None:
    assert check_against_e9(measured, factors, rel_var)
    for wrong in (0.9, 1.1):  # a 10% error in the predicted per-layer factor must be caught
        assert not check_against_e9(measured, wrong * factors, rel_var)


@pytest.mark.theory
def test_backward_rule_normalization_keeps_delta_flat_and_vanilla_relu_halves() -> None:
    tn.set_default_dtype("float64")
    relu_rel_var = np.full(LAYERS - 1, 5.0 / WIDTH)  # 3 E[phi'^4] / d2^2 - 1 = 3 * 2 - 1

    normalized = measured_profiles("nrelu", {"rule": "backward"})
    assert_e9(normalized, np.ones(LAYERS - 1), relu_rel_var)  # lambda^2 d2 = 2 * 1/2 = 1: flat

    vanilla = measured_profiles("relu", {})
    assert_e9(vanilla, np.full(LAYERS - 1, 0.5), relu_rel_var)  # d2 = 1/2 per layer


@pytest.mark.theory
def test_vanilla_tanh_decays_at_the_e9_rate() -> None:
    tn.set_default_dtype("float64")
    profile = theory.mlp_profile("tanh", [WIDTH] * (LAYERS + 1))
    factors = profile.delta_sq[:-1] / profile.delta_sq[1:]  # d2(q_l) with q_l from E8
    assert factors.prod() < 0.05  # the prediction is a real decay, not a flat line
    measured = measured_profiles("tanh", {})
    assert_e9(measured, factors, (3.0 / factors - 1.0) / WIDTH)
