"""nn: Module mechanics, hooks, state_dict, layers, builders, initializers, whole-network gradcheck."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host
from tinynormact import nn, theory


def inputs(shape: tuple[int, ...], seed: int = 0) -> tn.Tensor:
    return tn.Tensor(np.random.default_rng(seed).standard_normal(shape))


# ----- Module mechanics ----------------------------------------------------------------------


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factor = nn.Parameter(2.0)
        self.register_buffer("calls", tn.Tensor(0.0))

    def forward(self, x: tn.Tensor) -> tn.Tensor:
        return x * self.factor


def test_parameters_buffers_and_children_are_registered_by_name() -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=0), Scale(), nn.Activation("tanh"))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.factor"]
    assert [name for name, _ in model.named_buffers()] == ["1.calls"]
    assert len(list(model.children())) == 3
    assert [name for name, _ in model.named_modules()] == ["", "0", "1", "2"]
    model[1].factor = tn.Tensor(1.0)  # a plain tensor replaces the parameter: no longer trained
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_shared_parameters_are_listed_once() -> None:
    layer = nn.Linear(2, 2, rng=0)
    model = nn.Sequential(layer, layer)
    assert len(list(model.parameters())) == 2


def test_train_eval_zero_grad_and_to_keep_references() -> None:
    model = nn.MLP([3, 5, 2], "nswish", {"mode": "adaptive"}, rng=1)
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    model(inputs((4, 3))).sum().backward()
    weight = model[0].weight
    assert weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.to(tn.get_device()) is model and model[0].weight is weight


def test_module_without_super_init_gives_a_clear_error() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.weight = nn.Parameter(1.0)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_repr_shows_the_tree_and_the_layer_settings() -> None:
    text = repr(nn.MLP([2, 3, 1], "tanh", rng=0))
    assert text.splitlines() == [
        "MLP(",
        "  (0): Linear(in_features=2, out_features=3, bias=True)",
        "  (1): Activation(tanh)",
        "  (2): Linear(in_features=3, out_features=1, bias=True)",
        ")",
    ]


# ----- hooks ---------------------------------------------------------------------------------


def test_forward_hook_sees_inputs_and_output_and_can_be_removed() -> None:
    layer = nn.Activation("relu")
    seen = []
    handle = layer.register_forward_hook(lambda m, inp, out: seen.append((m, host(inp[0]), host(out))))
    x = np.array([[-1.0, 2.0]])
    layer(tn.Tensor(x))
    assert seen[0][0] is layer
    np.testing.assert_array_equal(seen[0][1], x)
    np.testing.assert_array_equal(seen[0][2], [[0.0, 2.0]])
    handle.remove()
    handle.remove()  # twice is harmless
    layer(tn.Tensor(x))
    assert len(seen) == 1


def test_full_backward_hook_receives_grad_input_and_grad_output() -> None:
    """For loss = sum(c * tanh(h)) with h = Linear(x): the hook of tanh gets grad_output = (c,)
    and grad_input = (c * (1 - tanh(h)^2),), the Linear's gets grad_output = that same array
    and grad_input = (it @ W,) (all derived by hand); a removed hook is not called again."""
    tn.set_default_dtype("float64")
    linear, act = nn.Linear(3, 2, rng=0), nn.Activation("tanh")
    seen: dict[str, tuple] = {}
    linear.register_full_backward_hook(lambda m, gi, go: seen.__setitem__("linear", (m, gi, go)))
    handle = act.register_full_backward_hook(lambda m, gi, go: seen.__setitem__("act", (m, gi, go)))
    c = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = tn.Tensor(np.random.default_rng(5).standard_normal((2, 3)), requires_grad=True)
    h = linear(x)
    (act(h) * tn.Tensor(c)).sum().backward()
    delta = c * (1 - np.tanh(host(h)) ** 2)
    module, (grad_h,), (grad_y,) = seen["act"]
    assert module is act
    np.testing.assert_allclose(host(grad_y), c, rtol=1e-12)
    np.testing.assert_allclose(host(grad_h), delta, rtol=1e-12)
    module, (grad_x,), (grad_out,) = seen["linear"]
    assert module is linear
    np.testing.assert_allclose(host(grad_out), delta, rtol=1e-12)
    np.testing.assert_allclose(host(grad_x), delta @ host(linear.weight), rtol=1e-12)
    np.testing.assert_allclose(host(x.grad), host(grad_x), rtol=1e-12)  # nothing else changed
    handle.remove()
    seen.clear()
    (act(linear(inputs((2, 3)))) * tn.Tensor(c)).sum().backward()
    assert list(seen) == ["linear"]
    assert seen["linear"][1] == (None,)  # a constant input has no gradient


def test_full_backward_hook_with_two_inputs_and_shared_use() -> None:
    """A module of two inputs, one of them also used outside it: grad_input holds only what
    flows back through the module (b * g and a * g for a * b), not the outside use."""

    class Product(nn.Module):
        def forward(self, a, b):
            return a * b

    tn.set_default_dtype("float64")
    rng = np.random.default_rng(6)
    a, b = (tn.Tensor(rng.standard_normal(4), requires_grad=True) for _ in range(2))
    module, seen = Product(), []
    module.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    (module(a, b) * 3.0 + a * 5.0).sum().backward()
    ((grad_a, grad_b), (grad_out,)) = seen[0]
    np.testing.assert_allclose(host(grad_out), np.full(4, 3.0))
    np.testing.assert_allclose(host(grad_a), 3.0 * host(b), rtol=1e-12)
    np.testing.assert_allclose(host(grad_b), 3.0 * host(a), rtol=1e-12)
    np.testing.assert_allclose(host(a.grad), 3.0 * host(b) + 5.0, rtol=1e-12)


def test_full_backward_hook_is_skipped_without_gradients_and_must_return_none() -> None:
    layer = nn.Activation("relu")
    calls = []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append(go))
    with tn.no_grad():
        layer(inputs((2, 2)))
    assert calls == []
    replacing = nn.Activation("tanh")
    replacing.register_full_backward_hook(lambda m, gi, go: gi)
    x = tn.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="must return None.*Tensor.register_hook"):
        replacing(x).sum().backward()


# ----- state_dict ------------------------------------------------------------------------------


def trained_adaptive_mlp(seed: int) -> nn.MLP:
    model = nn.MLP([4, 6, 3], "nswish", {"mode": "adaptive", "center": True}, rng=seed)
    for step in range(3):
        model(inputs((8, 4), seed=10 + step))  # training mode: moves the running statistics
    return model


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    source, target = trained_adaptive_mlp(seed=0), trained_adaptive_mlp(seed=1)
    state = source.state_dict()
    assert list(state) == [
        "0.weight", "0.bias", "2.weight", "2.bias",
        "1.running_rho", "1.running_rho_prime", "1.running_mu",
    ]  # fmt: skip
    x = inputs((5, 4), seed=99)
    assert not np.array_equal(host(source.eval()(x)), host(target.eval()(x)))
    target.load_state_dict(state)
    np.testing.assert_array_equal(host(target(x)), host(source(x)))
    state["0.weight"][...] = 0.0  # the state is a copy: changing it leaves the model alone
    assert np.any(host(source[0].weight) != 0.0)


def test_loading_a_wrong_checkpoint_names_the_keys_and_shapes() -> None:
    model = nn.MLP([4, 6, 3], "relu", rng=0)
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "2.bias"}
    with pytest.raises(nn.StateDictError, match=r"missing keys: 2\.bias"):
        model.load_state_dict(missing)
    with pytest.raises(nn.StateDictError, match=r"unexpected keys: 9\.weight"):
        model.load_state_dict({**state, "9.weight": np.zeros(2)})
    with pytest.raises(nn.StateDictError, match=r"0\.weight: checkpoint \(6, 5\) vs model \(6, 4\)"):
        model.load_state_dict({**state, "0.weight": np.zeros((6, 5))})
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == []


def test_load_keeps_the_parameter_dtype() -> None:
    model = nn.Linear(2, 2, dtype="float32", rng=0)
    model.load_state_dict({"weight": np.ones((2, 2), dtype=np.float64), "bias": np.zeros(2)})
    assert model.weight.dtype == np.float32


# ----- layers ----------------------------------------------------------------------------------


def test_linear_computes_x_wt_plus_b() -> None:
    tn.set_default_dtype("float64")
    layer = nn.Linear(3, 2, rng=0)
    layer.bias.data[...] = tn.backend.asarray([0.5, -1.0])
    x = inputs((4, 3))
    np.testing.assert_allclose(host(layer(x)), host(x) @ host(layer.weight).T + [0.5, -1.0], rtol=1e-12)
    assert nn.Linear(3, 2, bias=False, rng=0).bias is None
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 2)


def test_activation_by_name_with_parameters() -> None:
    x = np.linspace(-3, 3, 7)[None, :]
    out = nn.Activation("swish", beta=2.0)(tn.Tensor(x))
    np.testing.assert_allclose(host(out), x / (1 + np.exp(-2.0 * x)), rtol=1e-6)
    assert isinstance(nn.activation("nrelu"), nn.NormalizedActivation)
    assert type(nn.activation("relu")) is nn.Activation
    assert nn.activation("nsilu", beta=2.0).base.params == {"beta": 2.0}
    with pytest.raises(ValueError, match=r"unknown activation 'swsh'.*'n' \+ any of them"):
        nn.activation("swsh")
    with pytest.raises(ValueError, match="unknown activation 'nrelu'"):
        nn.Activation("nrelu")  # the layer itself does not read the n<name> spelling


def test_seeded_builders_are_reproducible() -> None:
    a, b = nn.MLP([3, 4, 2], "tanh", rng=7), nn.MLP([3, 4, 2], "tanh", rng=7)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(host(p), host(q))


def test_residual_block_is_x_plus_alpha_branch_and_a_zero_gate_is_the_identity() -> None:
    tn.set_default_dtype("float64")
    block = nn.ResidualBlock(4, "tanh", branch_depth=2, alpha=0.5, rng=0)
    x = inputs((3, 4))
    np.testing.assert_allclose(host(block(x)), host(x) + 0.5 * host(block.branch(x)), rtol=1e-12)
    assert len([m for m in block.branch if isinstance(m, nn.Linear)]) == 3  # k pairs + final Linear
    gated = nn.ResidualBlock(4, "tanh", gate=True, rng=0)
    np.testing.assert_array_equal(host(gated(x)), host(x))


def test_residual_mlp_layout() -> None:
    model = nn.ResidualMLP(3, 8, depth=2, out_features=5, activation="nswish", rng=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ResidualBlock", "ResidualBlock", "Linear"]
    assert model(inputs((2, 3))).shape == (2, 5)


# ----- gradcheck through whole networks ----------------------------------------------------------


@contextmanager
def parameters_replaced(model: nn.Module, values: tuple[tn.Tensor, ...]):
    """Run ``model`` with its parameters swapped for ``values`` (so gradcheck can perturb them)."""
    slots = []
    for _, module in model.named_modules():
        slots += [(module, name, param) for name, param in module._parameters.items()]
    for (module, name, _), value in zip(slots, values, strict=True):
        object.__setattr__(module, name, value)
    try:
        yield
    finally:
        for module, name, param in slots:
            object.__setattr__(module, name, param)


def gradcheck_model(model: nn.Module, x: tn.Tensor) -> None:
    params = tuple(tn.Tensor(p.data.copy(), requires_grad=True) for p in model.parameters())

    def fn(x: tn.Tensor, *values: tn.Tensor) -> tn.Tensor:
        with parameters_replaced(model, values):
            return model(x)

    assert tn.gradcheck(fn, x, *params, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "swish", "nswish", "ngelu"])
def test_gradcheck_mlp(activation: str) -> None:
    tn.set_default_dtype("float64")
    gradcheck_model(nn.MLP([3, 5, 4, 2], activation, rng=0), inputs((4, 3)))


def test_gradcheck_residual_mlp_with_gate() -> None:
    tn.set_default_dtype("float64")
    model = nn.ResidualMLP(
        3, 4, depth=2, out_features=2, activation="nswish", branch_depth=2, gate=True, rng=0
    )
    for block in list(model)[1:-1]:
        block.gate.data[...] = 0.7  # a zero gate would hide the branch's gradients
    gradcheck_model(model, inputs((3, 3)))


# ----- initializers ------------------------------------------------------------------------------


def sample_variance_check(weight: nn.Parameter, variance: float) -> None:
    """mean(W^2) of N i.i.d. zero-mean entries has relative standard error at most sqrt(2/N)
    (Gaussian: sqrt(2/N), uniform: sqrt(0.8/N)); allow 4 of them; a 10% error must fail."""
    values = host(weight).ravel()
    tolerance = 4 * math.sqrt(2.0 / values.size)
    ratio = (values**2).mean() / variance
    assert abs(ratio - 1) <= tolerance
    assert abs(ratio / 1.1 - 1) > tolerance and abs(ratio / 0.9 - 1) > tolerance


@pytest.mark.parametrize(
    ("scheme", "variance"),
    [
        ("lecun_normal", 1 / 300),
        ("xavier_normal", 2 / (300 + 200)),
        ("xavier_uniform", 2 / (300 + 200)),
        ("kaiming_normal", 2 / 300),  # relu: gain^2 = 1 / rho(1) = 2 (He)
        ("kaiming_uniform", 2 / 300),
    ],
)
def test_initializer_variances(scheme: str, variance: float) -> None:
    weight = nn.Parameter(np.zeros((200, 300)))
    nn.init.initialize(weight, scheme, rng=0)
    sample_variance_check(weight, variance)


def test_kaiming_gain_comes_from_the_theory_not_a_table() -> None:
    """erf has closed forms (THEORY): m2(1) = (2/pi) arcsin(2/3), d2(1) = (4/pi) / sqrt(5)."""
    forward = 1 / math.sqrt(2 / math.pi * math.asin(2 / 3))
    backward = 1 / math.sqrt(4 / math.pi / math.sqrt(5))
    assert nn.init.gain("erf", "forward") == pytest.approx(forward, rel=1e-9)
    assert nn.init.gain("erf", "backward") == pytest.approx(backward, rel=1e-9)
    weight = nn.Parameter(np.zeros((300, 200)))
    nn.init.kaiming_normal(weight, "erf", mode="fan_out", rng=1)
    sample_variance_check(weight, backward**2 / 300)
    linear = nn.Linear(300, 200, init="lecun_normal", gain_from="erf", rng=2)  # activation-aware gain
    sample_variance_check(linear.weight, forward**2 / 300)


def test_orthogonal_has_orthonormal_rows_or_columns_times_the_gain() -> None:
    tall, wide = nn.Parameter(np.zeros((6, 3))), nn.Parameter(np.zeros((3, 6)))
    nn.init.orthogonal(tall, gain=2.0, rng=0)
    nn.init.orthogonal(wide, gain=2.0, rng=0)
    np.testing.assert_allclose(host(tall).T @ host(tall), 4 * np.eye(3), atol=1e-5)
    np.testing.assert_allclose(host(wide) @ host(wide).T, 4 * np.eye(3), atol=1e-5)


def test_unknown_initializer_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown initializer 'he'.*kaiming_normal"):
        nn.Linear(2, 2, init="he")


def test_check_activation_names_bad_options_without_building_a_layer(monkeypatch) -> None:
    def no_quadrature(*args: object, **kwargs: object) -> None:
        raise AssertionError("check_activation integrated Gaussian moments (it built a layer)")

    monkeypatch.setattr(theory, "gaussian_moments", no_quadrature)
    nn.check_activation("nswish", mode="adaptive", rule="forward", center=True, beta=1.5)
    nn.check_activation("tanh")
    cases = [
        (("nswish",), {"rule": "sideways"}, "unknown normalization rule 'sideways'"),
        (("nswish",), {"beta": "big"}, "parameter beta='big'"),
        (("nswish",), {"momentum": 1.0}, "momentum must be in [0, 1)"),
        (("elu",), {"alpha": -1.0}, "parameter alpha=-1.0"),
        (("sideways",), {}, "unknown activation 'sideways'"),
    ]
    for args, options, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            nn.check_activation(*args, **options)
