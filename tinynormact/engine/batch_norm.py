"""Batch normalization as one differentiable op (Ioffe and Szegedy, 2015).

For x of shape (batch, channels) or (batch, channels, *spatial), each channel c is normalized
over every axis but the channel axis (the batch and all positions):

    x_hat = (x - mean_c) / sqrt(var_c + eps),     y = weight_c * x_hat + bias_c

With batch statistics (training), mean_c and var_c are the batch's own (var with ddof 0) and the
op's backward differentiates through them, the textbook formula over the m = batch * positions
elements of a channel:

    grad_x = weight_c / sqrt(var_c + eps) * (g - mean(g) - x_hat * mean(g * x_hat))

With given statistics (evaluation: the running estimates), they are constants and y is an affine
map of x. Either way grad_weight = sum(g * x_hat) and grad_bias = sum(g) per channel.
"""

from __future__ import annotations

from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor

__all__ = ["batch_norm"]


def batch_norm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float = 1e-5,
    statistics: tuple[Any, Any] | None = None,
) -> tuple[Tensor, Any, Any]:
    """(y, mean, var): y normalized per channel as in the module docstring, with the batch's
    statistics when ``statistics`` is None, else with the given (mean, var) arrays of shape
    (channels,); mean and var are the statistics used (for a running-average update)."""
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected an input of shape (batch, channels, ...), got shape {x.shape}"
        )
    channels = x.shape[1]
    shape = (1, channels) + (1,) * (x.ndim - 2)  # broadcasts a per-channel array against x
    xp = backend.get_array_module(x.data)
    count = x.size // channels  # the elements of one channel
    if statistics is None:
        mean = _channel_sums(x.data) / count
        centred = x.data - mean.reshape(shape)
        var = _channel_sums(centred, centred) / count
    else:
        mean, var = (xp.asarray(s, dtype=x.dtype) for s in statistics)
        centred = x.data - mean.reshape(shape)
    inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False).reshape(shape)
    x_hat = centred  # normalized in place: centred is this op's own array
    x_hat *= inv_std
    scale = inv_std if weight is None else inv_std * weight.data.reshape(shape)
    y = x_hat if weight is None else x_hat * weight.data.reshape(shape)
    if bias is not None and y is x_hat:
        y = y + bias.data.reshape(shape)  # x_hat is kept for backward: a new array
    elif bias is not None:
        y += bias.data.reshape(shape)  # in place: y is this op's own new array

    input_grad = x.requires_grad  # backward keeps no reference to x's data (x_hat suffices)

    def backward(g: Any) -> tuple[Any, ...]:
        gx = gw = gb = None
        # sum(g) and sum(g x_hat) per channel, each computed once and shared by the three gradients
        sum_g = _channel_sums(g).reshape(shape)
        sum_g_xhat = _channel_sums(g, x_hat).reshape(shape)
        if input_grad:
            if statistics is None:
                gx = g - sum_g / count
                gx -= x_hat * (sum_g_xhat / count)
                gx *= scale
            else:
                gx = g * scale
        if weight is not None and weight.requires_grad:
            gw = sum_g_xhat.reshape(channels).astype(weight.dtype, copy=False)
        if bias is not None and bias.requires_grad:
            gb = sum_g.reshape(channels).astype(bias.dtype, copy=False)
        return (gx, *([gw] if weight is not None else []), *([gb] if bias is not None else []))

    parents = (x, *(t for t in (weight, bias) if t is not None))
    return Tensor.from_op(y, parents, backward, "batch_norm"), mean, var


def _channel_sums(a: Any, b: Any = None) -> Any:
    """The sum of ``a`` (or of a * b) over every axis but the channel axis 1, shape (channels,).
    A feature map is summed one (example, channel) row at a time, each row one BLAS product (a
    row times a vector of ones, or times the same row of b): 3-4 x faster than NumPy's reduction
    over (0, 2, 3) for ResNet-20's maps, with no temporary a * b, and the same calls on every
    device. A 2-D input (batch, features) keeps NumPy's sum over the batch."""
    if a.ndim == 2:
        return (a if b is None else a * b).sum(axis=0)
    rows = a.reshape(a.shape[0] * a.shape[1], -1)
    if b is None:
        per_row = rows @ backend.get_array_module(a).ones(rows.shape[1], dtype=a.dtype)
    else:  # (rows, 1, n) @ (rows, n, 1): one dot product per row
        per_row = (rows[:, None, :] @ b.reshape(rows.shape)[:, :, None]).reshape(-1)
    return per_row.reshape(a.shape[:2]).sum(axis=0)
