"""NormalizedActivation: static values (E12-E15), adaptive semantics (E16), gradients, errors."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest

import tinynormact as tn
import tinynormact.nn.functional as F
from tests.helpers import host
from tests.test_nn import gradcheck_model
from tinynormact import nn, theory
from tinynormact.tracking.tracker import VarianceTracker

RULES = ("forward", "backward", "balanced")


def batch(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape)


def swish(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


# Closed forms of THEORY's "exact oracles": erf at q and relu.
def erf_gains(q: float) -> tuple[float, float]:
    """(rho, rho') of phi = erf: m2 = (2/pi) arcsin(2q/(1+2q)), d2 = (4/pi)/sqrt(1+4q)."""
    return 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) / q, 4 / math.pi / math.sqrt(1 + 4 * q)


RELU_M1 = 1 / math.sqrt(2 * math.pi)  # E[relu(z)]
RELU_RHO_C = 0.5 - 1 / (2 * math.pi)  # Var[relu(z)]


def rule_lambda(rule: str, rho: float, rho_prime: float) -> float:
    """E12-E14 written out."""
    return {
        "forward": 1 / math.sqrt(rho),
        "backward": 1 / math.sqrt(rho_prime),
        "balanced": math.sqrt((rho + rho_prime) / (2 * rho * rho_prime)),
    }[rule]


# ----- static (E15) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"), [("forward", 1.6765), ("backward", 1.6233), ("balanced", 1.6501)]
)
def test_static_swish_matches_the_reference_table(rule: str, expected: float) -> None:
    """lambda values from THEORY.md's reference table (q = 1)."""
    layer = nn.activation("nswish", rule=rule)
    assert layer.lambda_ == pytest.approx(expected, abs=5e-5)
    x = batch((3, 4))
    np.testing.assert_allclose(host(layer(tn.Tensor(x))), layer.lambda_ * swish(x), rtol=1e-5)


def test_static_centred_relu_uses_closed_forms() -> None:
    tn.set_default_dtype("float64")
    layer = nn.NormalizedActivation("relu", rule="forward", center=True)
    assert layer.mu == pytest.approx(RELU_M1, rel=1e-10)
    assert layer.lambda_ == pytest.approx(1 / math.sqrt(RELU_RHO_C), rel=1e-10)
    x = batch((5, 3))
    expected = (np.maximum(x, 0) - RELU_M1) / math.sqrt(RELU_RHO_C)
    np.testing.assert_allclose(host(layer(tn.Tensor(x))), expected, rtol=1e-10)


def test_names_and_repr() -> None:
    layer = nn.activation("nswish", mode="adaptive")  # centred by default, unlike the static form
    assert repr(layer) == (
        "NormalizedActivation(swish(beta=1.0), mode=adaptive, rule=balanced, center=True, lambda=1.7072)"
    )
    assert not nn.activation("nswish").center
    assert not nn.activation("nswish", mode="adaptive", center=False).center
    mlp = nn.MLP([2, 3, 3, 1], "nrelu", {"rule": "backward", "center": True})
    normalized = [m for m in mlp if isinstance(m, nn.NormalizedActivation)]
    assert len(normalized) == 2 and all(m.rule == "backward" and m.center for m in normalized)
    assert normalized[0] is not normalized[1]
    assert nn.NormalizedActivation("swish").base.name == "swish"
    assert nn.activation("nswish", beta=2.0).base.params == {"beta": 2.0}


def test_functional_static_normalization_is_the_static_layer() -> None:
    x = tn.Tensor(batch((2, 5)))
    layer = nn.activation("ntanh", rule="backward", center=True)
    static = theory.normalized("tanh", "backward", 1.0, True)
    np.testing.assert_array_equal(host(F.activation(x, static)), host(layer(x)))
    np.testing.assert_allclose(host(F.swish(x, beta=2.0)), host(x) / (1 + np.exp(-2 * host(x))), rtol=1e-6)
    with pytest.raises(ValueError, match="no parameter 'rule'"):
        F.activation(x, "tanh", rule="backward")


# ----- adaptive (E16): exact train / eval semantics ------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_adaptive_train_uses_batch_statistics_and_eval_the_running_ones(rule: str) -> None:
    """Oracle: E16 written out in NumPy, including the momentum recursion from the closed-form
    starting values at q = 1 (centred relu)."""
    tn.set_default_dtype("float64")
    momentum = 0.8
    layer = nn.NormalizedActivation(
        "relu", mode="adaptive", rule=rule, center=True, momentum=momentum, estimate="batch"
    )
    running = {"rho": RELU_RHO_C, "rho_prime": 0.5, "mu": RELU_M1}
    for step in range(3):
        h = batch((16, 8), seed=step, scale=1.5) + 0.3
        phi = np.maximum(h, 0)
        rho_b, rho_prime_b, mu_b = phi.var() / (h**2).mean(), (h > 0).mean(), phi.mean()
        out = layer(tn.Tensor(h))
        lam_b = rule_lambda(rule, rho_b, rho_prime_b)
        np.testing.assert_allclose(host(out), lam_b * (phi - mu_b), rtol=1e-10)
        for key, value in (("rho", rho_b), ("rho_prime", rho_prime_b), ("mu", mu_b)):
            running[key] = momentum * running[key] + (1 - momentum) * value

    layer.eval()
    h = batch((16, 8), seed=10)
    lam = rule_lambda(rule, running["rho"], running["rho_prime"])
    expected = lam * (np.maximum(h, 0) - running["mu"])
    np.testing.assert_allclose(host(layer(tn.Tensor(h))), expected, rtol=1e-10)
    assert layer.lambda_ == pytest.approx(lam, rel=1e-12)
    before = host(layer.running_rho).copy()
    layer(tn.Tensor(batch((16, 8), seed=11)))
    np.testing.assert_array_equal(host(layer.running_rho), before)  # evaluation updates nothing


def test_adaptive_train_statistics_running_applies_the_updated_running_values() -> None:
    """Oracle: the momentum recursion in NumPy; in training the layer applies lambda and mu of the
    running estimates after this batch's update (centred relu, balanced rule)."""
    tn.set_default_dtype("float64")
    momentum = 0.7
    layer = nn.NormalizedActivation(
        "relu", mode="adaptive", center=True, momentum=momentum, train_statistics="running", estimate="batch"
    )
    running = {"rho": RELU_RHO_C, "rho_prime": 0.5, "mu": RELU_M1}
    for step in range(3):
        h = batch((16, 8), seed=20 + step, scale=1.5) + 0.3
        phi = np.maximum(h, 0)
        batch_values = {"rho": phi.var() / (h**2).mean(), "rho_prime": (h > 0).mean(), "mu": phi.mean()}
        for key, value in batch_values.items():
            running[key] = momentum * running[key] + (1 - momentum) * value
        lam = rule_lambda("balanced", running["rho"], running["rho_prime"])
        np.testing.assert_allclose(host(layer(tn.Tensor(h))), lam * (phi - running["mu"]), rtol=1e-10)
    with pytest.raises(ValueError, match="unknown train_statistics 'ema'; valid: batch, running"):
        nn.NormalizedActivation("relu", mode="adaptive", train_statistics="ema")


def test_untrained_adaptive_layer_in_eval_mode_equals_the_static_one() -> None:
    x = tn.Tensor(batch((4, 6)))
    adaptive = nn.activation("nelu", mode="adaptive", center=True).eval()
    static = nn.activation("nelu", center=True)
    np.testing.assert_allclose(host(adaptive(x)), host(static(x)), rtol=1e-6)


def test_running_statistics_converge_to_the_population_values() -> None:
    """Batches of h ~ N(0, q = 2) through erf: the running rho and rho' must reach the closed
    forms at q = 2 (they start at q = 1, about 25% away).

    Tolerance: one batch of N = B * n values gives rho_b with relative error at most
    sqrt(1 / (N m2)) + sqrt(2/N) (erf^2 <= 1 so Var(erf^2) <= m2; h^2 is a squared Gaussian) and
    rho'_b at most sqrt((4/pi) / (N d2)) (erf'^2 <= 4/pi). The momentum average of independent
    batches scales these by sqrt((1 - m) / (1 + m)); after 150 steps the start is forgotten to
    m^150. Allowed: 4 standard errors; a 10% error in the target must fail.
    """
    tn.set_default_dtype("float64")
    q, momentum, n_values = 2.0, 0.9, 256 * 32
    layer = nn.NormalizedActivation("erf", mode="adaptive", momentum=momentum, estimate="batch")
    for step in range(150):
        layer(tn.Tensor(batch((256, 32), seed=step, scale=math.sqrt(q))))
    rho, rho_prime = erf_gains(q)
    m2, d2 = rho * q, rho_prime
    averaging = math.sqrt((1 - momentum) / (1 + momentum))
    checks = [
        (float(host(layer.running_rho)), rho, math.sqrt(1 / (n_values * m2)) + math.sqrt(2 / n_values)),
        (float(host(layer.running_rho_prime)), rho_prime, math.sqrt(4 / math.pi / (n_values * d2))),
    ]
    assert abs(erf_gains(1.0)[0] / rho - 1) > 0.2  # the start is far from the target
    for measured, target, batch_error in checks:
        tolerance = 4 * averaging * batch_error + momentum**150
        assert abs(measured / target - 1) <= tolerance
        assert abs(measured / (1.1 * target) - 1) > tolerance
        assert abs(measured / (0.9 * target) - 1) > tolerance


# ----- gradients ----------------------------------------------------------------------------------


def test_stop_gradient_treats_the_batch_lambda_as_a_constant() -> None:
    """Default: d out / d h = lambda_b * phi'(h) (lambda_b and mu_b constants), by hand."""
    tn.set_default_dtype("float64")
    layer = nn.NormalizedActivation("swish", mode="adaptive", rule="balanced", center=True, estimate="batch")
    h = batch((8, 5), seed=3)
    x = tn.Tensor(h, requires_grad=True)
    g = batch((8, 5), seed=4)
    layer(x).backward(g)
    phi = swish(h)
    s = 1 / (1 + np.exp(-h))
    dphi = s + h * s * (1 - s)
    lam_b = rule_lambda("balanced", phi.var() / (h**2).mean(), (dphi**2).mean())
    np.testing.assert_allclose(host(x.grad), g * lam_b * dphi, rtol=1e-10)


MODES = [
    {"rule": rule, "center": center} for rule in RULES for center in (False, True)
] + [
    {"mode": "adaptive", "rule": rule, "center": center, "differentiate_lambda": True}
    for rule in RULES
    for center in (False, True)
] + [
    {"mode": "adaptive", "rule": "balanced", "learnable_correction": True, "differentiate_lambda": True},
    {"rule": "forward", "learnable_correction": True},
    {"mode": "adaptive", "estimate": "output", "differentiate_lambda": True},
    {"mode": "adaptive", "estimate": "output", "center": True, "differentiate_lambda": True},
    {"mode": "adaptive", "estimate": "output", "lambda_bound": 1.01, "differentiate_lambda": True},
]  # fmt: skip


@pytest.mark.parametrize("options", MODES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_gradcheck_every_normalized_mode(options: dict) -> None:
    tn.set_default_dtype("float64")
    model = nn.MLP([3, 4, 2], "nswish", options, rng=0)
    if options.get("learnable_correction"):
        model[1].correction.data[...] = 0.4
    gradcheck_model(model, tn.Tensor(batch((5, 3), seed=1)))


def test_gradcheck_adaptive_eval_mode() -> None:
    tn.set_default_dtype("float64")
    model = nn.MLP([3, 4, 2], "ngelu", {"mode": "adaptive", "center": True}, rng=0)
    model(tn.Tensor(batch((6, 3), seed=2)))  # move the running statistics off their start
    gradcheck_model(model.eval(), tn.Tensor(batch((5, 3), seed=1)))


def test_learnable_correction_is_bounded_and_starts_at_zero() -> None:
    tn.set_default_dtype("float64")
    layer = nn.NormalizedActivation("tanh", rule="backward", learnable_correction=True, correction_scale=0.3)
    base = layer.lambda_
    h = batch((3, 3))
    np.testing.assert_allclose(host(layer(tn.Tensor(h))), base * np.tanh(h), rtol=1e-12)
    layer.correction.data[...] = 0.5
    assert layer.lambda_ == pytest.approx(base + 0.3 * math.tanh(0.5), rel=1e-12)
    np.testing.assert_allclose(host(layer(tn.Tensor(h))), layer.lambda_ * np.tanh(h), rtol=1e-12)
    layer.correction.data[...] = 1e3
    assert layer.lambda_ == pytest.approx(base + 0.3, rel=1e-12)
    assert [name for name, _ in layer.named_parameters()] == ["correction"]


# ----- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "dynamic"}, "unknown normalization mode 'dynamic'; valid: static, adaptive"),
        ({"rule": "mean"}, "unknown normalization rule 'mean'; valid: forward, backward, balanced"),
        ({"mode": "adaptive", "momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"differentiate_lambda": True}, "needs mode='adaptive'"),
        ({"q": -1.0}, "q must be a finite number > 0"),
        ({"mode": "adaptive", "estimate": "raw"}, "unknown estimate 'raw'; valid: batch, gaussian, output"),
        (
            {"mode": "adaptive", "estimate": "gaussian", "differentiate_lambda": True},
            "needs estimate='batch' or",
        ),
        ({"lambda_bound": 0.5}, r"lambda_bound must be 0 \(no bound\) or a finite number >= 1, got 0.5"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nn.NormalizedActivation("swish", **options)


@pytest.mark.parametrize(
    ("options", "evaluate"),
    [
        ({"mode": "static"}, False),
        ({"mode": "adaptive"}, False),
        ({"mode": "adaptive"}, True),
        ({"mode": "adaptive", "center": True, "train_statistics": "running"}, False),
        ({"mode": "adaptive", "differentiate_lambda": True}, False),
        ({"mode": "static", "learnable_correction": True}, False),
    ],
)
def test_tracked_rho_prime_is_that_of_the_layers_derivative(options, evaluate) -> None:
    """Whether lambda sits inside one fused node (static, adaptive in evaluation) or is a
    separate factor (adaptive in training, or with a correction), the rho' a tracker reads from
    the gradients is mean((d output / d input)^2) with lambda and mu held constant:
    last_lambda^2 times mean(swish'(h)^2), swish' written here. With differentiate_lambda the
    gradient also flows through the batch statistics: the ratio is not phi', and rho' is NaN."""
    tn.set_default_dtype("float64")
    layer = nn.activation("nswish", **options)
    model = nn.Sequential(nn.Linear(8, 8, rng=4), layer)
    if evaluate:
        model.eval()
    if layer.correction is not None:
        layer.correction.data = layer.correction.data + 0.7  # a correction that changes lambda
    x = np.random.default_rng(5).standard_normal((16, 8))
    c = np.random.default_rng(7).standard_normal((16, 8))
    seen = {}
    model[0].register_forward_hook(lambda m, i, out: seen.setdefault("h", out.numpy()))
    with VarianceTracker(model, statistics=("rho_prime",)) as tracker:
        (model(tn.Tensor(x)) * tn.Tensor(c)).sum().backward()
    h = seen["h"]
    s = 1 / (1 + np.exp(-h))
    lam = float(host(tn.Tensor(layer.last_lambda)))
    expected = lam**2 * np.mean((s + h * s * (1 - s)) ** 2)
    if layer.differentiate_lambda:
        assert np.isnan(tracker.profile()["rho_prime"][0])
    else:
        np.testing.assert_allclose(tracker.profile()["rho_prime"][0], expected, rtol=1e-12)


def test_a_forward_without_backward_leaves_no_reference_cycle() -> None:
    """The layer's forward must not tie the graph into a cycle: the graph of a forward that
    never reaches backward (a validation loss computed with autograd on) goes as soon as its
    output does, without the cyclic garbage collector."""
    tn.set_default_dtype("float64")
    layer = nn.activation("nswish", mode="adaptive", differentiate_lambda=True, learnable_correction=True)
    x = tn.Tensor(np.random.default_rng(6).standard_normal((16, 8)), requires_grad=True)
    gc.disable()
    try:
        h = x * 1.0  # an array that only the graph keeps once h itself is gone
        alive = weakref.ref(h.data)
        out = layer(h)
        del out, h
        layer.last_lambda = None  # the module keeps the last lambda (a graph) on purpose
        assert alive() is None
    finally:
        gc.enable()


# ----- the estimates of E24-E25 and the bound E28 ----------------------------------------------


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("q", [3e-4, 0.37, 2.5, 41.0])
def test_gaussian_estimate_interpolates_the_gaussian_gains_at_the_batch_q(q: float, center: bool) -> None:
    """E24: lambda and mu from the Gaussian moments at q_b = mean(h^2), for a batch that is not
    Gaussian at all (two values): the table's linear interpolation in log q errs by < 1e-4."""
    h = np.sqrt(q) * np.where(np.arange(64).reshape(8, 8) % 3 == 0, 1.6, -0.53)
    q_b = float(np.mean(h * h))
    layer = nn.NormalizedActivation("tanh", mode="adaptive", estimate="gaussian", center=center)
    out = host(layer(tn.Tensor(h)))
    lam, mu = theory.normalization("tanh", "balanced", q_b, center)
    np.testing.assert_allclose(out, lam * (np.tanh(h) - mu), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("center", [False, True])
def test_output_estimate_fixes_the_output_second_moment_for_any_batch(center: bool) -> None:
    """E25: lambda_b^2 mean(phi^2) = lambda_static^2 m2(q_n) exactly (centred: lambda_b^2
    var(phi) = lambda_static^2 v(q_n), mu_b removed), here for a skewed batch at q_b = 9 and a
    layer whose q_n = 0.5."""
    h = 3.0 * np.abs(batch((32, 16), seed=4)) - 1.0
    layer = nn.NormalizedActivation("swish", mode="adaptive", estimate="output", q=0.5, center=center)
    y = host(layer(tn.Tensor(h)))
    lam = theory.normalization("swish", "balanced", 0.5, center).lambda_
    moments = theory.gaussian_moments("swish", 0.5)
    target = lam**2 * (moments.v if center else moments.m2)
    assert np.mean(y * y) == pytest.approx(target, rel=1e-12)
    if center:
        assert abs(np.mean(y)) < 1e-12


def test_lambda_bound_holds_evaluation_lambda_too() -> None:
    """E28 in evaluation mode: running estimates of a saturated tanh give lambda far above the
    static one; the bound 1.5 caps the eval lambda at 1.5 lambda_static."""
    layer = nn.NormalizedActivation("tanh", mode="adaptive", lambda_bound=1.5, momentum=0.0, estimate="batch")
    layer(tn.Tensor(batch((16, 16), seed=5, scale=30.0)))
    assert layer.lambda_ == pytest.approx(1.5 * layer.static_lambda, rel=1e-12)
