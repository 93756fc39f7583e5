"""engine.replay: a recorded step run again gives the eager step's numbers bit for bit.

The oracle is the eager engine itself on a twin model (same weights, same batches, its own
optimizer): after every step the losses and every parameter must be equal, not close. The
networks are away from the easy points: odd widths and batch, a residual MLP (a value feeding
two operations, so gradients are summed), a static normalized activation, momentum and Adam,
both losses, and batches that change every step (a replay that kept the first batch fails).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import tinynormact as tn
from tinynormact.engine import replay
from tinynormact.engine.backend import to_numpy
from tinynormact.engine.replay import ReplayError

BATCH, FEATURES, CLASSES = 17, 9, 5


def _mlp(seed: int) -> tn.nn.Module:
    return tn.nn.MLP([FEATURES, 13, 11, 13, CLASSES], "tanh", rng=seed)


def _residual(seed: int) -> tn.nn.Module:
    return tn.nn.ResidualMLP(FEATURES, 13, 2, CLASSES, activation="swish", rng=seed)


def _static_normalized(seed: int) -> tn.nn.Module:
    return tn.nn.MLP([FEATURES, 12, 12, CLASSES], "nswish", rng=seed)


def _batches(steps: int, classification: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    batches = []
    for _ in range(steps):
        x = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
        if classification:
            y = rng.integers(0, CLASSES, BATCH)
        else:
            y = rng.standard_normal((BATCH, CLASSES)).astype(np.float32)
        batches.append((x, y))
    return batches


def _loss(name: str) -> Callable:
    return tn.losses.softmax_cross_entropy if name == "cross_entropy" else tn.losses.mse_loss


@pytest.mark.parametrize("build", [_mlp, _residual, _static_normalized])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize(
    "make_optimizer",
    [lambda p: tn.optim.SGD(p, lr=0.05, momentum=0.9), lambda p: tn.optim.Adam(p, lr=0.01)],
    ids=["sgd-momentum", "adam"],
)
def test_a_replayed_step_equals_the_eager_step_bit_for_bit(build, loss_name, make_optimizer) -> None:
    model, twin = build(0), build(0)
    optimizer, twin_optimizer = make_optimizer(model.parameters()), make_optimizer(twin.parameters())
    loss_fn = _loss(loss_name)
    batches = _batches(5, loss_name == "cross_entropy")

    step, first = replay.record(lambda x, y: loss_fn(model(x), y), *batches[0])
    losses = [first.item()]
    optimizer.step()
    for x, y in batches[1:]:
        losses.append(step(x, y).item())
        optimizer.step()

    eager = []
    for x, y in batches:
        twin_optimizer.zero_grad()
        loss = loss_fn(twin(tn.Tensor(x)), y)
        loss.backward()
        twin_optimizer.step()
        eager.append(loss.item())
    assert losses == eager
    assert len(set(losses)) == len(losses)  # the batches differ, so must the losses
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert np.array_equal(p.numpy(), q.numpy())


def test_a_replay_replaces_the_gradients_as_zero_grad_then_backward_would() -> None:
    model = _mlp(1)
    (x, y), (x2, y2) = _batches(2, False)
    step, _ = replay.record(lambda a, b: tn.losses.mse_loss(model(a), b), x, y)
    first = [to_numpy(p.grad) for p in model.parameters()]
    step(x, y)  # the same batch again, no update between: the same gradients, not twice them
    assert all(np.array_equal(g, to_numpy(p.grad)) for g, p in zip(first, model.parameters(), strict=True))
    step(x2, y2)
    assert not np.array_equal(first[0], to_numpy(next(model.parameters()).grad))


def test_the_fused_mse_loss_has_the_composite_gradient_bit_for_bit() -> None:
    """mse_loss is one op; its gradient diff * 2 (g / n) equals that of (p - t)^2 averaged by
    sub, mul and mean (the sum of the two paths of mul is 2 (g / n) diff, exactly)."""
    rng = np.random.default_rng(5)
    p0, t = rng.standard_normal((7, 3)).astype(np.float32), rng.standard_normal((7, 3)).astype(np.float32)
    fused, composite = tn.Tensor(p0, requires_grad=True), tn.Tensor(p0, requires_grad=True)
    loss = tn.losses.mse_loss(fused, t)
    loss.backward()
    diff = composite - tn.Tensor(t)
    reference = (diff * diff).mean()
    reference.backward()
    assert loss.item() == reference.item()
    assert np.array_equal(to_numpy(fused.grad), to_numpy(composite.grad))
    summed = tn.Tensor(p0, requires_grad=True)
    tn.losses.mse_loss(summed, t, reduction="sum").backward()
    assert np.allclose(to_numpy(summed.grad), 2 * (p0 - t), rtol=1e-6)


def test_a_step_with_an_operation_a_replay_cannot_run_is_refused_naming_it() -> None:
    model = tn.nn.MLP([FEATURES, 8, CLASSES], "relu", batch_norm=True, rng=0)
    x, y = _batches(1, True)[0]
    with pytest.raises(ReplayError, match="cannot replay the operation.*batch_norm.*run this step eagerly"):
        replay.record(lambda a, b: tn.losses.softmax_cross_entropy(model(a), b), x, y)


def test_inputs_of_another_shape_or_dtype_are_refused_naming_both() -> None:
    model = _mlp(2)
    x, y = _batches(1, False)[0]
    step, _ = replay.record(lambda a, b: tn.losses.mse_loss(model(a), b), x, y)
    recorded = r"input 0: .*shape \(17, 9\) and dtype float32, got shape \(16, 9\)"
    with pytest.raises(ReplayError, match=recorded):
        step(x[:16], y)
    with pytest.raises(ReplayError, match="input 1: .*got shape .* and dtype float64"):
        step(x, y.astype(np.float64))
    with pytest.raises(ReplayError, match="recorded with 2 inputs, got 1"):
        step(x)


def test_the_recorded_function_must_return_one_loss() -> None:
    model = _mlp(3)
    x, y = _batches(1, False)[0]
    with pytest.raises(ReplayError, match="one-element Tensor that requires a gradient.*shape \\(17, 5\\)"):
        replay.record(lambda a, b: model(a) - b, x, y)


def test_recording_leaves_the_eager_engine_as_it_was() -> None:
    """After record() (and after a failed one) operations record nothing any more."""
    model = _mlp(4)
    x, y = _batches(1, False)[0]
    with pytest.raises(ReplayError):
        replay.record(lambda a, b: model(a), x, y)
    replay.record(lambda a, b: tn.losses.mse_loss(model(a), b), x, y)
    assert tn.engine.autograd._recording["steps"] is None
