"""The activation zoo: phi against independent formulas, phi' against finite differences, the
registry's errors, numerical stability, dtypes, and the autograd op built from each pair."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special

import tinynormact as tn
from tinynormact import activations, backend

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554804  # Klambauer et al. 2017

# Every registered activation, plus non-default parameters, each with a reference phi written
# here from its textbook definition (naive formulas: fine for the moderate x used below).
REFERENCES = [
    ("identity", {}, lambda x: x),
    ("relu", {}, lambda x: x * (x > 0)),
    ("leaky_relu", {}, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu", {"slope": 0.2}, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("elu", {}, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    ("elu", {"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    ("selu", {}, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))),
    ("gelu", {}, lambda x: x * scipy.special.ndtr(x)),
    (
        "gelu",
        {"approximate": "tanh"},
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    ),
    ("swish", {}, lambda x: x / (1 + np.exp(-x))),
    ("swish", {"beta": 2.0}, lambda x: x / (1 + np.exp(-2 * x))),
    ("mish", {}, lambda x: x * np.tanh(np.log(1 + np.exp(x)))),
    ("softplus", {}, lambda x: np.log(1 + np.exp(x))),
    ("tanh", {}, lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))),
    ("sigmoid", {}, lambda x: 1 / (1 + np.exp(-x))),
    ("softsign", {}, lambda x: x / (1 + np.abs(x))),
    ("erf", {}, lambda x: np.vectorize(math.erf)(x)),
]
VARIANTS = [pytest.param(name, params, id=f"{name}{params or ''}") for name, params, _ in REFERENCES]
ALL_NAMES = {
    "identity", "relu", "leaky_relu", "elu", "selu", "gelu", "swish",
    "mish", "softplus", "tanh", "sigmoid", "softsign", "erf",
}  # fmt: skip


def _points_away_from_kinks(act: activations.ActivationFunction, margin: float = 1e-3) -> np.ndarray:
    x = np.linspace(-6.0, 6.0, 241)
    for kink in act.kinks:
        x = x[np.abs(x - kink) > margin]
    return x


def test_names_are_the_contract_names():
    assert set(activations.names()) == ALL_NAMES
    assert {name for name, _, _ in REFERENCES} == ALL_NAMES  # every activation has a reference


@pytest.mark.parametrize(("name", "params", "reference"), REFERENCES, ids=[v.id for v in VARIANTS])
def test_phi_matches_its_textbook_formula(name, params, reference):
    act = activations.get(name, **params)
    x = np.linspace(-6.0, 6.0, 241)
    got = backend.to_numpy(act.f(backend.xp().asarray(x)))
    np.testing.assert_allclose(got, reference(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), VARIANTS)
def test_derivative_matches_central_differences(name, params):
    act = activations.get(name, **params)
    x = _points_away_from_kinks(act)
    h = 1e-5  # truncation error h^2 |phi'''| / 6 ~ 1e-10, rounding 1e-16 / h ~ 1e-11
    xp = backend.xp()
    fd = (backend.to_numpy(act.f(xp.asarray(x + h))) - backend.to_numpy(act.f(xp.asarray(x - h)))) / (2 * h)
    np.testing.assert_allclose(backend.to_numpy(act.df(xp.asarray(x))), fd, rtol=1e-8, atol=1e-8)


def test_derivative_conventions_at_the_kink():
    zero = backend.xp().zeros(1)
    assert float(activations.get("relu").df(zero)[0]) == 0.0
    assert float(activations.get("leaky_relu", slope=0.2).df(zero)[0]) == 0.2
    assert float(activations.get("elu", alpha=0.5).df(zero)[0]) == 0.5


def test_kinks_are_listed_exactly_for_the_non_smooth_activations():
    kinked = {name for name in activations.names() if activations.get(name).kinks}
    assert kinked == {"relu", "leaky_relu", "elu", "selu", "softsign"}
    assert all(activations.get(name).kinks == (0.0,) for name in kinked)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "params"), VARIANTS)
def test_stable_and_dtype_preserving_for_large_inputs(name, params, dtype):
    act = activations.get(name, **params)
    x = backend.xp().asarray([-1e4, -1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3, 1e4], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, dy = act.f(x), act.df(x)
    assert y.dtype == x.dtype and dy.dtype == x.dtype
    y, dy = backend.to_numpy(y).astype(np.float64), backend.to_numpy(dy).astype(np.float64)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dy))


def test_saturating_values_at_large_inputs():
    x = backend.xp().asarray([-1e4, 1e4], dtype="float32")
    # name: (phi(-1e4), phi(1e4)), (phi'(-1e4), phi'(1e4))
    expected = {
        "sigmoid": ([0, 1], [0, 0]), "softplus": ([0, 1e4], [0, 1]), "swish": ([0, 1e4], [0, 1]),
        "mish": ([0, 1e4], [0, 1]), "gelu": ([0, 1e4], [0, 1]), "elu": ([-1, 1e4], [0, 1]),
        "selu": ([-SELU_SCALE * SELU_ALPHA, SELU_SCALE * 1e4], [0, SELU_SCALE]),
        "tanh": ([-1, 1], [0, 0]), "erf": ([-1, 1], [0, 0]),
        "softsign": ([-1e4 / (1 + 1e4), 1e4 / (1 + 1e4)], [1e-8, 1e-8]),
    }  # fmt: skip
    for name, (values, slopes) in expected.items():
        act = activations.get(name)
        np.testing.assert_allclose(backend.to_numpy(act.f(x)), values, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(backend.to_numpy(act.df(x)), slopes, rtol=1e-3, atol=1e-9, err_msg=name)


def test_get_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'swishh'") as info:
        activations.get("swishh")
    assert all(name in str(info.value) for name in ALL_NAMES | {"silu"})


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("elu", {"beta": 1.0}, ["'beta'", "alpha"]),
        ("relu", {"slope": 0.1}, ["'slope'", "none"]),
        ("elu", {"alpha": -1.0}, ["alpha=-1.0", ">= 0"]),
        ("selu", {"scale": 0.0}, ["scale=0.0", "> 0"]),
        ("swish", {"beta": "1"}, ["beta='1'", "real number"]),
        ("leaky_relu", {"slope": float("nan")}, ["slope=nan", "finite"]),
        ("leaky_relu", {"slope": True}, ["slope=True", "real number"]),
        ("gelu", {"approximate": "fast"}, ["approximate='fast'", "'none', 'tanh'"]),
    ],
)
def test_get_bad_parameter_names_the_parameter_value_and_what_is_valid(name, params, words):
    with pytest.raises(ValueError) as info:
        activations.get(name, **params)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_get_alias_defaults_and_passthrough():
    silu = activations.get("silu")
    assert silu.name == "swish" and silu.params == {"beta": 1.0}
    assert activations.get("selu").params == {"alpha": SELU_ALPHA, "scale": SELU_SCALE}
    assert activations.get("leaky_relu").params == {"slope": 0.01}
    assert activations.get("gelu").params == {"approximate": "none"}
    assert activations.get(silu) is silu
    with pytest.raises(ValueError, match="pass a name"):
        activations.get(silu, beta=2.0)


def test_repr_is_readable():
    assert repr(activations.get("swish", beta=1.0)) == "swish(beta=1.0)"
    assert repr(activations.get("relu")) == "relu"
    assert repr(activations.get("gelu", approximate="tanh")) == "gelu(approximate='tanh')"


def test_call_is_phi():
    act = activations.get("tanh")
    x = backend.xp().asarray([-0.5, 0.25])
    np.testing.assert_array_equal(backend.to_numpy(act(x)), backend.to_numpy(act.f(x)))


def test_affine_scales_and_shifts_phi_and_scales_phi_prime():
    base = activations.get("relu")
    act = activations.affine(base, 2.5, 0.3)
    x = backend.xp().asarray([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(backend.to_numpy(act.f(x)), [2.5 * -0.3, 2.5 * 0.2, 2.5 * 1.7])
    np.testing.assert_allclose(backend.to_numpy(act.df(x)), [0.0, 2.5, 2.5])
    assert act.name == "2.5*(relu-0.3)" and act.kinks == base.kinks
    assert act.params == {"scale": 2.5, "shift": 0.3}
    assert activations.affine("tanh", 2.0).name == "2*tanh"
    assert repr(activations.affine("swish", 2.0, -0.1)) == "2*(swish(beta=1.0)+0.1)"
    with pytest.raises(ValueError, match="finite"):
        activations.affine("tanh", float("inf"))


def test_aliases_are_known_by_name():
    assert activations.is_alias("silu") and not activations.is_alias("swish")
    assert not activations.is_alias("nswish")


@pytest.mark.parametrize(("name", "params"), VARIANTS)
def test_autograd_op_built_from_the_pair_passes_gradcheck(name, params):
    from tinynormact import ops

    act = activations.get(name, **params)
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.1, 3.0, size=(3, 4))  # off the kinks
    inputs = tn.Tensor(x, requires_grad=True)
    assert tn.gradcheck(lambda t: ops.activation(t, act), inputs)


WITH_DF_FROM_OUTPUT = [
    pytest.param(name, params, id=f"{name}{params or ''}")
    for name, params, _ in REFERENCES
    if activations.get(name, **params).df_from_output is not None
]


@pytest.mark.parametrize(("name", "params"), WITH_DF_FROM_OUTPUT)
def test_derivative_from_output_agrees_with_derivative_from_input(name, params):
    """Where an activation offers phi' in terms of y = phi(x), it must equal phi'(x) everywhere,
    kinks included (the conventions at kinks must agree too), also through affine()."""
    act = activations.get(name, **params)
    x = np.concatenate([np.linspace(-6.0, 6.0, 241), [0.0]])
    np.testing.assert_allclose(act.df_from_output(act.f(x)), act.df(x), rtol=1e-9, atol=1e-12)
    scaled = activations.affine(act, 1.7, 0.3)
    np.testing.assert_allclose(scaled.df_from_output(scaled.f(x)), scaled.df(x), rtol=1e-9, atol=1e-12)


def test_activations_that_must_offer_a_derivative_from_output():
    """tanh and sigmoid backward would otherwise recompute the forward (benchmarks/bench_mlp_step)."""
    for name in ("tanh", "sigmoid", "relu", "elu", "selu", "softplus", "identity"):
        assert activations.get(name).df_from_output is not None, name
