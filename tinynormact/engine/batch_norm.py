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
    axes = (0, *range(2, x.ndim))
    shape = (1, channels) + (1,) * (x.ndim - 2)  # broadcasts a per-channel array against x
    xp = backend.get_array_module(x.data)
    if statistics is None:
        mean = x.data.mean(axis=axes)
        centred = x.data - mean.reshape(shape)
        var = (centred * centred).mean(axis=axes)
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
        count = g.size // channels
        # sum(g) and sum(g x_hat) per channel, each computed once and shared by the three gradients
        sum_g = g.sum(axis=axes, keepdims=True)
        sum_g_xhat = (g * x_hat).sum(axis=axes, keepdims=True)
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
