"""The variance theory (docs/THEORY.md E1-E18) against oracles that are not the code under test:
closed forms, SciPy's adaptive quadrature, published constants and hand-derived recursions.
The Monte Carlo checks are in test_theory_montecarlo.py."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from tinynormact import activations, theory

pytestmark = pytest.mark.theory

PARAMETER_VARIANTS = [
    ("gelu", {"approximate": "tanh"}),
    ("leaky_relu", {"slope": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("swish", {"beta": 2.0}),
]
ZOO = [activations.get(name) for name in activations.names()] + [
    activations.get(name, **params) for name, params in PARAMETER_VARIANTS
]
ZOO_IDS = [repr(act) for act in ZOO]
QS = [0.01, 0.25, 1.0, 4.0, 100.0]


# --- oracles ------------------------------------------------------------------------------------


def quad_moments(act: activations.ActivationFunction, q: float) -> tuple[float, float, float]:
    """E[phi], E[phi^2], E[phi'^2] for x ~ N(0, q) by SciPy's adaptive quadrature in x, split at
    the kinks and at 0, over |x| <= 40 sqrt(q) (the mass outside is below 1e-300)."""

    def phi(x: float) -> float:
        return float(act.f(np.array([x]))[0])

    def dphi(x: float) -> float:
        return float(act.df(np.array([x]))[0])

    def density(x: float) -> float:
        return math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)

    edges = sorted({-40 * math.sqrt(q), 0.0, *act.kinks, 40 * math.sqrt(q)})

    def integrate(g):
        return sum(
            quad(lambda x: g(x) * density(x), a, b, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        )

    return integrate(phi), integrate(lambda x: phi(x) ** 2), integrate(lambda x: dphi(x) ** 2)


def erf_m2(q):  # E[erf(x)^2], x ~ N(0, q) (Williams 1997)
    return 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q))


def erf_d2(q):  # E[erf'(x)^2] = (4/pi) E[exp(-2 x^2)]
    return 4 / np.pi / np.sqrt(1 + 4 * q)


# --- E1-E4 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", QS)
def test_moments_match_closed_forms(q):
    relu = theory.gaussian_moments("relu", q)
    expected = (math.sqrt(q / (2 * math.pi)), q / 2, q * (0.5 - 1 / (2 * math.pi)), 0.5)
    np.testing.assert_allclose(relu, expected, rtol=1e-10)

    a = 0.2
    leaky = theory.gaussian_moments(activations.get("leaky_relu", slope=a), q)
    expected = ((1 - a) * math.sqrt(q / (2 * math.pi)), q * (1 + a * a) / 2, (1 + a * a) / 2)
    np.testing.assert_allclose([leaky.m1, leaky.m2, leaky.d2], expected, rtol=1e-10)

    identity = theory.gaussian_moments("identity", q)
    np.testing.assert_allclose(identity, (0.0, q, q, 1.0), rtol=1e-10, atol=1e-14)

    erf = theory.gaussian_moments("erf", q)
    np.testing.assert_allclose([erf.m2, erf.v, erf.d2], [erf_m2(q), erf_m2(q), erf_d2(q)], rtol=1e-10)
    assert abs(erf.m1) < 1e-14


@pytest.mark.parametrize("q", [0.25, 1.0, 4.0])
@pytest.mark.parametrize("act", ZOO, ids=ZOO_IDS)
def test_moments_match_adaptive_quadrature(act, q):
    m1, m2, d2 = quad_moments(act, q)
    got = theory.gaussian_moments(act, q)
    np.testing.assert_allclose([got.m1, got.m2, got.d2], [m1, m2, d2], rtol=1e-9, atol=1e-12)
    assert got.v == pytest.approx(m2 - m1 * m1, rel=1e-9, abs=1e-12)


def test_moments_are_vectorized_over_q():
    q = np.array([[0.25, 1.0, 4.0], [0.01, 9.0, 100.0]])
    batch = theory.gaussian_moments("swish", q)
    assert all(np.shape(field) == q.shape for field in batch)
    for index in np.ndindex(q.shape):
        one = theory.gaussian_moments("swish", float(q[index]))
        assert all(type(value) is float for value in one)
        np.testing.assert_allclose([f[index] for f in batch], one, rtol=1e-14)
    np.testing.assert_allclose(theory.rho("relu", q), 0.5, rtol=1e-10)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), [1.0, -2.0]])
def test_moments_reject_q_that_is_not_positive(bad):
    with pytest.raises(ValueError, match="q must be a finite number > 0"):
        theory.gaussian_moments("tanh", bad)


# --- E5-E7, scaling and the normalization rules ----------------------------------------------------


# THEORY.md's reference table at q = 1: rho, rho_c, rho', kappa, lambda forward/backward/balanced
REFERENCE_TABLE = {
    "relu": (0.500000, 0.340845, 0.500000, 1.0000, 1.4142, 1.4142, 1.4142),
    "tanh": (0.394294, 0.394294, 0.464403, 1.1778, 1.5925, 1.4674, 1.5313),
    "sigmoid": (0.293379, 0.043379, 0.044836, 0.1528, 1.8462, 4.7226, 3.5855),
    "swish": (0.355776, 0.313083, 0.379482, 1.0666, 1.6765, 1.6233, 1.6501),
    "elu": (0.644945, 0.619179, 0.668102, 1.0359, 1.2452, 1.2234, 1.2344),
}


@pytest.mark.parametrize("name", REFERENCE_TABLE)
def test_gains_reproduce_the_reference_table_of_the_contract(name):
    got = [
        theory.rho(name),
        theory.rho_c(name),
        theory.rho_prime(name),
        theory.kappa(name),
        *(theory.normalization(name, rule).lambda_ for rule in ("forward", "backward", "balanced")),
    ]
    np.testing.assert_allclose(got[:3], REFERENCE_TABLE[name][:3], atol=5e-7)
    np.testing.assert_allclose(got[3:], REFERENCE_TABLE[name][3:], atol=5e-5)


@pytest.mark.parametrize("q", [0.25, 4.0])
@pytest.mark.parametrize("act", ZOO, ids=ZOO_IDS)
def test_gains_away_from_q_one_match_adaptive_quadrature(act, q):
    """E5-E7 at q != 1 against SciPy's quadrature: a gain that forgot its 1/q (rho = m2,
    rho_c = v) or its q (kappa = d2/m2) is off by a factor 4 here."""
    m1, m2, d2 = quad_moments(act, q)
    assert theory.rho(act, q) == pytest.approx(m2 / q, rel=1e-9)
    assert theory.rho_c(act, q) == pytest.approx((m2 - m1 * m1) / q, rel=1e-8, abs=1e-12)
    assert theory.rho_prime(act, q) == pytest.approx(d2, rel=1e-9)
    assert theory.kappa(act, q) == pytest.approx(d2 * q / m2, rel=1e-9)


@pytest.mark.parametrize("q", QS)
def test_gains_match_closed_forms_at_every_q(q):
    """relu: rho = rho' = 1/2, rho_c = 1/2 - 1/(2 pi), kappa = 1 at every q; erf: Williams'
    closed forms, whose kappa = q d2 / m2 varies with q."""
    assert theory.rho("relu", q) == pytest.approx(0.5, rel=1e-10)
    assert theory.rho_c("relu", q) == pytest.approx(0.5 - 1 / (2 * math.pi), rel=1e-10)
    assert theory.rho_prime("relu", q) == pytest.approx(0.5, rel=1e-10)
    assert theory.kappa("relu", q) == pytest.approx(1.0, rel=1e-10)
    assert theory.rho("erf", q) == pytest.approx(erf_m2(q) / q, rel=1e-10)
    assert theory.rho_c("erf", q) == pytest.approx(erf_m2(q) / q, rel=1e-10)
    assert theory.kappa("erf", q) == pytest.approx(erf_d2(q) * q / erf_m2(q), rel=1e-10)
    arr = np.array([q, 2 * q])  # arrays of q give one value per q
    np.testing.assert_allclose(theory.kappa("erf", arr), erf_d2(arr) * arr / erf_m2(arr), rtol=1e-10)


@pytest.mark.parametrize("rule", theory.RULES)
def test_lambda_from_gains_matches_its_formula_on_arrays(rule):
    rho, rho_prime = np.array([0.3, 1.7, 4.0]), np.array([2.2, 0.4, 1.0])
    expected = {"forward": 1 / rho, "backward": 1 / rho_prime, "balanced": (1 / rho + 1 / rho_prime) / 2}
    got = theory.lambda_from_gains(rule, rho, rho_prime)
    np.testing.assert_allclose(got, expected[rule] ** 0.5, rtol=1e-14)


@pytest.mark.parametrize("act", ZOO, ids=ZOO_IDS)
def test_scaling_multiplies_both_gains_by_c_squared_and_keeps_kappa(act):
    q, c = np.array([0.25, 1.0, 4.0]), 2.5
    scaled = activations.affine(act, c)
    np.testing.assert_allclose(theory.rho(scaled, q), c**2 * theory.rho(act, q), rtol=1e-12)
    np.testing.assert_allclose(theory.rho_prime(scaled, q), c**2 * theory.rho_prime(act, q), rtol=1e-12)
    np.testing.assert_allclose(theory.kappa(scaled, q), theory.kappa(act, q), rtol=1e-12)


@pytest.mark.parametrize("q", [0.5, 2.0])
@pytest.mark.parametrize("act", ZOO, ids=ZOO_IDS)
def test_each_rule_makes_its_gain_one(act, q):
    """The gains of each normalized activation are measured with SciPy's quadrature (quad_moments),
    not with the Gauss-Hermite code that computed lambda."""
    for center in (False, True):
        forward = quad_moments(theory.normalized(act, "forward", q, center), q)
        backward = quad_moments(theory.normalized(act, "backward", q, center), q)
        m1, m2, d2 = quad_moments(theory.normalized(act, "balanced", q, center), q)
        assert forward[1] / q == pytest.approx(1.0, rel=1e-9)  # E12: rho of phi_hat
        assert backward[2] == pytest.approx(1.0, rel=1e-9)  # E13: rho' of phi_hat
        if center:  # a centred phi_hat has mean 0, so its rho is its rho_c
            assert forward[0] == pytest.approx(0.0, abs=1e-9)
        assert (q / m2 + 1 / d2) / 2 == pytest.approx(1.0, rel=1e-9)  # E14
    assert theory.normalization(act, "forward", q, center=False).mu == 0.0


def test_normalization_closed_form_for_relu():
    rho_c = 0.5 - 1 / (2 * math.pi)
    lam, mu = theory.normalization("relu", "forward", 1.0, center=True)
    assert lam == pytest.approx(1 / math.sqrt(rho_c), rel=1e-10)
    assert mu == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-10)
    lam, _ = theory.normalization("relu", "balanced", 1.0, center=True)
    assert lam == pytest.approx(math.sqrt((1 / rho_c + 2) / 2), rel=1e-10)


def test_normalization_rejects_an_unknown_rule():
    message = "unknown normalization rule 'sideways'; valid: forward, backward, balanced"
    with pytest.raises(ValueError, match=message):
        theory.normalization("tanh", "sideways")
    with pytest.raises(ValueError, match="convention 'he'"):
        theory.init_gain("relu", "he")


def test_init_gains():
    assert theory.init_gain("relu") == pytest.approx(math.sqrt(2), rel=1e-10)
    assert theory.init_gain("relu", "backward") == pytest.approx(math.sqrt(2), rel=1e-10)
    assert theory.init_gain("identity") == pytest.approx(1.0, rel=1e-10)
    assert theory.init_gain("tanh") == pytest.approx(1.5925, abs=5e-5)
    slope = 0.2
    leaky = activations.get("leaky_relu", slope=slope)
    assert theory.init_gain(leaky) == pytest.approx(math.sqrt(2 / (1 + slope**2)), rel=1e-10)
    assert theory.init_gain("erf", "backward", q=2.0) == pytest.approx(erf_d2(2.0) ** -0.5, rel=1e-10)


# --- E8-E11: MLP profile ---------------------------------------------------------------------------


def test_mlp_profile_linear_network_closed_form():
    widths = [30, 50, 20, 80, 10]
    s_w, grad_out, q0 = np.array([1.5, 0.5, 2.0, 1.2]), 0.7, 2.0
    profile = theory.mlp_profile("identity", widths, weight_var=s_w, q0=q0, grad_out_sq=grad_out)
    q = q0 * np.cumprod(s_w)  # E8 without bias: products of the weight variances
    np.testing.assert_allclose(profile.q, q, rtol=1e-12)
    np.testing.assert_allclose(profile.x_sq, q, rtol=1e-12)
    # E9: delta_l = grad_out * prod_{k > l} s_k n_k / n_{k-1} = grad_out * n_L / n_l * prod_{k > l} s_k
    n = np.array(widths, dtype=float)
    tail = np.array([np.prod(s_w[l + 1 :]) for l in range(4)])
    delta = grad_out * n[-1] / n[1:] * tail
    np.testing.assert_allclose(profile.delta_sq, delta, rtol=1e-12)
    np.testing.assert_allclose(profile.weight_grad_sq, delta * np.concatenate([[q0], q[:-1]]), rtol=1e-12)
    np.testing.assert_allclose(profile.bias_grad_sq, delta, rtol=1e-12)


def test_mlp_profile_he_initialized_relu_is_flat():
    profile = theory.mlp_profile("relu", [64] * 7, weight_var=2.0, q0=1.5)
    np.testing.assert_allclose(profile.q, 3.0, rtol=1e-10)
    np.testing.assert_allclose(profile.x_sq, [1.5] * 5 + [3.0], rtol=1e-10)
    np.testing.assert_allclose(profile.delta_sq, 1.0, rtol=1e-10)
    np.testing.assert_allclose(profile.weight_grad_sq, 1.5, rtol=1e-10)  # E11 with kappa = 1


def test_mlp_profile_erf_network_follows_the_closed_form_recursion():
    widths, s_w, s_b, q0, grad_out = [40, 60, 60, 30, 50], 1.7, 0.2, 0.8, 2.0
    profile = theory.mlp_profile("erf", widths, s_w, s_b, q0, final_activation=True, grad_out_sq=grad_out)
    q, x = [], q0
    for _ in range(4):  # E8 with Williams' closed form for E[erf^2]
        q.append(s_w * x + s_b)
        x = erf_m2(q[-1])
    q = np.array(q)
    delta = [grad_out * erf_d2(q[3])]
    for l in (2, 1, 0):  # E9 with the closed form of E[erf'^2]
        delta.insert(0, s_w * widths[l + 2] / widths[l + 1] * erf_d2(q[l]) * delta[0])
    np.testing.assert_allclose(profile.q, q, rtol=1e-10)
    np.testing.assert_allclose(profile.x_sq, erf_m2(q), rtol=1e-10)
    np.testing.assert_allclose(profile.delta_sq, delta, rtol=1e-10)
    inputs_sq = np.concatenate([[q0], erf_m2(q[:-1])])
    np.testing.assert_allclose(profile.weight_grad_sq, np.array(delta) * inputs_sq, rtol=1e-10)


@pytest.mark.parametrize("name", ["tanh", "swish", "sigmoid", "selu"])
def test_weight_gradient_ratio_between_layers_is_kappa(name):
    """E11: equal widths and no bias give E[gW_l^2] / E[gW_{l+1}^2] = kappa(q_l)."""
    act = activations.get(name)
    profile = theory.mlp_profile(act, [100] * 6, weight_var=1.3)
    for l in range(4):  # l is 0-based: layers l + 1 and l + 2
        _, m2, d2 = quad_moments(act, profile.q[l])
        ratio = profile.weight_grad_sq[l] / profile.weight_grad_sq[l + 1]
        assert ratio == pytest.approx(d2 * profile.q[l] / m2, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": [10]}, "widths must be"),
        ({"widths": [10, 0, 5]}, "widths must be"),
        ({"widths": [10, 2.7, 5]}, r"every n an integer >= 1, got \[10, 2.7, 5\] \(widths\[1\] = 2.7\)"),
        ({"widths": [10, -3, 5]}, r"widths\[1\] = -3"),
        ({"widths": [10, True, 5]}, r"widths\[1\] = True"),
        ({"widths": [10, "5"]}, r"widths\[1\] = '5'"),
        ({"widths": [10, float("inf")]}, r"widths\[1\] = inf"),
        ({"widths": "abc"}, "widths must be .*, got 'abc'"),
        ({"widths": 10}, "widths must be .*, got 10"),
        ({"weight_var": [1.0, 2.0]}, "weight_var must be a finite number > 0 or 3 of them"),
        ({"weight_var": 0.0}, "weight_var must be"),
        ({"bias_var": -0.1}, "bias_var must be a finite number >= 0"),
        ({"q0": 0.0}, "q0 must be"),
    ],
)
def test_mlp_profile_rejects_bad_arguments(kwargs, message):
    arguments = {"act": "tanh", "widths": [10, 10, 10, 10], **kwargs}
    with pytest.raises(ValueError, match=message):
        theory.mlp_profile(**arguments)


# --- E17-E18: residual profile -----------------------------------------------------------------------


def test_residual_profile_linear_branches_closed_form():
    s_w, alpha, k, depth, g = 1.2, 0.5, 2, 5, 3.0
    profile = theory.residual_profile("identity", 64, depth, k, alpha, s_w, q0=2.0, grad_out_sq=g)
    growth = 1 + alpha**2 * s_w ** (k + 1)  # a linear branch of k + 1 Linears multiplies by s_w^(k+1)
    np.testing.assert_allclose(profile.x_sq, 2.0 * growth ** np.arange(depth + 1), rtol=1e-12)
    np.testing.assert_allclose(profile.grad_sq, g * growth ** np.arange(depth, -1, -1), rtol=1e-12)
    np.testing.assert_allclose(profile.chi, s_w ** (k + 1), rtol=1e-12)


def test_residual_profile_relu_branches_by_hand():
    s_w, s_b, alpha, q0 = 2.0, 0.1, 0.7, 1.3
    profile = theory.residual_profile("relu", 64, 3, 2, alpha, s_w, s_b, q0)
    x, xs, qs = q0, [q0], []
    for _ in range(3):  # E[relu(h)^2] = q / 2
        q1 = s_w * x + s_b
        q2 = s_w * q1 / 2 + s_b
        branch = s_w * q2 / 2 + s_b
        x += alpha**2 * branch
        xs.append(x)
        qs.append([q1, q2])
    np.testing.assert_allclose(profile.x_sq, xs, rtol=1e-12)
    np.testing.assert_allclose(profile.branch_q, qs, rtol=1e-12)
    chi = s_w * (s_w / 2) ** 2  # E[relu'^2] = 1/2
    np.testing.assert_allclose(profile.chi, chi, rtol=1e-12)
    np.testing.assert_allclose(profile.grad_sq, (1 + alpha**2 * chi) ** np.arange(3, -1, -1), rtol=1e-12)


def test_residual_profile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        theory.residual_profile("relu", 64, 0)
    with pytest.raises(ValueError, match="branch_depth must be an integer >= 1"):
        theory.residual_profile("relu", 64, 3, branch_depth=1.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": "abc"}, "width must be an integer >= 1, got 'abc'"),
        ({"width": 2.7}, "width must be an integer >= 1, got 2.7"),
        ({"width": 0}, "width must be an integer >= 1, got 0"),
        ({"width": None}, "width must be an integer >= 1, got None"),
        ({"depth": "3"}, "depth must be an integer >= 1, got '3'"),
        ({"depth": float("nan")}, "depth must be an integer >= 1, got nan"),
        ({"depth": True}, "depth must be an integer >= 1, got True"),
        ({"branch_depth": "two"}, "branch_depth must be an integer >= 1, got 'two'"),
        ({"branch_depth": -1}, "branch_depth must be an integer >= 1, got -1"),
        ({"alpha": "big"}, "alpha must be a finite number, got 'big'"),
    ],
)
def test_residual_profile_names_a_non_integer_or_non_numeric_size(kwargs, message):
    arguments = {"act": "relu", "width": 64, "depth": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        theory.residual_profile(**arguments)


def test_profiles_accept_whole_numbers_given_as_floats_or_numpy_integers():
    reference = theory.mlp_profile("tanh", [10, 20, 5])
    np.testing.assert_array_equal(theory.mlp_profile("tanh", np.array([10.0, 20.0, 5.0])).q, reference.q)
    profile = theory.residual_profile("relu", 64.0, np.int64(3), 2.0)
    assert profile.x_sq.shape == (4,) and profile.branch_q.shape == (3, 2)


# --- fixed points -----------------------------------------------------------------------------------


def test_solve_selu_reproduces_the_published_constants():
    alpha, scale = theory.solve_selu()
    assert alpha == pytest.approx(1.6732632423543772, abs=1e-14)  # every published digit
    assert scale == pytest.approx(1.0507009873554804, abs=1e-14)


def test_forward_fixed_point_relu_closed_form_and_degenerate_cases():
    # relu: q = s q / 2 + b  =>  q* = b / (1 - s / 2) for s < 2
    assert theory.forward_fixed_point("relu", 1.5, 0.3) == pytest.approx(1.2, rel=1e-12)
    assert theory.forward_fixed_point("relu", 1.0, 0.5, q0=50.0) == pytest.approx(1.0, rel=1e-12)
    assert theory.forward_fixed_point("relu", 2.0, 0.0, q0=3.0) == 3.0  # every q is fixed
    assert theory.forward_fixed_point("relu", 3.0) == math.inf
    assert theory.forward_fixed_point("tanh", 0.5) == 0.0


def test_forward_fixed_point_erf_is_where_iterating_the_closed_form_converges():
    s_w, s_b = 2.5, 0.05
    q = 1.0
    for _ in range(500):  # E8 iterated with Williams' closed form
        q = s_w * erf_m2(q) + s_b
    assert theory.forward_fixed_point("erf", s_w, s_b) == pytest.approx(q, rel=1e-10)


def test_critical_weight_var_degenerate_cases():
    assert theory.critical_weight_var("relu") == pytest.approx(2.0, rel=1e-12)
    assert theory.critical_weight_var("relu", bias_var=0.1) == pytest.approx(2.0, rel=1e-12)
    assert theory.critical_weight_var(activations.get("leaky_relu", slope=0.2)) == pytest.approx(2 / 1.04)
    assert theory.critical_weight_var("identity") == pytest.approx(1.0, rel=1e-12)
    assert theory.critical_weight_var("tanh") == pytest.approx(1.0, rel=1e-10)  # q* = 0, tanh'(0) = 1
    assert theory.critical_weight_var("erf") == pytest.approx(math.pi / 4, rel=1e-10)  # 1 / erf'(0)^2
    with pytest.raises(ValueError, match="no critical weight variance for softplus"):
        theory.critical_weight_var("softplus")


@pytest.mark.parametrize("bias_var", [0.05, 0.3])
def test_critical_weight_var_erf_matches_the_closed_form_edge_of_chaos(bias_var):
    # s * d2(q) = 1 gives s = pi sqrt(1 + 4q) / 4; the fixed point s * m2(q) + b = q then fixes q
    def mismatch(q):
        return math.pi * math.sqrt(1 + 4 * q) / 4 * erf_m2(q) + bias_var - q

    q_star = brentq(mismatch, bias_var + 1e-9, 1e6, xtol=1e-14)
    expected = math.pi * math.sqrt(1 + 4 * q_star) / 4
    assert theory.critical_weight_var("erf", bias_var) == pytest.approx(expected, rel=1e-9)


def test_critical_weight_var_tanh_with_bias_is_critical_under_quadrature():
    s_w, s_b = theory.critical_weight_var("tanh", 0.1), 0.1
    act = activations.get("tanh")
    q, previous = 1.0, 0.0
    while abs(q - previous) > 1e-14:  # E8 iterated with SciPy's quadrature
        q, previous = s_w * quad_moments(act, q)[1] + s_b, q
    assert s_w * quad_moments(act, q)[2] == pytest.approx(1.0, rel=1e-8)


# --- E19-E22: stability of the fixed points --------------------------------------------------------


def quad_m2(act: activations.ActivationFunction, q: float) -> float:
    return quad_moments(act, q)[1]


def quad_lambda(name: str, rule: str, center: bool) -> activations.ActivationFunction:
    """The static normalized activation at q = 1 with lambda and mu from SciPy's quadrature."""
    act = activations.get(name)
    m1, m2, d2 = quad_moments(act, 1.0)
    rho = m2 - m1 * m1 if center else m2
    lam_sq = {"forward": 1 / rho, "backward": 1 / d2, "balanced": (1 / rho + 1 / d2) / 2}[rule]
    return activations.affine(act, math.sqrt(lam_sq), m1 if center else 0.0)


@pytest.mark.parametrize("q", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("name", ["tanh", "swish", "gelu", "sigmoid", "elu", "softplus"])
def test_q_map_slope_is_the_derivative_of_m2(name, q):
    """E19 against a central difference of SciPy-quadrature m2 (step 1e-4 q: error ~1e-8)."""
    act, weight_var, h = activations.get(name), 1.7, 1e-4 * q
    expected = weight_var * (quad_m2(act, q + h) - quad_m2(act, q - h)) / (2 * h)
    assert theory.q_map_slope(act, q, weight_var) == pytest.approx(expected, rel=1e-6)


def test_q_map_slope_closed_forms():
    q = np.array([0.01, 0.5, 3.0, 100.0])
    np.testing.assert_allclose(theory.q_map_slope("relu", q, 2.0), 1.0, rtol=1e-10)  # d(q/2)/dq * 2
    # d/dq (2/pi) arcsin(2q / (1 + 2q)) = (4/pi) / ((1 + 2q) sqrt(1 + 4q))
    erf_slope = 4 / np.pi / ((1 + 2 * q) * np.sqrt(1 + 4 * q))
    np.testing.assert_allclose(theory.q_map_slope("erf", q, 1.3), 1.3 * erf_slope, rtol=1e-9)


def test_backward_factor_and_depth_scale():
    q = np.array([0.2, 1.0, 7.0])
    np.testing.assert_allclose(theory.backward_factor("erf", q, 1.5), 1.5 * erf_d2(q), rtol=1e-10)
    np.testing.assert_allclose(theory.backward_factor("relu", q, 2.0), 1.0, rtol=1e-10)
    assert theory.depth_scale(math.exp(-0.1)) == pytest.approx(10.0, rel=1e-12)  # decays e-fold in 10
    assert theory.depth_scale(math.exp(0.25)) == pytest.approx(4.0, rel=1e-12)  # grows e-fold in 4
    assert theory.depth_scale(1.0) == math.inf


@pytest.mark.parametrize(
    ("name", "rule", "center"),
    [("swish", "balanced", False), ("swish", "backward", False), ("gelu", "balanced", False),
     ("swish", "forward", True), ("tanh", "balanced", False), ("elu", "backward", True)],
)  # fmt: skip
def test_fixed_points_of_normalized_forms_match_an_independent_root_search(name, rule, center):
    """E22 for static normalized forms: the roots of lambda^2 m2(q) - q, with lambda and m2 from
    SciPy's quadrature, found by the test's own scan of [0.05, 30], and their stability from a
    central difference of that m2 (E19)."""
    act = quad_lambda(name, rule, center)
    grid = np.geomspace(0.05, 30.0, 40)
    excess = np.array([quad_m2(act, q) - q for q in grid])
    roots = [
        brentq(lambda q: quad_m2(act, q) - q, grid[i], grid[i + 1], xtol=1e-13)
        for i in np.flatnonzero(np.sign(excess[:-1]) != np.sign(excess[1:]))
    ]
    found = [p for p in theory.fixed_points(act) if 0.05 < p.q < 30.0]
    assert len(found) == len(roots) >= 1
    for point, root in zip(found, roots, strict=True):
        slope = (quad_m2(act, root * 1.0001) - quad_m2(act, root * 0.9999)) / (2e-4 * root)
        assert point.q == pytest.approx(root, rel=1e-8)
        assert point.chi_q == pytest.approx(slope, rel=1e-5)
        assert point.stability == ("stable" if slope < 1 else "unstable")
        assert point.chi == pytest.approx(quad_moments(act, root)[2], rel=1e-8)
        assert point.depth_scale == pytest.approx(1 / abs(math.log(slope)), rel=1e-4)


def test_fixed_points_of_the_default_nswish_are_zero_stable_and_one_point_two_unstable():
    """The numbers of docs/THEORY.md: q* = 0 (slope lambda^2 phi'(0)^2 = lambda^2 / 4) and an
    unstable q* = 1.202 just above q0 = 1, above which q grows by lambda^2 / 2 per layer."""
    act = quad_lambda("swish", "balanced", False)
    lam_sq = act.params["scale"] ** 2
    zero, upper = theory.fixed_points(act)
    assert (zero.q, zero.stability) == (0.0, "stable")
    assert zero.chi_q == pytest.approx(lam_sq / 4, rel=1e-9)
    assert (round(upper.q, 4), upper.stability) == (1.2021, "unstable")
    assert theory.large_q_growth(act) == pytest.approx(lam_sq / 2, rel=1e-3)  # relu-like tail at 1e6


def test_fixed_points_degenerate_and_closed_form_cases():
    (every,) = theory.fixed_points("relu", 2.0)  # relu with weight_var 2: every q is fixed
    assert every.stability == "every q" and math.isnan(every.q) and every.chi_q == pytest.approx(1.0)
    assert every.depth_scale == math.inf
    (only,) = theory.fixed_points("relu", 1.5, 0.3)  # q = 0.75 q + 0.3: q* = 1.2, slope 0.75
    assert only.q == pytest.approx(1.2, rel=1e-12) and only.chi_q == pytest.approx(0.75, rel=1e-10)
    zero, upper = theory.fixed_points("erf", 2.5)  # erf: 0 unstable (slope 2.5 * 4/pi), one stable
    q = 1.0
    for _ in range(500):  # iterate Williams' closed form to the stable point
        q = 2.5 * erf_m2(q)
    assert zero.q == 0.0 and zero.chi_q == pytest.approx(2.5 * 4 / math.pi, rel=1e-9)
    assert zero.stability == "unstable"
    assert upper.q == pytest.approx(q, rel=1e-10) and upper.stability == "stable"
    assert [p.q for p in theory.fixed_points("tanh", 0.5)] == [0.0]  # only q* = 0 below 1 / phi'(0)^2
    (zero,) = theory.fixed_points("tanh")  # slope tanh'(0)^2 = 1 exactly: marginal, no depth scale
    assert (zero.chi_q, zero.stability, zero.depth_scale) == (1.0, "marginal", math.inf)
    slope = theory.fixed_points(activations.get("leaky_relu", slope=0.2), 1.5)[0].chi_q
    assert slope == pytest.approx(1.5 * (1 + 0.2**2) / 2, rel=1e-12)  # mean of the one-sided slopes


def test_stability_table_rows_and_format():
    rows = theory.stability_table(["swish", "tanh"], rules=("forward",), centers=(False,))
    swish, tanh = rows
    assert (swish["activation"], swish["rule"], swish["center"]) == ("swish", "forward", False)
    assert swish["reached"] == 1.0 and swish["reached_stability"] == "unstable"  # E8 stays at 1, unstably
    assert tanh["reached"] == pytest.approx(1.0) and tanh["reached_stability"] == "stable"
    assert swish["chi_q"] == pytest.approx(1.1726, abs=5e-5)  # the measured slope
    text = theory.format_stability_table(rows)
    # xi_q = 1 / |log chi_q| (E21): 1 / log 1.1726 = 6.3, 1 / log(1 / 0.703) = 2.8
    assert "1 (1.17, unstable, xi 6.3)" in text and "0 (0.703, stable, xi 2.8)" in text
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("activation")
    (row,) = theory.activation_stability([theory.normalized("gelu", "forward")])
    assert row["chi_q"] == pytest.approx(1.1441, abs=5e-5)


# --- the gains table ----------------------------------------------------------------------------------


def test_gains_table_rows_and_closed_form_values():
    rows = theory.gains_table()
    assert [row["activation"] for row in rows] == activations.names()
    relu = rows[activations.names().index("relu")]
    rho_c = 0.5 - 1 / (2 * math.pi)
    expected = {
        "m1": 1 / math.sqrt(2 * math.pi), "rho": 0.5, "rho_c": rho_c, "rho_prime": 0.5, "kappa": 1.0,
        "lambda_forward": math.sqrt(2), "lambda_backward": math.sqrt(2), "lambda_balanced": math.sqrt(2),
        "lambda_forward_c": 1 / math.sqrt(rho_c), "lambda_balanced_c": math.sqrt((1 / rho_c + 2) / 2),
        "gain_forward": math.sqrt(2), "gain_backward": math.sqrt(2),
    }  # fmt: skip
    assert set(relu) == {"activation", *expected}
    for key, value in expected.items():
        assert relu[key] == pytest.approx(value, rel=1e-10), key


def test_gains_table_at_q_two_matches_adaptive_quadrature():
    q = 2.0
    for row in theory.gains_table(["tanh", "swish", "sigmoid"], q=q):
        m1, m2, d2 = quad_moments(activations.get(row["activation"]), q)
        rho, rho_c = m2 / q, (m2 - m1 * m1) / q
        expected = {
            "m1": m1, "rho": rho, "rho_c": rho_c, "rho_prime": d2, "kappa": d2 / rho,
            "lambda_forward": rho**-0.5, "lambda_backward": d2**-0.5,
            "lambda_balanced": ((1 / rho + 1 / d2) / 2) ** 0.5, "lambda_forward_c": rho_c**-0.5,
            "lambda_balanced_c": ((1 / rho_c + 1 / d2) / 2) ** 0.5,
            "gain_forward": rho**-0.5, "gain_backward": d2**-0.5,
        }  # fmt: skip
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-8, abs=1e-12), (row["activation"], key)


def test_gains_table_labels_non_default_parameters_and_formats_aligned():
    rows = theory.gains_table(["tanh", activations.get("swish", beta=2.0)], q=2.0)
    assert [row["activation"] for row in rows] == ["tanh", "swish(beta=2.0)"]
    assert rows[0]["rho"] == pytest.approx(quad_moments(activations.get("tanh"), 2.0)[1] / 2.0, rel=1e-10)
    text = theory.format_gains_table(rows)
    lines = text.splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert lines[0].split()[:3] == ["activation", "m1", "rho"]
    assert f"{rows[1]['kappa']:.6f}" in lines[2]


def test_theory_never_imports_autograd():
    imported: set[str] = set()
    for module in pkgutil.iter_modules(theory.__path__, "tinynormact.theory."):
        tree = ast.parse(inspect.getsource(importlib.import_module(module.name)))
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    assert "tinynormact.theory.moments" in imported  # the walk saw the package's modules
    assert not {"tinynormact.engine.autograd", "tinynormact.engine.ops", "tinynormact.nn", "numpy"} & imported
    assert not any(name.startswith(("tinynormact.nn", "tinynormact.engine.autograd")) for name in imported)
