"""Convolution and pooling over 1-D and 2-D feature maps, written once for both (im2col).

Layout, as in PyTorch: an input has shape (batch, channels, *spatial) with one or two spatial
axes; a convolution weight has shape (out_channels, in_channels, *kernel). Zero padding of
``padding`` elements on both sides of each spatial axis, then windows every ``stride``
elements; an axis of size n gives (n + 2 padding - kernel) // stride + 1 outputs.

How a convolution becomes one matrix product (im2col). After padding, the window of output
position p is the block x[:, :, p*stride : p*stride + kernel] of every channel. A strided *view*
of the padded input (``_windows``: no copy) has shape (batch, channels, *out, *kernel); copying it
once into the matrix ``columns`` of shape (batch * positions, channels * prod(kernel)), one row
per output position, makes the convolution

    out[(b, p), o] = sum_{c, k} columns[(b, p), (c, k)] * weight[o, (c, k)]   (+ bias[o])

a single matrix product. Backward is two more products: grad_weight = g^T columns and
grad_columns = g weight. col2im sends grad_columns back to the input: each entry goes to the
input element its row read, so the loop runs over the prod(kernel) offsets of a window (9 for a
3x3 kernel) and adds a strided slice each time; every other axis is vectorized.

Pooling uses the same windows: max pooling passes the gradient to the first maximum of each
window (as PyTorch does), average pooling spreads it evenly (padding counts as zeros, PyTorch's
``count_include_pad=True``). ``global_avg_pool`` and ``flatten`` are compositions of existing ops.

Every function checks its shapes and raises one ValueError that names the caller (``name``, the
layer) and the shapes involved.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor

__all__ = [
    "avg_pool",
    "conv",
    "flatten",
    "global_avg_pool",
    "im2col",
    "max_pool",
    "output_shape",
    "per_example_weight_gradients",
]

IntOrTuple = int | Sequence[int]


def as_tuple(value: IntOrTuple, dims: int, what: str, low: int = 1) -> tuple[int, ...]:
    """``value`` (an int or one int per spatial axis) as a tuple of ``dims`` integers >= ``low``."""
    values = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != dims or any(isinstance(v, bool) or int(v) != v or v < low for v in values):
        raise ValueError(f"{what} must be an integer >= {low} or {dims} of them, got {value!r}")
    return tuple(int(v) for v in values)


def output_shape(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[int, ...]:
    """The spatial output shape: (n + 2 padding - kernel) // stride + 1 per axis."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True))


def _check_input(
    name: str, x: Tensor, dims: int, kernel: tuple[int, ...], padding: tuple[int, ...], what: str
) -> None:
    """One message naming the layer and both shapes for a wrong rank or a kernel that does not
    fit the padded input."""
    axes = ("length",) if dims == 1 else ("height", "width")
    if x.ndim != dims + 2:
        raise ValueError(
            f"{name}: expected an input of shape (batch, channels, {', '.join(axes)}), got shape "
            f"{x.shape} for {what}"
        )
    padded = tuple(n + 2 * p for n, p in zip(x.shape[2:], padding, strict=True))
    if any(k > n for k, n in zip(kernel, padded, strict=True)):
        raise ValueError(
            f"{name}: kernel {kernel} is larger than the input's padded spatial shape {padded} "
            f"(input shape {x.shape}, padding {padding}) for {what}"
        )


def _pad(data: Any, padding: tuple[int, ...], fill: float = 0.0) -> Any:
    """``data`` with ``padding`` elements of ``fill`` on both sides of each spatial axis."""
    if not any(padding):
        return data
    xp = backend.get_array_module(data)
    shape = data.shape[:2] + tuple(n + 2 * p for n, p in zip(data.shape[2:], padding, strict=True))
    padded = xp.full(shape, fill, dtype=data.dtype)
    padded[_interior(data.shape[2:], padding)] = data
    return padded


def _interior(size: Sequence[int], padding: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of the unpadded region inside a padded array."""
    return (slice(None), slice(None), *(slice(p, p + n) for n, p in zip(size, padding, strict=True)))


def _windows(padded: Any, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]) -> Any:
    """A read-only strided view of shape (batch, channels, *out, *kernel): element
    [b, c, p, k] is padded[b, c, p * stride + k]. No copy."""
    xp = backend.get_array_module(padded)
    spatial = padded.strides[2:]
    strides = padded.strides[:2] + tuple(s * t for s, t in zip(spatial, stride, strict=True)) + spatial
    return xp.lib.stride_tricks.as_strided(padded, padded.shape[:2] + out + kernel, strides)


def _col2im(
    padded_shape: tuple[int, ...],
    dtype: Any,
    xp: Any,
    piece: Callable[[tuple[int, ...]], Any],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    out: tuple[int, ...],
) -> Any:
    """The gradient of a padded input from per-window gradients: for every kernel offset k,
    ``piece(k)`` (shape (batch, channels, *out)) is added at padded[:, :, p * stride + k]."""
    grad = xp.zeros(padded_shape, dtype=dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(slice(k, k + s * (n - 1) + 1, s) for k, s, n in zip(offset, stride, out, strict=True))
        grad[(slice(None), slice(None), *index)] += piece(offset)
    return grad


def _im2col(padded: Any, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]) -> Any:
    """The windows of a padded input as a (batch, positions, channels * prod(kernel)) array: row
    (b, p) holds the window that output position p of example b reads (one copy of the view)."""
    dims = len(kernel)
    spatial_axes = tuple(range(2, 2 + dims))
    order = (0, *spatial_axes, 1, *(a + dims for a in spatial_axes))  # (b, *p, c, *k)
    windows = _windows(padded, kernel, stride, out).transpose(order)
    return windows.reshape(padded.shape[0], math.prod(out), -1)


def im2col(x: Any, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: IntOrTuple = 0) -> Any:
    """The im2col matrix of an array x (batch, channels, *spatial): shape (batch, positions,
    channels * prod(kernel)), row p of example b being the window output p reads (zero padded).
    ``conv`` multiplies its rows by the weight; variance tracking uses it for per-example weight
    gradients (example b's gradient is g_b^T im2col(x)_b, g_b of shape (positions, out))."""
    dims = x.ndim - 2
    kernel = as_tuple(kernel_size, dims, "kernel_size")
    stride, padding = as_tuple(stride, dims, "stride"), as_tuple(padding, dims, "padding", low=0)
    out = output_shape(x.shape[2:], kernel, stride, padding)
    return _im2col(_pad(x, padding), kernel, stride, out)


def per_example_weight_gradients(
    x: Any, g: Any, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: IntOrTuple = 0
) -> Any:
    """Example b's contribution g_b^T im2col(x)_b to a convolution's weight gradient, for every b
    at once (one batched matrix product, no loop over examples): an array (batch, out,
    in * prod(kernel)) whose sum over b is the weight gradient, for the input array x and the
    gradient array g of the output (batch, out, *positions)."""
    columns = im2col(x, kernel_size, stride, padding)  # (batch, positions, in * prod(kernel))
    return g.reshape(g.shape[0], g.shape[1], -1) @ columns


def _unpad(grad: Any, size: Sequence[int], padding: tuple[int, ...]) -> Any:
    return grad[_interior(size, padding)] if any(padding) else grad


def conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    name: str = "conv",
) -> Tensor:
    """Cross-correlation of x (batch, in, *spatial) with weight (out, in, *kernel), plus bias
    (out,): PyTorch's conv1d/conv2d with groups=1 and dilation 1, as one graph node (im2col)."""
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ValueError(
            f"{name}: weight must have shape (out, in, *kernel) with 1 or 2 kernel axes, got {weight.shape}"
        )
    kernel = tuple(weight.shape[2:])
    stride, padding = as_tuple(stride, dims, "stride"), as_tuple(padding, dims, "padding", low=0)
    what = f"weight of shape {weight.shape}"
    _check_input(name, x, dims, kernel, padding, what)
    batch, channels, *size = x.shape
    out_channels = weight.shape[0]
    if channels != weight.shape[1]:
        raise ValueError(
            f"{name}: input of shape {x.shape} has {channels} channels but the weight of shape "
            f"{weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{name}: bias must have shape ({out_channels},), got {bias.shape}")
    out = output_shape(size, kernel, stride, padding)
    xp = backend.get_array_module(x.data)
    padded = _pad(x.data, padding)
    columns = _im2col(padded, kernel, stride, out).reshape(-1, weight.data[0].size)
    padded_shape = padded.shape  # backward needs the shape only: the padded copy can go
    del padded
    matrix = weight.data.reshape(out_channels, -1)
    rows = columns @ matrix.T  # (batch * positions, out)
    if bias is not None:
        rows += bias.data
    back = (0, dims + 1, *range(1, dims + 1))  # (b, *p, o) -> (b, o, *p)
    result = xp.ascontiguousarray(rows.reshape(batch, *out, out_channels).transpose(back))
    input_grad, input_dtype = x.requires_grad, x.dtype  # backward keeps no reference to x's data

    def backward(g: Any) -> tuple[Any, ...]:
        g_rows = g.transpose(0, *range(2, 2 + dims), 1).reshape(-1, out_channels)
        gx = gw = gb = None
        if weight.requires_grad:
            gw = (g_rows.T @ columns).reshape(weight.shape).astype(weight.dtype, copy=False)
        if bias is not None and bias.requires_grad:
            gb = g_rows.sum(axis=0).astype(bias.dtype, copy=False)
        if input_grad:
            g_columns = (g_rows @ matrix).reshape(batch, *out, channels, *kernel)
            to_front = (0, dims + 1, *range(1, dims + 1))  # (b, *p, c) -> (b, c, *p)

            def piece(offset: tuple[int, ...]) -> Any:
                return g_columns[(Ellipsis, *offset)].transpose(to_front)

            grad = _col2im(padded_shape, input_dtype, xp, piece, kernel, stride, out)
            gx = _unpad(grad, size, padding)
        return (gx, gw) if bias is None else (gx, gw, gb)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(result, parents, backward, "conv")


def _pool_setup(
    x: Tensor, dims: int, kernel_size: IntOrTuple, stride: IntOrTuple | None, padding: IntOrTuple, name: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, padding, output shape) of a pooling, checked against the input."""
    kernel = as_tuple(kernel_size, dims, "kernel_size")
    stride = kernel if stride is None else as_tuple(stride, dims, "stride")
    padding = as_tuple(padding, dims, "padding", low=0)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    _check_input(name, x, dims, kernel, padding, f"a pooling window of shape {kernel}")
    return kernel, stride, padding, output_shape(x.shape[2:], kernel, stride, padding)


def max_pool(
    x: Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dims: int = 2,
    name: str = "max_pool",
) -> Tensor:
    """The maximum of each window (stride defaults to the kernel; padding is -inf, never
    chosen); backward passes the gradient to the window's first maximum."""
    kernel, stride, padding, out = _pool_setup(x, dims, kernel_size, stride, padding, name)
    xp = backend.get_array_module(x.data)
    padded = _pad(x.data, padding, fill=-math.inf)
    flat = _windows(padded, kernel, stride, out).reshape(*x.shape[:2], *out, -1)
    winner = flat.argmax(axis=-1)
    result = xp.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]
    padded_shape = padded.shape
    del padded, flat

    def backward(g: Any) -> tuple[Any]:
        offsets = {offset: i for i, offset in enumerate(itertools.product(*(range(k) for k in kernel)))}

        def piece(offset: tuple[int, ...]) -> Any:
            return g * (winner == offsets[offset])

        return (_unpad(_col2im(padded_shape, x.dtype, xp, piece, kernel, stride, out), x.shape[2:], padding),)

    return Tensor.from_op(result, (x,), backward, "max_pool")


def avg_pool(
    x: Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dims: int = 2,
    name: str = "avg_pool",
) -> Tensor:
    """The mean of each window (stride defaults to the kernel; zero padding is counted)."""
    kernel, stride, padding, out = _pool_setup(x, dims, kernel_size, stride, padding, name)
    xp = backend.get_array_module(x.data)
    padded = _pad(x.data, padding)
    count = math.prod(kernel)
    window_axes = tuple(range(2 + dims, 2 + 2 * dims))
    result = _windows(padded, kernel, stride, out).sum(axis=window_axes) / count
    padded_shape = padded.shape
    del padded

    def backward(g: Any) -> tuple[Any]:
        share = g / count
        grad = _col2im(padded_shape, x.dtype, xp, lambda offset: share, kernel, stride, out)
        return (_unpad(grad, x.shape[2:], padding),)

    return Tensor.from_op(result.astype(x.dtype, copy=False), (x,), backward, "avg_pool")


def global_avg_pool(x: Tensor, name: str = "global_avg_pool") -> Tensor:
    """The mean over every spatial axis: (batch, channels, *spatial) -> (batch, channels)."""
    if x.ndim < 3:
        raise ValueError(
            f"{name}: expected an input of shape (batch, channels, *spatial), got shape {x.shape}"
        )
    return ops.mean(x, axis=tuple(range(2, x.ndim)))


def flatten(x: Tensor, start_dim: int = 1) -> Tensor:
    """x with the axes from ``start_dim`` on merged into one: (batch, ...) -> (batch, features)."""
    if not 0 <= start_dim < max(x.ndim, 1):
        raise ValueError(f"flatten: start_dim {start_dim} is out of range for an input of shape {x.shape}")
    return ops.reshape(x, (*x.shape[:start_dim], -1))
