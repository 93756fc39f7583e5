"""One lambda per unit (``units=C``): the oracle is the per-layer form applied to one unit's
slice at a time, a brute-force loop over the units, in training, in evaluation, and in backward.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host
from tests.test_nn import gradcheck_model
from tinynormact import nn
from tinynormact.train.adaptive_health import AdaptiveHealth

SHAPES = [(37, 5), (7, 3, 11), (4, 3, 5, 6)]  # an MLP's features, 1-D and 2-D channels
READINGS = [
    {"estimate": "batch", "rule": "forward"},
    {"estimate": "batch", "rule": "balanced", "center": True},
    {"estimate": "gaussian", "rule": "backward"},
    {"estimate": "output", "rule": "balanced"},
    {"estimate": "output", "rule": "forward", "center": True, "train_statistics": "running"},
    {"estimate": "batch", "rule": "balanced", "lambda_bound": 1.5},
]


def inputs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Units of very different scales and offsets, so that their lambdas differ."""
    rng = np.random.default_rng(seed)
    unit = (1, shape[1]) + (1,) * (len(shape) - 2)
    scales = np.geomspace(0.2, 5.0, shape[1]).reshape(unit)
    return scales * rng.standard_normal(shape) + np.linspace(-0.5, 0.5, shape[1]).reshape(unit)


def per_unit_and_one_layer_per_unit(options: dict, shape: tuple[int, ...]):
    base = {"mode": "adaptive", "momentum": 0.7, **options}
    per_unit = nn.NormalizedActivation("swish", units=shape[1], **base)
    singles = [nn.NormalizedActivation("swish", **base) for _ in range(shape[1])]
    return per_unit, singles


def by_unit(singles: list, h: np.ndarray) -> np.ndarray:
    """The oracle: unit c through its own per-layer form, on the slice h[:, c]."""
    slices = [host(layer(tn.Tensor(h[:, c : c + 1]))) for c, layer in enumerate(singles)]
    return np.concatenate(slices, axis=1)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("options", READINGS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_each_unit_is_the_per_layer_form_of_its_own_slice(options: dict, shape: tuple[int, ...]) -> None:
    tn.set_default_dtype("float64")
    per_unit, singles = per_unit_and_one_layer_per_unit(options, shape)
    for step in range(3):  # training: batch gains, then the running estimates move
        h = inputs(shape, seed=step)
        np.testing.assert_allclose(host(per_unit(tn.Tensor(h))), by_unit(singles, h), rtol=1e-12, atol=1e-14)
    expected_rho = [float(host(layer.running_rho)) for layer in singles]
    np.testing.assert_allclose(host(per_unit.running_rho), expected_rho, rtol=1e-12)
    per_unit.eval()
    for layer in singles:
        layer.eval()
    h = inputs(shape, seed=9)
    np.testing.assert_allclose(host(per_unit(tn.Tensor(h))), by_unit(singles, h), rtol=1e-12, atol=1e-14)
    assert per_unit.lambda_ == pytest.approx(np.mean([layer.lambda_ for layer in singles]), rel=1e-12)


def test_the_units_lambdas_differ_where_their_inputs_do() -> None:
    """Guards the oracle test: with equal lambdas the loop and the layer would agree trivially."""
    tn.set_default_dtype("float64")
    layer = nn.NormalizedActivation("tanh", mode="adaptive", estimate="batch", units=5)
    layer(tn.Tensor(inputs((37, 5), seed=0)))
    lam = host(layer.last_lambda).ravel()
    assert lam.shape == (5,) and lam.max() / lam.min() > 1.5


@pytest.mark.parametrize("estimate", ["batch", "output"])
def test_gradients_through_per_unit_lambdas(estimate: str) -> None:
    tn.set_default_dtype("float64")
    options = {"mode": "adaptive", "estimate": estimate, "differentiate_lambda": True, "units": 4}
    model = nn.MLP([3, 4, 2], "nswish", options, rng=0)
    gradcheck_model(model, tn.Tensor(inputs((6, 3), seed=1)))


def test_per_unit_running_estimates_are_saved_and_restored() -> None:
    tn.set_default_dtype("float64")
    options = {"mode": "adaptive", "units": 6, "center": True}
    trained, fresh = (nn.MLP([3, 6, 6, 2], "ngelu", options, rng=0) for _ in range(2))
    trained(tn.Tensor(inputs((9, 3), seed=2)))
    state = trained.state_dict()
    assert np.shape(state["1.running_rho"]) == (6,)
    fresh.load_state_dict(state)
    trained.eval(), fresh.eval()
    h = tn.Tensor(inputs((5, 3), seed=3))
    np.testing.assert_array_equal(host(fresh(h)), host(trained(h)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "adaptive", "units": -1}, "units must be an integer >= 0, got -1"),
        ({"mode": "adaptive", "units": True}, "units must be an integer >= 0"),
        ({"mode": "adaptive", "units": 2.0}, "got 2.0"),
        ({"units": 3}, "units=3 needs mode='adaptive'"),
    ],
)
def test_bad_units_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nn.NormalizedActivation("swish", **options)


@pytest.mark.parametrize("training", [True, False])
def test_an_input_with_other_units_is_named(training: bool) -> None:
    layer = nn.NormalizedActivation("swish", mode="adaptive", units=4)
    layer.train(training)
    with pytest.raises(ValueError, match=r"units=4, but the input of shape \(8, 5\) has 5 units on axis 1"):
        layer(tn.Tensor(np.ones((8, 5))))


def test_health_flags_a_single_unit_at_the_ceiling_and_another_at_the_floor() -> None:
    """relu, bound 1.2 around the static lambda sqrt(2): unit 3's inputs all positive (rho_b =
    rho'_b = 1, lambda 1, below the floor sqrt(2)/1.2), unit 5's all negative (dead: both gains
    floored, lambda far above the ceiling 1.2 sqrt(2)); the six Gaussian units stay inside."""
    tn.set_default_dtype("float64")
    layer = nn.NormalizedActivation(
        "relu", mode="adaptive", lambda_bound=1.2, units=8, estimate="batch", center=False
    )
    model = nn.Sequential(layer)
    health = AdaptiveHealth.watch(model, steps_per_epoch=1, every=1)
    h = np.random.default_rng(0).standard_normal((256, 8))
    h[:, 3], h[:, 5] = np.abs(h[:, 3]) + 1.0, -np.abs(h[:, 5]) - 1.0
    model(tn.Tensor(h, requires_grad=True))
    lam, static = host(layer.last_lambda).ravel(), layer.static_lambda
    assert static == pytest.approx(np.sqrt(2.0), rel=1e-6)
    assert lam[3] == pytest.approx(static / 1.2) and lam[5] == pytest.approx(static * 1.2)
    inside = np.delete(lam, [3, 5])
    assert ((inside > static / 1.2 * 1.001) & (inside < static * 1.2 * 0.999)).all()
    what = sorted(flag["what"] for flag in health.flags())
    assert what == [
        f"lambda at its ceiling {static * 1.2:.4g} (lambda {static * 1.2:.4g})",
        f"lambda at its floor {static / 1.2:.4g} (lambda {static / 1.2:.4g})",
    ]
