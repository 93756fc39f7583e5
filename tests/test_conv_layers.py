"""Conv, batch norm and pooling layers, the conv residual block and the ResNet builders."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host, leaf
from tinynormact import nn, theory


@pytest.mark.parametrize(
    "layer, fan_in",
    [(lambda: nn.Conv1d(6, 20, 5, rng=0), 30), (lambda: nn.Conv2d(5, 40, (3, 2), rng=0), 30)],
)
def test_conv_weights_have_variance_one_over_fan_in(layer, fan_in: int) -> None:
    """fan_in = in_channels * prod(kernel). With N = out * fan_in = 600 or 1200 normal draws, the
    sample variance has relative SE sqrt(2 / N) <= 0.058; 5 SE = 0.29 rejects prediction
    1 / (in_channels) (off by the kernel factor 5 or 6), not a 10% error, so a second check uses
    many layers: 40 layers give relative SE 0.009, 5 SE = 0.046 < 10%."""
    conv = layer()
    assert conv.fan_in == fan_in and conv.weight.shape[1] * math.prod(conv.kernel_size) == fan_in
    variances = [
        float(host(type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, rng=s).weight).var())
        for s in range(40)
    ]
    measured = np.mean(variances)
    se = np.std(variances) / math.sqrt(len(variances))
    assert abs(measured - 1 / fan_in) <= 5 * se
    assert abs(measured - 1.1 / fan_in) > 5 * se  # a 10% error is rejected


def test_kaiming_fan_out_counts_the_kernel() -> None:
    conv = nn.Conv2d(
        4, 8, 3, init=lambda w, rng: nn.init.kaiming_normal(w, "relu", "fan_out", rng=rng), rng=0
    )
    assert nn.init._fans(conv.weight) == (36, 72)


def test_orthogonal_conv_weight_has_orthonormal_rows_as_an_im2col_matrix() -> None:
    conv = nn.Conv1d(4, 6, 3, init="orthogonal", rng=0)
    matrix = host(conv.weight).reshape(6, 12)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(6), atol=1e-5)


def test_conv_layer_equals_the_op_and_repr_names_its_options() -> None:
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0, dtype="float64")
    x = leaf((2, 2, 5, 5))
    np.testing.assert_array_equal(host(conv(x)), host(tn.convolution.conv(x, conv.weight, conv.bias, 2, 1)))
    assert repr(conv) == "Conv2d(2, 3, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=True)"
    assert tn.gradcheck(lambda t: conv(t), x, mode="directions")


BAD_INPUTS = [
    (
        lambda: nn.Conv2d(3, 4, 3),
        (2, 5, 8, 8),
        r"Conv2d\(3, 4.*\(2, 5, 8, 8\) has 5 channels but the weight of shape \(4, 3, 3, 3\)",
    ),
    (
        lambda: nn.Conv2d(3, 4, 3),
        (2, 3, 8),
        r"Conv2d\(3, 4.*expected an input of shape \(batch, channels, height, width\), "
        r"got shape \(2, 3, 8\).*\(4, 3, 3, 3\)",
    ),
    (
        lambda: nn.Conv1d(1, 4, 7, padding=1),
        (2, 1, 4),
        r"Conv1d\(1, 4.*kernel \(7,\) is larger than the input's padded spatial shape \(6,\) "
        r"\(input shape \(2, 1, 4\)",
    ),
    (
        lambda: nn.MaxPool2d(3),
        (1, 2, 2, 5),
        r"MaxPool2d\(kernel_size=\(3, 3\).*kernel \(3, 3\) is larger than the input's padded spatial "
        r"shape \(2, 5\) \(input shape \(1, 2, 2, 5\)",
    ),
    (
        lambda: nn.AvgPool1d(2),
        (4, 6),
        r"AvgPool1d\(kernel_size=\(2,\).*\(batch, channels, length\), got shape \(4, 6\)",
    ),
    (lambda: nn.MaxPool1d(2, padding=2), (1, 1, 6), r"padding \(2,\) must be at most half the kernel \(2,\)"),
    (
        lambda: nn.BatchNorm2d(3),
        (2, 4, 5, 5),
        r"BatchNorm2d\(3.*expected an input of shape \(batch, 3, height, width\), got shape \(2, 4, 5, 5\)",
    ),
    (
        lambda: nn.BatchNorm1d(3),
        (2, 3, 4, 4),
        r"BatchNorm1d\(3.*\(batch, 3\) or \(batch, 3, length\), got shape \(2, 3, 4, 4\)",
    ),
    (
        lambda: nn.Unflatten(1, 40),
        (2, 39),
        r"Unflatten\(1, 40\): expected an input of shape \(batch, 40\), got shape \(2, 39\)",
    ),
]


@pytest.mark.parametrize("make, shape, message", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_inputs_raise_one_message_naming_the_layer_and_both_shapes(make, shape, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()(tn.Tensor(np.zeros(shape)))


@pytest.mark.parametrize(
    "bad", [dict(kernel_size=0), dict(stride=(1, 1, 1)), dict(padding=-1), dict(in_channels=2.5)]
)
def test_bad_conv_options_are_rejected_by_name(bad: dict) -> None:
    options = dict(in_channels=2, out_channels=3, kernel_size=3) | bad
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"Conv2d: {name} must be an integer"):
        nn.Conv2d(**options)


@pytest.mark.parametrize(
    "layer, shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (5, 3, 4)), (nn.BatchNorm2d, (4, 3, 3, 5))]
)
def test_batch_norm_layer_running_statistics_modes_and_state_dict(layer, shape) -> None:
    bn = layer(3, momentum=0.25, dtype="float64")
    rng = np.random.default_rng(0)
    batches = [2.0 + 3.0 * rng.standard_normal(shape) for _ in range(3)]
    running_mean, running_var = np.zeros(3), np.ones(3)
    axes = tuple(a for a in range(len(shape)) if a != 1)
    for batch in batches:
        out = bn(tn.Tensor(batch))
        np.testing.assert_allclose(host(out).mean(axis=axes), 0.0, atol=1e-12)
        running_mean = 0.75 * running_mean + 0.25 * batch.mean(axis=axes)
        running_var = 0.75 * running_var + 0.25 * batch.var(axis=axes, ddof=1)
    np.testing.assert_allclose(host(bn.running_mean), running_mean, rtol=1e-12)
    np.testing.assert_allclose(host(bn.running_var), running_var, rtol=1e-12)
    bn.eval()
    x = batches[0]
    expected = (x - running_mean.reshape((1, 3) + (1,) * (len(shape) - 2))) / np.sqrt(
        running_var.reshape((1, 3) + (1,) * (len(shape) - 2)) + 1e-5
    )
    np.testing.assert_allclose(host(bn(tn.Tensor(x))), expected, rtol=1e-10)
    np.testing.assert_allclose(host(bn.running_mean), running_mean, rtol=1e-12)  # eval updates nothing
    copy = layer(3, dtype="float64")
    copy.load_state_dict(bn.state_dict())
    copy.eval()
    np.testing.assert_array_equal(host(copy(tn.Tensor(x))), host(bn(tn.Tensor(x))))
    assert sorted(bn.state_dict()) == ["bias", "running_mean", "running_var", "weight"]


def test_batch_norm_layer_needs_more_than_one_value_per_channel_in_training() -> None:
    with pytest.raises(ValueError, match=r"more than one value per channel, got shape \(1, 3\)"):
        nn.BatchNorm1d(3)(tn.Tensor(np.zeros((1, 3))))


def test_pooling_layers_and_shape_layers() -> None:
    x = leaf((2, 3, 6, 4))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 3, 2)
    assert nn.AvgPool2d((3, 2), stride=(1, 2))(x).shape == (2, 3, 4, 2)
    assert nn.MaxPool1d(3, stride=2, padding=1)(leaf((2, 3, 7))).shape == (2, 3, 4)
    assert nn.GlobalAvgPool()(x).shape == (2, 3)
    assert nn.Flatten()(x).shape == (2, 72)
    assert nn.Unflatten(1, 40)(leaf((5, 40))).shape == (5, 1, 40)


NORMALIZED = [
    dict(mode="static", rule="forward"),
    dict(mode="static", rule="balanced", center=True),
    dict(mode="adaptive", estimate="batch", rule="backward", center=False),
    dict(mode="adaptive", estimate="batch", rule="balanced", center=True),
    dict(mode="adaptive", estimate="batch", rule="forward", differentiate_lambda=True, center=False),
]


@pytest.mark.parametrize("options", NORMALIZED, ids=str)
def test_adaptive_lambda_is_one_scalar_over_every_element_of_a_feature_map(options: dict) -> None:
    """The batch lambda of E16 on a (batch, channels, h, w) map equals the rule applied to the
    gains computed here over all elements at once. Where lambda is part of the graph (static, or
    differentiate_lambda) backward matches finite differences."""
    act = nn.activation("nswish", **options)
    h = leaf((3, 2, 4, 5), seed=1)
    y = act(h)
    swish = tn.activations.get("swish")
    phi, dphi = swish.f(host(h)), swish.df(host(h))
    if options["mode"] == "adaptive":
        spread = phi.var() if options.get("center") else (phi**2).mean()
        lam = theory.lambda_from_gains(options["rule"], spread / (host(h) ** 2).mean(), (dphi**2).mean())
        mu = phi.mean() if options.get("center") else 0.0
    else:
        lam, mu = theory.normalization(swish, options["rule"], 1.0, options.get("center", False))
    np.testing.assert_allclose(host(y), lam * (phi - mu), rtol=1e-10)
    assert np.ndim(host(act.last_lambda)) == 0
    if options["mode"] == "static" or options.get("differentiate_lambda"):
        assert tn.gradcheck(lambda t: act(t), h, mode="directions")


def test_conv_residual_block_gradcheck_with_batch_norm_and_projection() -> None:
    """Every input and parameter of a strided block with BN, a projection and an adaptive
    activation whose lambda is differentiated."""
    options = {"mode": "adaptive", "differentiate_lambda": True}
    parts = nn.resnet._Parts(2, "nswish", options, True, "lecun_normal", "float64", 0)
    block = nn.resnet.basic_block(parts, 2, 3, 2, 3, post=True, alpha=0.5)
    assert block.shortcut is not None
    x = leaf((3, 2, 5, 5), seed=2)
    assert block(x).shape == (3, 3, 3, 3)
    assert tn.gradcheck(lambda t: block(t), x, mode="directions")
    for name, param in block.named_parameters():
        owner_name, _, attribute = name.rpartition(".")
        owner = dict(block.named_modules())[owner_name]
        assert tn.gradcheck(
            lambda w, o=owner, a=attribute: _with_parameter(o, a, w, block, x), param, mode="directions"
        )


def _with_parameter(
    owner: nn.Module, attribute: str, value: tn.Tensor, block: nn.Module, x: tn.Tensor
) -> tn.Tensor:
    """The block's output with the parameter ``owner.attribute`` replaced by the tensor ``value``
    (bypassing the module's registry, restored afterwards)."""
    saved = getattr(owner, attribute)
    object.__setattr__(owner, attribute, value)
    try:
        return block(x)
    finally:
        object.__setattr__(owner, attribute, saved)


def test_identity_shortcut_block_adds_its_input() -> None:
    parts = nn.resnet._Parts(1, "relu", None, False, "lecun_normal", "float64", 0)
    block = nn.resnet.basic_block(parts, 4, 4, 1, 3, post=False, alpha=0.3)
    assert block.shortcut is None
    x = leaf((2, 4, 9), seed=3)
    np.testing.assert_allclose(host(block(x)), host(x) + 0.3 * host(block.branch(x)), rtol=1e-12)


@pytest.mark.parametrize(
    "build, params",
    [(nn.resnet20, 269_722 + 2_752), (nn.resnet32, 464_154 + 2_752), (nn.resnet56, 853_018 + 2_752)],
)
def test_cifar_resnets_have_the_published_parameter_counts(build, params: int) -> None:
    """He et al. (2016), Table 6: 0.27 M, 0.46 M, 0.85 M parameters for ResNet-20, 32, 56. The
    exact counts of their zero-padding shortcuts (option A) are 269,722, 464,154 and 853,018;
    our two 1x1 projections with BN (option B) add 16*32 + 2*32 + 32*64 + 2*64 = 2,752."""
    model = build(rng=0)
    assert sum(p.size for p in model.parameters()) == params
    assert (
        len([m for m in model.modules() if isinstance(m, nn.Conv2d)])
        == {272_474: 21, 466_906: 33, 855_770: 57}[params]
    )  # 6n + 1 + 2


def test_resnet_builders_give_logits_of_the_right_shape() -> None:
    x = tn.Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), dtype="float32")
    assert nn.resnet20(num_classes=7, rng=0)(x).shape == (2, 7)
    small50 = nn.resnet50(num_classes=5, width=4, rng=0)
    assert small50(x).shape == (2, 5)
    assert len([m for m in small50.modules() if isinstance(m, nn.ConvResidualBlock)]) == 16
    assert nn.resnet1d(rng=0, activation="nswish", activation_options={"mode": "adaptive"})(
        leaf((3, 40))
    ).shape == (3, 10)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        nn.resnet_cifar(21)


def test_resnet50_has_about_23_7_million_parameters_for_100_classes() -> None:
    """torchvision's ResNet-50 has 25,557,032 parameters for 1000 classes; 100 classes drop
    900 * 2049 of the final Linear, and the 3x3 stem (instead of 7x7) drops 64 * 3 * 40."""
    model = nn.resnet50(num_classes=100, rng=0)
    assert sum(p.size for p in model.parameters()) == 25_557_032 - 900 * 2049 - 64 * 3 * 40


def test_kaiming_resnet_takes_each_conv_gain_from_the_activation_before_it() -> None:
    """The stem reads the data (gain 1: Var = 1 / 27); the second conv of a block reads relu
    (gain^2 = 2: Var = 2 / 144). Sample variances of 432 and 2304 normal weights have relative
    SE sqrt(2 / N) = 6.8% and 2.9%; 5 SE separates them from the other gain (a factor of 2)."""
    model = nn.resnet20(rng=0)  # kaiming_normal, He et al.'s initialization
    stem, second = model[0].weight, model[3].branch[3].weight
    assert isinstance(model[3].branch[3], nn.Conv2d)
    for weight, expected, wrong in ((stem, 1 / 27, 2 / 27), (second, 2 / 144, 1 / 144)):
        measured = float(host(weight).var())
        tolerance = 5 * math.sqrt(2 / weight.size) * expected
        assert abs(measured - expected) <= tolerance < abs(measured - wrong)
