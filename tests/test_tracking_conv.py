"""VarianceTracker on convolutional networks: every statistic of every conv layer against a
brute-force loop that backpropagates each example's own loss and reads the arrays it needs
with retain_grad; and, with batch norm between a conv and its activation (which couples the
examples of a batch), against the per-row contributions computed one example at a time."""

from __future__ import annotations

import numpy as np

import tinynormact as tn
from tests.helpers import host
from tinynormact import losses, nn
from tinynormact.tracking.tracker import VarianceTracker

BATCH = 5


def conv_net(batch_norm: bool) -> nn.Sequential:
    """Conv1d (stride 2) -> [BN] -> tanh -> Conv1d -> nswish (adaptive) -> pool -> Linear, float64."""
    rng = np.random.default_rng(0)
    norm = [nn.BatchNorm1d(3, dtype="float64")] if batch_norm else []
    model = nn.Sequential(
        nn.Conv1d(2, 3, 3, stride=2, padding=1, dtype="float64", rng=rng),
        *norm,
        nn.Activation("tanh"),
        nn.Conv1d(3, 4, 3, padding=1, dtype="float64", rng=rng),
        nn.activation("nswish", mode="adaptive"),
        nn.GlobalAvgPool(),
        nn.Linear(4, 6, dtype="float64", rng=rng),
    )
    for conv in (model[0], model[2 + len(norm)]):
        conv.bias.data = tn.Tensor(rng.standard_normal(conv.bias.shape)).data  # nonzero: a real bias gradient
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((BATCH, 2, 9)), rng.integers(0, 6, BATCH)


def brute_force(model: nn.Sequential, x: np.ndarray, y: np.ndarray) -> dict:
    """Per conv layer: per-example weight and bias gradients, per-example delta = d loss_b / d h
    and the forward arrays (input, h, activation input and output), from B separate backwards of
    the per-example losses through one batch forward (BN then uses the batch's statistics, as in
    the tracked step). The adaptive lambda is a constant in backward, as in the layer."""
    convs = [m for m in model if isinstance(m, nn.Conv1d)]
    acts = [m for m in model if isinstance(m, nn.Activation)]
    seen: dict = {}
    handles = []
    for k, conv in enumerate(convs):
        handles.append(
            conv.register_forward_hook(lambda m, i, out, k=k: seen.update({("x", k): i[0], ("h", k): out}))
        )
    for k, act in enumerate(acts):
        handles.append(
            act.register_forward_hook(lambda m, i, out, k=k: seen.update({("a", k): i[0], ("y", k): out}))
        )
    result: dict = {}
    for b in range(BATCH):
        for p in model.parameters():
            p.grad = None
        seen.clear()
        out = model(tn.Tensor(x))
        for k in range(len(convs)):
            seen["h", k].retain_grad()
            seen["y", k].retain_grad()
        losses.softmax_cross_entropy(out[b : b + 1], y[b : b + 1]).backward()
        for k, conv in enumerate(convs):
            for key, value in (
                ("weight", conv.weight.grad),
                ("bias", conv.bias.grad),
                ("delta", seen["h", k].grad[b]),
                ("grad_act", seen["y", k].grad[b]),
            ):
                result.setdefault((key, k), []).append(host(value))
    for handle in handles:
        handle.remove()
    for k in range(len(convs)):
        for key in ("x", "h", "a", "y"):
            value = seen[key, k]
            result[key, k] = tn.backend.to_numpy(value.data if isinstance(value, tn.Tensor) else value)
    return {key: np.array(value) for key, value in result.items()}


def test_conv_layer_statistics_match_a_per_example_loop() -> None:
    model, (x, y) = conv_net(batch_norm=False), data()
    brute = brute_force(model, x, y)
    with VarianceTracker(model) as tracker:
        losses.softmax_cross_entropy(model(tn.Tensor(x)), y).backward()
    got = tracker.profile()
    assert tracker.layer_names[:2] == ["0", "2"]
    for k in range(2):
        g_w, g_b = brute["weight", k], brute["bias", k]
        np.testing.assert_allclose(got["weight_grad_sq"][k], np.mean(g_w**2), rtol=1e-10)
        np.testing.assert_allclose(got["weight_grad_var"][k], np.mean(g_w.var(axis=0)), rtol=1e-9)
        np.testing.assert_allclose(got["bias_grad_sq"][k], np.mean(g_b**2), rtol=1e-10)
        np.testing.assert_allclose(got["bias_grad_var"][k], np.mean(g_b.var(axis=0)), rtol=1e-9)
        np.testing.assert_allclose(got["delta_sq"][k], np.mean(brute["delta", k] ** 2), rtol=1e-10)
        np.testing.assert_allclose(got["grad_act_sq"][k], np.mean(brute["grad_act", k] ** 2), rtol=1e-10)
        h, a, out = brute["h", k], brute["a", k], brute["y", k]
        np.testing.assert_allclose(got["input_sq"][k], np.mean(brute["x", k] ** 2), rtol=1e-12)
        np.testing.assert_allclose(got["preact_sq"][k], np.mean(h**2), rtol=1e-12)
        np.testing.assert_allclose(got["preact_var"][k], np.var(h), rtol=1e-10)
        np.testing.assert_allclose(got["act_sq"][k], np.mean(out**2), rtol=1e-12)
        np.testing.assert_allclose(got["rho"][k], np.mean(out**2) / np.mean(a**2), rtol=1e-12)
    # the per-example weight gradients really differ between examples (the variance is not 0)
    assert got["weight_grad_var"][0] > 0.05 * got["weight_grad_sq"][0]


def test_with_batch_norm_the_per_example_statistics_are_each_rows_contribution() -> None:
    """BN makes every example's loss depend on the whole batch, so "example b's gradient" is
    taken as the tracker defines it: the contribution of example b's row, B g_b with
    g = d(mean loss)/dh, to the weight gradient (B g_b^T columns_b) and to the bias gradient
    (B sum_p g_b). Computed here one example at a time by backpropagating the masked g through
    the conv op alone; the rows sum to the batch gradient, checked too."""
    model, (x, y) = conv_net(batch_norm=True), data()
    conv = model[0]
    seen: dict = {}
    handle = conv.register_forward_hook(lambda m, i, out: seen.update(x=i[0], h=out))
    with VarianceTracker(model) as tracker:
        out = model(tn.Tensor(x))
        seen["h"].retain_grad()
        losses.softmax_cross_entropy(out, y).backward()
    handle.remove()
    got, g, batch_weight_grad = tracker.profile(), host(seen["h"].grad), host(conv.weight.grad)
    rows_w, rows_b = [], []
    for b in range(BATCH):
        weight = tn.Tensor(host(conv.weight.data), requires_grad=True)
        bias = tn.Tensor(host(conv.bias.data), requires_grad=True)
        mask = np.zeros_like(g)
        mask[b] = BATCH * g[b]
        tn.convolution.conv(tn.Tensor(seen["x"].data), weight, bias, 2, 1).backward(mask)
        rows_w.append(host(weight.grad))
        rows_b.append(host(bias.grad))
    rows_w, rows_b = np.array(rows_w), np.array(rows_b)
    np.testing.assert_allclose(rows_w.mean(axis=0), batch_weight_grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["weight_grad_sq"][0], np.mean(rows_w**2), rtol=1e-10)
    np.testing.assert_allclose(got["weight_grad_var"][0], np.mean(rows_w.var(axis=0)), rtol=1e-9)
    np.testing.assert_allclose(got["bias_grad_sq"][0], np.mean(rows_b**2), rtol=1e-10)
    np.testing.assert_allclose(got["bias_grad_var"][0], np.mean(rows_b.var(axis=0)), rtol=1e-9)
    np.testing.assert_allclose(got["delta_sq"][0], np.mean((BATCH * g) ** 2), rtol=1e-10)
    assert tracker.layer_names[:2] == ["0", "3"]  # the conv after the BN'd one, paired over BN
    assert not np.isnan(got["rho"][0])
