"""The tracker's measurements on deep random networks against the theory: E5, E6, E8-E10 on
MLPs (depth 20, width 256) and E17-E18 on residual MLPs, by Monte Carlo over seeded networks.

The oracles are ``theory.mlp_profile``, ``theory.residual_profile``, ``theory.rho`` and
``theory.rho_prime`` (tested on their own in test_theory*.py); the measurements are
``tracking.measure_propagation`` (a tracked forward and backward of the library's own layers,
the backward seeded with independent N(0, 1) per-example output gradients).

Tolerances. Each check compares the mean of N ratios measured / predicted with 1:

    |mean - 1| <= 5 SE + allowance,      SE = std(ratios) / sqrt(N)

and asserts that the same rule rejects predictions 10% too high or too low (``assert_ratios``).
SE is the observed spread over the N ratios, so it includes every source of sampling noise
(the batch of B examples times n units, the random weights, the correlations between units of
one network); ratios from different networks are independent, and within a network they are
one-step ratios whose conditional means are 1 (see below), so they are uncorrelated and the
spread over all of them gives the standard error. For a mean of squares of N' independent
Gaussians the relative SE would be sqrt(2 / N'); here it is measured, not assumed.
``allowance`` covers the bias of the infinite-width theory at finite width n: per nonlinear
layer the relative bias of E[m2(q_hat)] against m2(q) is about |q^2 m2''(q) / (2 m2(q))| *
Var(q_hat) / q^2 <= 1/2 * 4/n (q_hat, a mean square over n units, has relative variance <= 4/n
for these activations), and the gradient independence assumption of E9 errs by O(1/n) too: 2/n
per nonlinear layer traversed.

MLPs: one-step predictions. Deep MLPs at width 256 spread the per-example second moments apart
(relu's log q performs a random walk; normalized swish sits near an unstable fixed point of
E8) and correlate the examples of a batch, so whole-network profiles of one network fluctuate
by tens of percent and their mean over a few networks cannot resolve 10%. So each layer is
predicted from what reaches it: ``mlp_profile`` over one layer (and the next Linear), started
from the layer's measured input E[x_{l-1}^2] (E8) and the measured E[delta_{l+1}^2] (E9); rho
and rho' are predicted at the measured q_l (E5, E6). Each network gets a batch of B copies of
one random input: all examples then share one forward signal, so a batch average is a
per-example expectation (E8-E10 are per-example statements; with distinct examples a batch
mixes different q_b and adds an across-example covariance that the theory does not describe,
18-25% for normalized swish at depth 20), while the B independent backward seeds still average
the backward noise. One allowance 2/n per one-step ratio.

The normalized forms are the static balanced rule (E14) with centring (mu = m1(1)). Without
centring, normalized swish keeps a mean of about 0.3 at q near 1; its per-unit offsets make
delta_{l+1} depend on the same weights that carry it back, and the one-step E9 ratio is 1.05
(1.13 in the first layers) at width 256, in a plain-NumPy simulation as well: a failure of
gradient independence, outside what E9 describes.

Residual MLPs: one block at a time, the same way. The checked quantity is what a block's branch
adds, E[x_{l+1}^2] - E[x_l^2] = alpha^2 E[F_l^2] (E17) and E[g_l^2] - E[g_{l+1}^2] =
alpha^2 chi_l E[g_{l+1}^2] (E18), so that a 10% error in the branch term cannot hide behind the
skip path; ``residual_profile`` over one block predicts it from the measured E[x_l^2] and
E[g_{l+1}^2]. The examples are independent here: skip connections keep the per-example norms
together. The allowance is 2k/n for the k nonlinear layers of a branch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinynormact import nn, theory, tracking

pytestmark = pytest.mark.theory

WIDTH, DEPTH, BATCH = 256, 20, 128
SIGMAS = 5.0
PERTURBATION = 0.1


def assert_ratios(ratios, allowance: float, what: str) -> None:
    """mean(ratios) agrees with 1 within 5 SE + allowance, and would not agree with predictions
    10% higher or lower (which divide every ratio by 1.1 or 0.9)."""
    ratios = np.ravel(np.asarray(ratios, dtype=float))
    assert np.isfinite(ratios).all(), f"{what}: non-finite ratios"

    def tolerance_and_error(scale: float) -> tuple[float, float]:
        scaled = ratios / scale
        se = scaled.std(ddof=1) / math.sqrt(len(scaled))
        return SIGMAS * se + allowance, abs(scaled.mean() - 1.0)

    tolerance, error = tolerance_and_error(1.0)
    assert error <= tolerance, f"{what}: mean ratio {ratios.mean():.4f}, tolerance {tolerance:.4f}"
    for scale in (1.0 + PERTURBATION, 1.0 - PERTURBATION):
        tolerance, error = tolerance_and_error(scale)
        assert error > tolerance, (
            f"{what}: a prediction off by {scale:g} would pass ({error:.4f} <= {tolerance:.4f})"
        )


# --- MLPs: E5, E6, E8-E10 -------------------------------------------------------------------------

MLP_CASES = {  # label: (activation, options, networks)
    "relu": ("relu", {}, 8),
    "tanh": ("tanh", {}, 6),
    "swish": ("swish", {}, 6),
    "sigmoid": ("sigmoid", {}, 6),
    "nrelu": ("nrelu", {"center": True}, 8),
    "ntanh": ("ntanh", {"center": True}, 6),
    "nswish": ("nswish", {"center": True}, 6),
    "nsigmoid": ("nsigmoid", {"center": True}, 6),
}


def theory_activation(name: str, options: dict):
    """The function the network applies, built by the theory: phi, or the static E15 phi_hat."""
    if name.startswith("n"):
        return theory.normalized(name[1:], "balanced", 1.0, center=options.get("center", False))
    return name


def one_step_ratios(name: str, options: dict, networks: int) -> dict[str, list[float]]:
    """measured / predicted for every layer with an activation of ``networks`` seeded MLPs."""
    act = theory_activation(name, options)
    ratios: dict[str, list[float]] = {k: [] for k in ("E8 q", "E8 m2", "E9", "E10", "E5 rho", "E6 rho'")}
    for seed in range(networks):
        model = nn.MLP([WIDTH] * (DEPTH + 1), name, options, dtype="float64", rng=seed)
        example = np.random.default_rng(10_000 + seed).standard_normal((1, WIDTH))
        m = tracking.measure_propagation(model, np.repeat(example, BATCH, axis=0), rng=20_000 + seed)
        for l in range(DEPTH - 1):
            p = theory.mlp_profile(act, [WIDTH] * 3, q0=m["input_sq"][l], grad_out_sq=m["delta_sq"][l + 1])
            ratios["E8 q"].append(m["preact_sq"][l] / p.q[0])
            ratios["E8 m2"].append(m["act_sq"][l] / p.x_sq[0])
            ratios["E9"].append(m["delta_sq"][l] / p.delta_sq[0])
            ratios["E10"].append(m["weight_grad_sq"][l] / p.weight_grad_sq[0])
        q = m["preact_sq"][: DEPTH - 1]
        ratios["E5 rho"] += list(m["rho"][: DEPTH - 1] / theory.rho(act, q))
        ratios["E6 rho'"] += list(m["rho_prime"][: DEPTH - 1] / theory.rho_prime(act, q))
    return ratios


@pytest.mark.parametrize("label", list(MLP_CASES))
def test_mlp_layers_follow_e5_e6_e8_to_e10(label):
    name, options, networks = MLP_CASES[label]
    for check, ratios in one_step_ratios(name, options, networks).items():
        assert_ratios(ratios, allowance=2.0 / WIDTH, what=f"{label} {check}")


def test_one_step_ratio_check_has_the_power_its_docstring_claims():
    """The rule itself: ratios spread like a width-256 layer's (8.8%) pass around 1 and fail
    around 1.1 and 0.9."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(8 * (DEPTH - 1)) * math.sqrt(2.0 / WIDTH)
    assert_ratios(1.0 + noise, 2.0 / WIDTH, "centred")
    for off in (1.1, 0.9):
        with pytest.raises(AssertionError, match="mean ratio"):
            assert_ratios(off * (1.0 + noise), 2.0 / WIDTH, f"off by {off}")


# --- residual MLPs: E17, E18 -------------------------------------------------------------------

RESIDUAL_DEPTH, BRANCH_DEPTH, RESIDUAL_NETWORKS = 20, 1, 8
RESIDUAL_CASES = {  # label: (activation, options, alpha)
    "relu": ("relu", {}, 0.5),
    "tanh": ("tanh", {}, 1.0),
    "swish": ("swish", {}, 0.5),
    "nswish": ("nswish", {"center": True}, 0.5),
}


def residual_stream(name: str, options: dict, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured E[x_l^2] and per-example E[g_l^2], l = 0..depth, of one seeded residual MLP.

    x_l is the input of block l's first Linear (l < depth) or of the output Linear (l = depth);
    the tracker's input_sq and input_grad_sq there are E[x_l^2] and E[g_l^2] (g_l the full
    gradient of the stream, skip path included)."""
    model = nn.ResidualMLP(
        WIDTH,
        WIDTH,
        RESIDUAL_DEPTH,
        WIDTH,
        name,
        BRANCH_DEPTH,
        alpha,
        activation_options=options,
        dtype="float64",
        rng=seed,
    )
    x = np.random.default_rng(30_000 + seed).standard_normal((BATCH, WIDTH))
    m = tracking.measure_propagation(model, x, rng=40_000 + seed)
    stream = [1 + l * (BRANCH_DEPTH + 1) for l in range(RESIDUAL_DEPTH)] + [len(m["input_sq"]) - 1]
    return m["input_sq"][stream], m["input_grad_sq"][stream]


@pytest.mark.parametrize("label", list(RESIDUAL_CASES))
def test_residual_blocks_follow_e17_e18(label):
    """Per block, what the branch adds: E[x_{l+1}^2] - E[x_l^2] against alpha^2 E[F_l^2] (E17)
    and E[g_l^2] - E[g_{l+1}^2] against alpha^2 chi_l E[g_{l+1}^2] (E18), each predicted by a
    one-block ``residual_profile`` from the measured E[x_l^2] and E[g_{l+1}^2]."""
    name, options, alpha = RESIDUAL_CASES[label]
    act = theory_activation(name, options)
    forward, backward = [], []
    for seed in range(RESIDUAL_NETWORKS):
        x_sq, g_sq = residual_stream(name, options, alpha, seed)
        for l in range(RESIDUAL_DEPTH):
            p = theory.residual_profile(
                act, WIDTH, 1, BRANCH_DEPTH, alpha, q0=x_sq[l], grad_out_sq=g_sq[l + 1]
            )
            forward.append((x_sq[l + 1] - x_sq[l]) / (p.x_sq[1] - p.x_sq[0]))
            backward.append((g_sq[l] - g_sq[l + 1]) / (p.grad_sq[0] - p.grad_sq[1]))
    allowance = 2.0 * BRANCH_DEPTH / WIDTH
    assert_ratios(forward, allowance, f"{label} E17 branch term")
    assert_ratios(backward, allowance, f"{label} E18 branch term")
