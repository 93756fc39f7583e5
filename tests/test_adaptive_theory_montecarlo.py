"""Monte Carlo checks of the adaptive layer's theory (docs/THEORY.md E23-E29) on the library's
own ``NormalizedActivation(mode="adaptive")`` in training mode.

Tolerances. A prediction p is compared with the mean of R independent measurements (fresh
Gaussian batches, or fresh random networks): |mean - p| <= 5 SE, SE = std / sqrt(R), measured.
For a batch of N Gaussian entries the relative SE of one layer's mean(y^2) is about
sqrt(2 / N) / sqrt(R) (here N = 256 * 64, R = 12: 3e-3, so 5 SE ~ 1.5% and a 10% error is
rejected); every check asserts that the same tolerance rejects a prediction 10% off
(``assert_agrees``), so none passes vacuously. The networks of the depth check add the finite-
width allowance of test_theory_montecarlo.py (2 L / n for L nonlinear layers of width n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host
from tinynormact import nn, theory
from tinynormact.theory import adaptive as adaptive_theory

pytestmark = pytest.mark.theory

SIGMAS = 5.0
RULES = ("forward", "backward", "balanced")
Q = 2.5  # away from the layer's nominal q = 1
SHAPE = (256, 64)
REPEATS = 12
ROUNDING = 1e-9  # some maps are exact per batch (the "output" estimate): float64 rounding


def assert_agrees(samples, predicted: float, allowance: float = 0.0, what: str = "") -> None:
    """mean(samples) within 5 SE (+ a relative allowance) of ``predicted``; 1.1 * predicted not."""
    samples = np.asarray(samples, dtype=float)
    mean = samples.mean()
    spread = SIGMAS * samples.std(ddof=1) / math.sqrt(len(samples))
    tolerance = spread + (allowance + ROUNDING) * abs(predicted)
    assert abs(mean - predicted) <= tolerance, f"{what}: measured {mean}, predicted {predicted}, ±{tolerance}"
    assert abs(mean - 1.1 * predicted) > tolerance, f"{what}: ±{tolerance} accepts a 10% error"


def gaussian_batches(q: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [math.sqrt(q) * rng.standard_normal(SHAPE) for _ in range(REPEATS)]


def output_and_input_gradient(layer: nn.NormalizedActivation, h: np.ndarray, seed: int) -> tuple:
    """(mean(y^2), mean((d loss/d h)^2) / mean(g^2)) for loss = sum(y * g), g ~ N(0, 1): the
    backward factor of E27 with g in the place of W^T delta."""
    x = tn.Tensor(h, requires_grad=True)
    y = layer(x)
    g = np.random.default_rng(seed).standard_normal(h.shape)
    (y * tn.Tensor(g)).sum().backward()
    y_sq = float(np.mean(host(y) ** 2))
    return y_sq, float(np.mean(host(x.grad) ** 2) / np.mean(g**2))


def erf_q_map(rule: str, q: float) -> tuple[float, float]:
    """E26 and E27 for phi = erf and the "batch" estimate from Williams' closed forms:
    m2 = (2/pi) arcsin(2q/(1+2q)), d2 = (4/pi)/sqrt(1+4q); lambda^2 from E12-E14 written out."""
    m2 = 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    d2 = 4 / math.pi / math.sqrt(1 + 4 * q)
    lam_sq = {"forward": q / m2, "backward": 1 / d2, "balanced": (q / m2 + 1 / d2) / 2}[rule]
    return lam_sq * m2, lam_sq * d2


@pytest.mark.parametrize("rule", RULES)
def test_batch_estimate_of_erf_follows_the_closed_form_q_map_and_backward_factor(rule: str) -> None:
    """E26-E27 against an oracle independent of the library's quadrature (erf's closed forms)."""
    layer = nn.NormalizedActivation("erf", mode="adaptive", rule=rule, estimate="batch", center=False)
    measured = [output_and_input_gradient(layer, h, seed) for seed, h in enumerate(gaussian_batches(Q, 1))]
    q_map, factor = erf_q_map(rule, Q)
    assert_agrees([m[0] for m in measured], q_map, what=f"erf {rule} F(q)")
    assert_agrees([m[1] for m in measured], factor, what=f"erf {rule} chi(q)")


CASES = [
    (act, rule, center, estimate)
    for act in ("swish", "tanh")
    for rule in RULES
    for center in (False, True)
    for estimate in adaptive_theory.ESTIMATES
]


@pytest.mark.parametrize(("act", "rule", "center", "estimate"), CASES)
def test_adaptive_layer_maps_q_and_gradients_as_e23_to_e27(
    act: str, rule: str, center: bool, estimate: str
) -> None:
    """The layer's output second moment is F(q) (E26) and its input-gradient factor chi(q)
    (E27), for a Gaussian batch at q = 2.5, every rule, centring and estimate."""
    options = {"rule": rule, "center": center, "estimate": estimate}
    layer = nn.NormalizedActivation(act, mode="adaptive", **options)
    measured = [output_and_input_gradient(layer, h, seed) for seed, h in enumerate(gaussian_batches(Q, 2))]
    label = f"{act} {options}"
    assert_agrees(
        [m[0] for m in measured], float(adaptive_theory.adaptive_q_map(act, Q, **options)), what=label
    )
    factor = float(adaptive_theory.adaptive_backward_factor(act, Q, **options))
    assert_agrees([m[1] for m in measured], factor, what=label)


def test_lambda_bound_clips_lambda_to_the_band_around_the_static_value() -> None:
    """E28: at q = 100 the batch lambda of ntanh (balanced) is 2.6x the static one; a bound of
    1.5 holds it at 1.5x, and F(q) is the static form's there: 1.5^2 lambda_static^2 m2(q)."""
    q, bound = 100.0, 1.5
    static = theory.normalization("tanh", "balanced", 1.0).lambda_
    free = float(adaptive_theory.adaptive_lambda("tanh", q))
    assert free > 2 * static  # the bound is active at this q
    options = {"lambda_bound": bound, "estimate": "batch", "center": False}
    layer = nn.NormalizedActivation("tanh", mode="adaptive", **options)
    layer(tn.Tensor(gaussian_batches(q, 3)[0]))
    assert float(host(tn.Tensor(layer.last_lambda))) == pytest.approx(bound * static, rel=1e-6)
    m2 = theory.gaussian_moments("tanh", q).m2
    assert float(adaptive_theory.adaptive_q_map("tanh", q, lambda_bound=bound)) == pytest.approx(
        (bound * static) ** 2 * m2, rel=1e-12
    )


@pytest.mark.parametrize(
    ("estimate", "rule", "center"),
    [("batch", "forward", False), ("output", "balanced", False), ("output", "balanced", True)],
)
def test_q_drifts_by_the_product_of_weight_variances_without_a_restoring_force(
    estimate: str, rule: str, center: bool
) -> None:
    """E29 through 6 random layers of width 512 with weight variances w_l = 1.25 / fan_in (weights
    grown 12% in scale, as training does): the "batch" forward rule multiplies q by 1.25 per layer
    (q_6 = 1.25^6 = 3.8), the "output" estimate holds q_l at 1.25 lambda^2 m2(1) in every layer
    (centred, the default: at 1.25 lambda_c^2 v(1)).
    40 networks: the marginal map keeps every layer's finite-width error (about 8% at layer 6),
    so fewer would not reject a 10% error."""
    width, depth, networks, w = 512, 6, 40, 1.25
    options = {"rule": rule, "estimate": estimate, "center": center}
    predicted = adaptive_theory.adaptive_profile("swish", [w] * depth, q0=1.0, **options)
    measured = []
    for seed in range(networks):
        rng = np.random.default_rng(100 + seed)
        layer = nn.NormalizedActivation("swish", mode="adaptive", **options)
        x, q = rng.standard_normal((128, width)), []
        for _ in range(depth):
            h = x @ (math.sqrt(w / width) * rng.standard_normal((width, width)))
            q.append(np.mean(h * h))
            x = host(layer(tn.Tensor(h)))
        measured.append(q)
    measured = np.array(measured)
    for layer_index in (0, depth - 1):
        assert_agrees(
            measured[:, layer_index],
            float(predicted[layer_index]),
            allowance=2 * (layer_index + 1) / width,
            what=f"{estimate}{' centred' if center else ''} q_{layer_index + 1}",
        )
