"""Losses (closed forms, stability, gradcheck, errors) and optimizers (hand-computed steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinynormact as tn
import tinynormact.nn.functional as F
from tests.helpers import host
from tinynormact import losses, nn, optim

# ----- softmax cross-entropy ------------------------------------------------------------------

LOGITS = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
LABELS = np.array([0, 2])


def reference_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example -log(exp(z_y) / sum exp(z)), written directly."""
    return np.array(
        [-math.log(math.exp(z[y]) / np.exp(z).sum()) for z, y in zip(logits, labels, strict=True)]
    )


def test_cross_entropy_matches_the_definition_for_both_reductions_and_label_forms() -> None:
    tn.set_default_dtype("float64")
    per_example = reference_cross_entropy(LOGITS, LABELS)
    logits = tn.Tensor(LOGITS)
    assert losses.softmax_cross_entropy(logits, LABELS).item() == pytest.approx(per_example.mean(), rel=1e-12)
    assert losses.softmax_cross_entropy(logits, LABELS, "sum").item() == pytest.approx(
        per_example.sum(), rel=1e-12
    )
    one_hot = np.eye(3)[LABELS]
    assert F.softmax_cross_entropy(logits, one_hot).item() == pytest.approx(per_example.mean(), rel=1e-12)


def test_cross_entropy_gradient_is_softmax_minus_one_hot_over_n() -> None:
    tn.set_default_dtype("float64")
    logits = tn.Tensor(LOGITS, requires_grad=True)
    losses.softmax_cross_entropy(logits, LABELS).backward()
    softmax = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(host(logits.grad), (softmax - np.eye(3)[LABELS]) / 2, rtol=1e-12)


def test_cross_entropy_gradcheck_with_soft_targets() -> None:
    tn.set_default_dtype("float64")
    targets = tn.Tensor(np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]))  # a constant: no gradient
    assert tn.gradcheck(lambda z: losses.softmax_cross_entropy(z, targets, "sum"), LOGITS)
    assert tn.gradcheck(lambda z: losses.softmax_cross_entropy(z, LABELS), LOGITS)


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    """Shifting the logits by a constant leaves the loss unchanged; 1e4 would overflow exp."""
    shifted = losses.softmax_cross_entropy(tn.Tensor(LOGITS + 1e4, dtype="float64"), LABELS).item()
    assert shifted == pytest.approx(reference_cross_entropy(LOGITS, LABELS).mean(), rel=1e-9)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 3]), r"label 3 at index 1 is outside the 3 classes \[0, 2\]"),
        (np.array([-1, 0]), "label -1 at index 0"),
        (np.array([0, 1, 2]), r"integer labels must have shape \(2,\)"),
        (np.array([0.0, 1.0]), r"shape \(2, 3\)"),
    ],
)
def test_cross_entropy_rejects_bad_labels_by_value(labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        losses.softmax_cross_entropy(tn.Tensor(LOGITS), labels)
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        losses.softmax_cross_entropy(tn.Tensor(LOGITS), LABELS, reduction="avg")


def test_mse_loss() -> None:
    tn.set_default_dtype("float64")
    pred, target = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    assert losses.mse_loss(tn.Tensor(pred), target).item() == pytest.approx((1 + 0 + 4 + 16) / 4)
    assert F.mse_loss(tn.Tensor(pred), target, "sum").item() == pytest.approx(21.0)
    assert tn.gradcheck(lambda p: losses.mse_loss(p, target), pred)
    with pytest.raises(ValueError, match=r"prediction shape \(2, 2\) differs from target shape \(2,\)"):
        losses.mse_loss(tn.Tensor(pred), np.zeros(2))
    target_tensor = tn.Tensor(target, requires_grad=True)
    losses.mse_loss(tn.Tensor(pred, requires_grad=True), target_tensor).backward()
    assert target_tensor.grad is None  # targets are constants


# ----- optimizers: hand-computed first steps ------------------------------------------------------


def param(values: list[float]) -> nn.Parameter:
    return nn.Parameter(np.array(values), dtype="float64")


def step_with(optimizer: optim.Optimizer, p: nn.Parameter, grad: list[float]) -> np.ndarray:
    p.grad = tn.backend.asarray(np.array(grad))
    optimizer.step()
    return host(p).copy()


def test_plain_sgd() -> None:
    p = param([1.0, -2.0])
    np.testing.assert_allclose(step_with(optim.SGD([p], lr=0.1), p, [0.5, -1.0]), [0.95, -1.9], rtol=1e-12)


def test_sgd_momentum_and_weight_decay() -> None:
    """wd = 0.1, mu = 0.9, lr = 0.5. Step 1: g = 2 + 0.1*1 = 2.1, b = 2.1, p = 1 - 1.05 = -0.05.
    Step 2: g = 1 + 0.1*(-0.05) = 0.995, b = 0.9*2.1 + 0.995 = 2.885, p = -0.05 - 1.4425."""
    p = param([1.0])
    sgd = optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    np.testing.assert_allclose(step_with(sgd, p, [2.0]), [-0.05], rtol=1e-12)
    np.testing.assert_allclose(step_with(sgd, p, [1.0]), [-1.4925], rtol=1e-12)


def test_sgd_nesterov() -> None:
    """mu = 0.9, lr = 0.5. Step 1: b = 2, direction = 2 + 0.9*2 = 3.8, p = 1 - 1.9 = -0.9.
    Step 2: b = 0.9*2 + 1 = 2.8, direction = 1 + 0.9*2.8 = 3.52, p = -0.9 - 1.76 = -2.66."""
    p = param([1.0])
    sgd = optim.SGD([p], lr=0.5, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(step_with(sgd, p, [2.0]), [-0.9], rtol=1e-12)
    np.testing.assert_allclose(step_with(sgd, p, [1.0]), [-2.66], rtol=1e-12)


def test_adam_two_steps() -> None:
    """b1 = 0.9, b2 = 0.99, lr = 0.1, eps = 1e-8, grads 2 then -1.
    Step 1: m = 0.2, v = 0.04, m_hat = 2, v_hat = 4, p = 1 - 0.1 * 2 / (2 + 1e-8).
    Step 2: m = 0.18 - 0.1 = 0.08, v = 0.0396 + 0.01 = 0.0496,
    m_hat = 0.08 / 0.19, v_hat = 0.0496 / 0.0199, p -= 0.1 * m_hat / (sqrt(v_hat) + 1e-8)."""
    p = param([1.0])
    adam = optim.Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    first = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8)
    np.testing.assert_allclose(step_with(adam, p, [2.0]), [first], rtol=1e-12)
    second = first - 0.1 * (0.08 / 0.19) / (math.sqrt(0.0496 / 0.0199) + 1e-8)
    np.testing.assert_allclose(step_with(adam, p, [-1.0]), [second], rtol=1e-12)


def test_adam_l2_versus_adamw_decoupled_decay() -> None:
    """Adam with weight_decay adds wd*p to the gradient: g = 2 + 0.5*1 = 2.5, and the first
    step is lr * sign(g): p = 1 - 0.1. AdamW first shrinks p by (1 - lr*wd) = 0.95, then steps
    with the raw gradient: p = 0.95 - 0.1 * 2 / (2 + eps)."""
    p = param([1.0])
    np.testing.assert_allclose(
        step_with(optim.Adam([p], lr=0.1, eps=1e-8, weight_decay=0.5), p, [2.0]),
        [1.0 - 0.1 * 2.5 / (2.5 + 1e-8)],
    )
    q = param([1.0])
    np.testing.assert_allclose(
        step_with(optim.AdamW([q], lr=0.1, eps=1e-8, weight_decay=0.5), q, [2.0]),
        [0.95 - 0.1 * 2.0 / (2.0 + 1e-8)],
    )


def test_parameters_without_gradient_are_skipped() -> None:
    a, b = param([1.0]), param([1.0])
    adam = optim.Adam([a, b], lr=0.1)
    step_with(adam, a, [1.0])
    assert host(b)[0] == 1.0 and adam.state[1] == {}


def test_optimizer_state_dict_resumes_identically() -> None:
    p, q = param([1.0, 2.0]), param([1.0, 2.0])
    first = optim.Adam([p], lr=0.1)
    for g in ([1.0, -1.0], [0.5, 0.2]):
        step_with(first, p, g)
    second = optim.Adam([q], lr=0.5)
    q.data[...] = p.data
    second.load_state_dict(first.state_dict())
    assert second.lr == 0.1
    np.testing.assert_array_equal(step_with(second, q, [0.3, 0.3]), step_with(first, p, [0.3, 0.3]))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: optim.SGD(p, lr=-0.1), r"lr must be in \[0.0, inf\), got -0.1"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=1.5), "momentum must be in"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0.0, 1.0\), got 1.0"),
        (lambda p: optim.Adam(p, eps=0.0), r"eps must be in \(0.0, inf\)"),
        (lambda p: optim.AdamW(p, weight_decay=-1.0), "weight_decay must be in"),
        (lambda p: optim.SGD([], lr=0.1), "empty list of parameters"),
    ],
)
def test_bad_hyperparameters_are_named(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make([param([1.0])])


# ----- schedules and clipping -----------------------------------------------------------------------


def lrs(schedule: optim.LRSchedule, steps: int) -> list[float]:
    values = [schedule.optimizer.lr]
    for _ in range(steps):
        schedule.step()
        values.append(schedule.optimizer.lr)
    return values


def test_step_cosine_and_warmup_schedules() -> None:
    opt = optim.SGD([param([1.0])], lr=1.0)
    assert lrs(optim.StepLR(opt, step_size=2, gamma=0.5), 4) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])
    opt.lr = 1.0
    cosine = [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)] + [0.0]
    assert lrs(optim.CosineLR(opt, total_steps=4), 5) == pytest.approx(cosine)
    opt.lr = 1.0
    warm = optim.LinearWarmup(opt, warmup_steps=2, after=optim.CosineLR(opt, total_steps=2))
    assert lrs(warm, 4) == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])


def test_clip_grad_norm_scales_to_the_limit_without_touching_old_arrays() -> None:
    a, b = param([0.0, 0.0]), param([0.0])
    a.grad, b.grad = tn.backend.asarray(np.array([3.0, 0.0])), tn.backend.asarray(np.array([4.0]))
    old = a.grad
    assert float(optim.clip_grad_norm([a, b], max_norm=1.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(host(a.grad), [0.6, 0.0])
    np.testing.assert_allclose(host(b.grad), [0.8])
    np.testing.assert_array_equal(host(old), [3.0, 0.0])
    assert float(optim.clip_grad_norm([a, b], max_norm=2.0)) == pytest.approx(1.0)
    np.testing.assert_allclose(host(b.grad), [0.8])  # under the limit: unchanged


def test_training_a_small_model_reduces_the_loss() -> None:
    """End to end: MLP + cross-entropy + AdamW with warmup on a separable toy problem."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.MLP([2, 16, 2], "nswish", {"mode": "adaptive"}, rng=0)
    opt = optim.AdamW(model.parameters(), lr=0.05)
    schedule = optim.LinearWarmup(opt, warmup_steps=5)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = losses.softmax_cross_entropy(model(tn.Tensor(x)), y)
        loss.backward()
        opt.step()
        schedule.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.3 * first
