"""Losses: softmax cross-entropy (one fused, numerically stable op) and mean squared error (one op).

Reduction convention: for cross-entropy, "mean" divides the sum of the per-example losses by the
batch size N (each example's gradient is then its per-example gradient / N, the convention of
THEORY's statistics); for MSE, "mean" divides by the number of elements (PyTorch's convention).
"sum" never divides. Targets are constants: no gradient flows into labels.
"""

from __future__ import annotations

from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor

REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")


def _targets(labels: Any, logits: Tensor) -> Any:
    """The labels as a float (N, C) array of target probabilities on the logits' device."""
    n, c = logits.shape
    raw = labels.data if isinstance(labels, Tensor) else backend.asarray(labels, device=logits.device)
    xp = backend.get_array_module(logits.data)
    if raw.dtype.kind in "iu":
        if raw.shape != (n,):
            raise ValueError(
                f"integer labels must have shape ({n},) for logits of shape {logits.shape}, got {raw.shape}"
            )
        bad = xp.flatnonzero((raw < 0) | (raw >= c))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"label {int(raw[i])} at index {i} is outside the {c} classes [0, {c - 1}]")
        return xp.eye(c, dtype=logits.dtype)[raw]
    if raw.shape != (n, c):
        raise ValueError(
            f"labels must be integers of shape ({n},) or class probabilities (one-hot) of shape "
            f"({n}, {c}) for logits of shape {logits.shape}; got {raw.dtype} labels of shape {raw.shape}"
        )
    return raw.astype(logits.dtype)


def softmax_cross_entropy(logits: Tensor, labels: Any, reduction: str = "mean") -> Tensor:
    """-sum_c t_c log softmax(logits)_c per example, reduced over the batch.

    ``logits`` has shape (N, C); ``labels`` are integer classes of shape (N,) or target
    probabilities (one-hot or soft) of shape (N, C). The forward uses a log-softmax shifted by
    the maximum (no overflow); the backward is (softmax * sum_c t_c - t) / N for "mean".
    """
    _check_reduction(reduction)
    logits = ops.as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {logits.shape}")
    if logits.shape[0] == 0 and reduction == "mean":
        raise ValueError(
            f"softmax_cross_entropy: the batch is empty (logits of shape {logits.shape}); "
            "the mean over no examples is undefined"
        )
    targets = _targets(labels, logits)
    xp = backend.get_array_module(logits.data)
    log_probs = ops.log_softmax_array(logits.data, axis=1)
    scale = 1.0 / logits.shape[0] if reduction == "mean" else 1.0

    def forward(out: Any = None) -> Any:
        if out is not None:  # a replay (ops module docstring): new logits and labels, in place
            targets[...] = _targets(labels, logits)
            log_probs[...] = ops.log_softmax_array(logits.data, axis=1)
        return ops.into(out, xp.asarray(-(targets * log_probs).sum() * scale))

    def backward(g: Any) -> tuple[Any]:
        grad = xp.exp(log_probs) * targets.sum(axis=1, keepdims=True) - targets
        return (grad * (g * scale),)

    return Tensor.from_op(forward(), (logits,), backward, "softmax_cross_entropy", forward)


def mse_loss(prediction: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """(prediction - target)^2 summed over all elements, divided by the number of elements for
    "mean". Shapes must match exactly (no silent broadcasting)."""
    _check_reduction(reduction)
    prediction = ops.as_tensor(prediction)
    target = ops.as_tensor(target, like=prediction).detach()  # a constant, as the module says
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction shape {prediction.shape} differs from target shape {target.shape}"
        )
    xp = backend.get_array_module(prediction.data)
    diff = xp.empty(prediction.shape, dtype=xp.result_type(prediction.dtype, target.dtype))
    count = diff.size if reduction == "mean" else 1

    def forward(out: Any = None) -> Any:  # also a replay's (ops module docstring): diff anew
        xp.subtract(prediction.data, target.data, out=diff)
        squares = diff * diff
        return ops.into(out, squares.mean() if reduction == "mean" else squares.sum())

    def backward(g: Any) -> tuple[Any]:  # d/d prediction of sum(diff^2) / count
        return (ops.in_dtype(diff * (2.0 * (g / count)), prediction),)

    return Tensor.from_op(forward(), (prediction,), backward, "mse_loss", forward)
