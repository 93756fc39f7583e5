"""The MLPs with batch norm before every activation ("mlp-bn", "resmlp-bn"; issue 21 item 3: the
adaptive form after batch norm). Oracle: the forward written out in NumPy from the weights."""

from __future__ import annotations

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host
from tinynormact import nn
from tinynormact.train import TrainConfig, train
from tinynormact.train.adaptive_health import AdaptiveHealth


def test_the_order_is_linear_batch_norm_activation_and_the_last_layer_is_linear() -> None:
    model = nn.MLP([5, 7, 6, 3], "tanh", batch_norm=True, rng=0)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "BatchNorm1d", "Activation", "Linear", "BatchNorm1d", "Activation", "Linear"]
    assert [model[1].num_features, model[4].num_features] == [7, 6]


def test_the_forward_is_batch_norm_then_the_activation() -> None:
    tn.set_default_dtype("float64")
    model = nn.MLP([5, 7, 6, 3], "nswish", {"mode": "adaptive", "center": False}, batch_norm=True, rng=0)
    model[1].weight.data[...] = np.linspace(0.5, 2.0, 7)  # BN's scale and shift away from 1 and 0
    model[4].bias.data[...] = np.linspace(-0.3, 0.3, 6)
    x = np.random.default_rng(1).standard_normal((11, 5)) * 3.0 + 1.0
    h = x
    for linear, norm in ((model[0], model[1]), (model[3], model[4])):
        h = h @ host(linear.weight).T + host(linear.bias)
        h = (h - h.mean(0)) / np.sqrt(h.var(0) + norm.eps) * host(norm.weight) + host(norm.bias)
        phi = h / (1.0 + np.exp(-h))
        # the output reading (E25): lambda_b^2 mean(phi^2) = lambda_s^2 m2(1), over the whole batch
        m2 = tn.theory.gaussian_moments(tn.activations.get("swish"), 1.0).m2
        lam_s = tn.theory.normalization("swish", "balanced", 1.0).lambda_
        h = phi * lam_s * np.sqrt(m2 / (phi**2).mean())
    expected = h @ host(model[6].weight).T + host(model[6].bias)
    np.testing.assert_allclose(host(model(tn.Tensor(x))), expected, rtol=1e-10)


def test_a_residual_mlp_gets_one_batch_norm_before_each_branch_activation() -> None:
    model = nn.ResidualMLP(4, 8, 3, 2, "relu", branch_depth=2, batch_norm=True, rng=0)
    norms = [m for _, m in model.named_modules() if isinstance(m, nn.BatchNorm1d)]
    acts = [m for _, m in model.named_modules() if type(m) is nn.Activation]
    assert len(norms) == len(acts) == 3 * 2
    for block in list(model)[1:-1]:
        kinds = [type(layer).__name__ for layer in block.branch]
        assert kinds == ["Linear", "BatchNorm1d", "Activation"] * 2 + ["Linear"]


def test_batch_norm_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="batch_norm must be true or false, got 'yes'"):
        nn.MLP([3, 4, 2], batch_norm="yes")


def first_step_q(architecture: str, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """q_b = mean(h^2) of each adaptive layer at the first step of a short run (which must train)."""
    watched: list[AdaptiveHealth] = []
    original = AdaptiveHealth.watch

    def every_step(model: nn.Module, steps_per_epoch: int, every: int = 10) -> AdaptiveHealth:
        watched.append(original(model, steps_per_epoch, every=1))
        return watched[-1]

    monkeypatch.setattr(AdaptiveHealth, "watch", every_step)
    config = TrainConfig(
        dataset="spirals", dataset_options={"n_train": 120, "n_test": 60}, architecture=architecture,
        depth=3, width=16, activation="ntanh", activation_options={"mode": "adaptive"}, epochs=2,
        batch_size=40, seed=0,
    )  # fmt: skip
    result = train(config, progress=False)
    assert result.status == "completed" and len(result.history["train_loss"]) == 3
    return watched[0].record()["q"][0]


@pytest.mark.parametrize("architecture", ["mlp", "resmlp"])
def test_the_batch_norm_architectures_hold_q_at_1_for_the_adaptive_layers(architecture, monkeypatch) -> None:
    """After BN at its initial scale, unit c has mean 0 and variance v_c / (v_c + 1e-5) over the
    batch, so q_b = mean(h^2) is within 1% of 1 wherever the units' input variances v_c exceed
    1e-3 (the smallest here, a residual branch's first BN, is about 4e-3). Control: without BN
    the same layers' q is more than 5% away from 1."""
    with_bn = first_step_q(f"{architecture}-bn", monkeypatch)
    assert with_bn.shape == (3,) and np.abs(with_bn - 1.0).max() < 1e-2
    assert np.abs(first_step_q(architecture, monkeypatch) - 1.0).min() > 0.05
