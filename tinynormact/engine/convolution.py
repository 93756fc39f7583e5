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

The fast path (``conv``; ``conv_im2col`` above is the teaching path and the tests' reference).
Copying the windows is what costs in im2col, and small matrix products (16 or 32 output
channels) run far below the machine's sgemm rate. So, for stride 1, ``conv`` copies only the
kernel-height shifted copies of the padded input ("shifted rows": for a 3x3 kernel, 3 copies
instead of 9) and leaves the offsets j along the last axis to the product: with rows[(c, i),
(b, q, w)] = padded[b, c, q + i, w] over the padded width w,

    products[(j, o), (b, q, w)] = sum_{c, i} weight[o, c, i, j] * rows[(c, i), (b, q, w)]
    out[b, o, q, w] = sum_j products[(j, o), (b, q, w + j)]      (w < output width)

one matrix product with kernel-height times the input channels as its inner dimension and
kernel-width times the output channels as its rows (a squarer product, which BLAS runs
faster), then kernel-width additions of contiguous shifted slices. The columns (b, q, w) run
on from one padded row into the next, so a row needs its padding p along the last axis on one
side only (``_ShiftedRows``): the p zeros that lead the next row are the ones this row's last
outputs read past its end. A padded row is then width + p columns, not width + 2p, and only
p columns of each output row are computed and dropped (for 8 x 8 maps and p = 1, one
column in 9 instead of two in 10). The weight gradient is one product of the output gradient,
copied kernel-width times and moved by j columns, with the rows. Where the
products would be wider than the rows (few input channels, as in a network's first layer; for
a 1-D kernel, fewer input channels than kernel x output channels), and for strides above 1,
``conv`` copies the im2col columns instead, a cache-sized chunk of examples at a time,
transposed so that the copy runs along output rows. The input gradient of a stride-1
convolution is a stride-1 convolution of the output gradient with the flipped kernel, so it
takes the same two ways; a strided one is col2im. The batch goes in chunks of examples
(``CHUNK_ELEMENTS``) so that each chunk's copies and products stay in a core's cache, and each
chunk is zero padded where it is used: no padded copy of the whole batch is made, and backward
keeps the input's own array (a third less memory per ResNet-20 step, and far fewer fresh pages
for the operating system to map, docs/benchmarks.md). The shifted rows' arrays (the padded
chunk, the rows, the products) and the views between them are made once per call and refilled
chunk after chunk (``_ShiftedRows``): a chunk then costs its copies and products, and few
Python steps.

Pooling uses the same windows: max pooling passes the gradient to the first maximum of each
window (as PyTorch does), average pooling spreads it evenly (padding counts as zeros, PyTorch's
``count_include_pad=True``). ``global_avg_pool`` and ``flatten`` are compositions of existing ops.

Every function checks its shapes and raises one ValueError that names the caller (``name``, the
layer) and the shapes involved.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.infra.validation import integer_range, is_integer

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
    values = (value,) * dims if is_integer(value) else tuple(value) if isinstance(value, Sequence) else ()
    if len(values) != dims or not all(is_integer(v) and v >= low for v in values):
        raise ValueError(f"{what} must be {integer_range(low)} or {dims} of them, got {value!r}")
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
    """``data`` with ``padding`` elements of ``fill`` before and after each spatial axis."""
    if not any(padding):
        return data
    xp = backend.get_array_module(data)
    shape = data.shape[:2] + tuple(n + 2 * p for n, p in zip(data.shape[2:], padding, strict=True))
    padded = xp.zeros(shape, dtype=data.dtype) if fill == 0 else xp.full(shape, fill, dtype=data.dtype)
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
    _add_windows(grad, piece, kernel, stride, out)
    return grad


def _add_windows(
    grad: Any,
    piece: Callable[[tuple[int, ...]], Any],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    out: tuple[int, ...],
) -> None:
    """col2im in place: add ``piece(k)`` at grad[:, :, p * stride + k] for every offset k."""
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(slice(k, k + s * (n - 1) + 1, s) for k, s, n in zip(offset, stride, out, strict=True))
        grad[(slice(None), slice(None), *index)] += piece(offset)


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


def _check_channels(name: str, x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """x's channels must be the weight's input channels, the bias one value per output channel."""
    channels, out_channels = x.shape[1], weight.shape[0]
    if channels != weight.shape[1]:
        raise ValueError(
            f"{name}: input of shape {x.shape} has {channels} channels but the weight of shape "
            f"{weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{name}: bias must have shape ({out_channels},), got {bias.shape}")


def _conv_setup(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: IntOrTuple, padding: IntOrTuple, name: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, padding, output shape) of a convolution, its shapes checked."""
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ValueError(
            f"{name}: weight must have shape (out, in, *kernel) with 1 or 2 kernel axes, got {weight.shape}"
        )
    kernel = tuple(weight.shape[2:])
    stride, padding = as_tuple(stride, dims, "stride"), as_tuple(padding, dims, "padding", low=0)
    _check_input(name, x, dims, kernel, padding, f"weight of shape {weight.shape}")
    _check_channels(name, x, weight, bias)
    return kernel, stride, padding, output_shape(x.shape[2:], kernel, stride, padding)


def conv_im2col(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    name: str = "conv",
) -> Tensor:
    """``conv`` the teaching way: the whole batch's im2col matrix and one matrix product (module
    docstring). Slower than ``conv`` (the copy of the windows dominates); the reference the
    tests hold ``conv`` to."""
    kernel, stride, padding, out = _conv_setup(x, weight, bias, stride, padding, name)
    dims = len(kernel)
    batch, channels, *size = x.shape
    out_channels = weight.shape[0]
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


# The columns of one chunk of examples: 128 Ki elements (512 KiB of float32), within a core's
# L2 cache, so each chunk's copy and its matrix products run from cache. The weight gradients
# sum their chunks' products in this order, so this size also fixes their float32 rounding.
CHUNK_ELEMENTS = 1 << 17


def _chunks(batch: int, rows: int, positions: int) -> list[slice]:
    """Consecutive slices of the batch whose columns (rows x examples * positions) fit a chunk."""
    size = max(1, min(batch, CHUNK_ELEMENTS // (rows * positions)))
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]


def _channel_rows(windows: Any) -> Any:
    """The im2col matrix of a chunk, transposed: (channels * prod(kernel), batch * positions)
    from its windows (batch, channels, *out, *kernel), row (c, k) and column (b, p) holding
    padded[b, c, p * stride + k]. Its copy's innermost loop runs along an output row
    (contiguous for stride 1), not along a kernel row."""
    dims = (windows.ndim - 2) // 2
    order = (1, *range(2 + dims, 2 + 2 * dims), 0, *range(2, 2 + dims))  # (c, *k, b, *p)
    return windows.transpose(order).reshape(windows.shape[1] * math.prod(windows.shape[2 + dims :]), -1)


def _correlate(
    x: Any,
    padding: tuple[int, ...],
    matrix: Any,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    out: tuple[int, ...],
) -> Any:
    """result[b, o, p] = sum over (c, k) of matrix[o, (c, k)] padded[b, c, p * stride + k], with
    padded the input ``x`` zero padded, one chunk of examples at a time (each padded on its own):
    matrix @ ``_channel_rows`` of the chunk."""
    xp = backend.get_array_module(x)
    batch, out_channels, positions = x.shape[0], matrix.shape[0], math.prod(out)
    result = xp.empty((batch, out_channels, *out), dtype=xp.result_type(x.dtype, matrix.dtype))
    flat = result.reshape(batch, out_channels, positions)
    for chunk in _chunks(batch, matrix.shape[1], positions):
        windows = _windows(_pad(x[chunk], padding), kernel, stride, out)
        # ((b, p), out): BLAS runs this orientation faster than matrix @ columns for few outputs
        rows = _channel_rows(windows).T @ matrix.T
        flat[chunk] = rows.reshape(-1, positions, out_channels).swapaxes(1, 2)
    return result


def _tap_matrix(weight: Any) -> Any:
    """The weight as the matrix that multiplies the shifted rows: (kernel[-1] * out, in *
    prod(kernel[:-1])), entry ((j, o), (c, i)) = weight[o, c, i, j], j the tap along the last axis."""
    dims = weight.ndim - 2
    order = (1 + dims, 0, 1, *range(2, 1 + dims))  # (j, o, c, *i)
    return weight.transpose(order).reshape(weight.shape[-1] * weight.shape[0], -1)


def _trailing_zeros(padding: tuple[int, ...], kernel: tuple[int, ...]) -> int:
    """The zeros after each row of the last axis in the padded chunk of ``_ShiftedRows``: none
    unless the padding is at least the kernel (an output row must fit in a padded row)."""
    return max(0, padding[-1] - kernel[-1] + 1)


class _ShiftedRows:
    """The rows a stride-1 convolution multiplies (module docstring), for chunks of ``examples``
    examples of an input like ``x``: (channels * prod(kernel[:-1]), examples * prod(out[:-1]) *
    width), width the padded last axis, row (c, i) and column (b, q, w) holding padded[b, c, q +
    i, w] (i and q over every spatial axis but the last). ``fill(part)`` copies a chunk into a
    zero-padded array and its rows out of it. Both arrays, and the view between them, are made
    once and refilled chunk after chunk: the zeros are written once, and a chunk costs two
    copies and no new array. Each row of the last axis has its padding before it only (module
    docstring: the next row's leading zeros are this row's trailing padding)."""

    def __init__(
        self, x: Any, examples: int, padding: tuple[int, ...], kernel: tuple[int, ...], out: tuple[int, ...]
    ) -> None:
        xp = backend.get_array_module(x)
        size, lead = x.shape[2:], len(kernel) - 1
        self.width = size[-1] + padding[-1] + _trailing_zeros(padding, kernel)
        heights = tuple(n + 2 * p for n, p in zip(size[:-1], padding[:-1], strict=True))
        padded = xp.zeros((examples, x.shape[1], *heights, self.width), dtype=x.dtype)
        self._interior = padded[_interior(size, padding)]
        spatial = padded.strides[2 : 2 + lead]
        view = xp.lib.stride_tricks.as_strided(
            padded,
            (examples, x.shape[1], *out[:-1], *kernel[:-1], self.width),
            (*padded.strides[:2], *spatial, *spatial, padded.strides[-1]),
        )
        order = (1, *range(2 + lead, 2 + 2 * lead), 0, *range(2, 2 + lead), 2 + 2 * lead)  # (c, *i, b, *q, w)
        self._view = view.transpose(order)
        self.rows = xp.empty(
            (x.shape[1] * math.prod(kernel[:-1]), examples * math.prod(out[:-1]) * self.width), dtype=x.dtype
        )
        self._rows_by_axis = self.rows.reshape(self._view.shape)

    def fill(self, part: Any) -> Any:
        """The rows of ``part``, a chunk of ``examples`` examples of the input."""
        self._interior[...] = part
        self._rows_by_axis[...] = self._view
        return self.rows


def _row_chunks(
    x: Any, padding: tuple[int, ...], kernel: tuple[int, ...], out: tuple[int, ...]
) -> list[slice]:
    """Chunks of examples of the input ``x`` whose shifted rows fit ``CHUNK_ELEMENTS``."""
    rows = x.shape[1] * math.prod(kernel[:-1])
    width = x.shape[-1] + padding[-1] + _trailing_zeros(padding, kernel)
    return _chunks(x.shape[0], rows, math.prod(out[:-1]) * width)


def _planned_chunks(
    x: Any,
    padding: tuple[int, ...],
    kernel: tuple[int, ...],
    out: tuple[int, ...],
    plan: Callable[[int], Callable[..., Any]],
) -> Iterator[tuple[slice, Callable[..., Any]]]:
    """(chunk, its plan) for each of ``_row_chunks``: ``plan(examples)`` makes the arrays and
    views of a chunk of that many examples, once per size (the chunks' sizes are all the same
    but the last's)."""
    plans: dict[int, Callable[..., Any]] = {}
    for chunk in _row_chunks(x, padding, kernel, out):
        examples = chunk.stop - chunk.start
        if examples not in plans:
            plans[examples] = plan(examples)
        yield chunk, plans[examples]


def _chunk_correlation(
    x: Any,
    examples: int,
    padding: tuple[int, ...],
    matrix: Any,
    kernel: tuple[int, ...],
    out: tuple[int, ...],
) -> Callable[[Any], Any]:
    """``correlate(part)``: the correlation (examples, out_channels, *out) of a chunk of ``x``
    with the tap ``matrix``, as a view into arrays made here once: the products matrix @ rows,
    whose taps are added into their first tap's rows in place (``_correlate_stride1``)."""
    xp = backend.get_array_module(x)
    shifted = _ShiftedRows(x, examples, padding, kernel, out)
    taps, out_channels = kernel[-1], matrix.shape[0] // kernel[-1]
    products = xp.empty((matrix.shape[0], shifted.rows.shape[1]), dtype=xp.result_type(x.dtype, matrix.dtype))
    # products[j, o, n]: tap j's contribution, due at column n - j of the output rows
    by_tap = products.reshape(taps, out_channels, -1)
    sums = [(by_tap[0, :, :-j], by_tap[j, :, j:]) for j in range(1, taps)]
    # the last taps - 1 columns of each output row held no output
    wide = by_tap[0].reshape(out_channels, examples, *out[:-1], shifted.width)
    result = wide[..., : out[-1]].swapaxes(0, 1)  # (examples, out_channels, *out)

    def correlate(part: Any) -> Any:
        xp.matmul(matrix, shifted.fill(part), out=products)
        for total, tap in sums:
            total += tap
        return result

    return correlate


def _correlate_stride1(x: Any, padding: tuple[int, ...], weight: Any, out: tuple[int, ...]) -> Any:
    """result[b, o, p] = sum over (c, k) of weight[o, c, k] padded[b, c, p + k] for stride 1,
    with padded the input ``x`` zero padded, by shifted rows (module docstring, "The fast
    path"), one chunk of examples at a time."""
    xp = backend.get_array_module(x)
    kernel, matrix = weight.shape[2:], _tap_matrix(weight)
    result = xp.empty((x.shape[0], weight.shape[0], *out), dtype=xp.result_type(x.dtype, weight.dtype))
    plan = lambda examples: _chunk_correlation(x, examples, padding, matrix, kernel, out)  # noqa: E731
    for chunk, correlate in _planned_chunks(x, padding, kernel, out, plan):
        result[chunk] = correlate(x[chunk])
    return result


def _chunk_weight_gradient(
    g: Any, x: Any, examples: int, padding: tuple[int, ...], kernel: tuple[int, ...]
) -> Callable[[Any, Any], Any]:
    """``product(x_part, g_part)``: a chunk's term of ``_weight_gradient_stride1``, ((c, *i), (j,
    o)), as an array made here once, as are the rows and the gradient moved by each tap j."""
    xp = backend.get_array_module(g)
    taps, out_channels, out = kernel[-1], g.shape[1], g.shape[2:]
    shifted = _ShiftedRows(x, examples, padding, kernel, out)
    columns = shifted.rows.shape[1]
    # taps - 1 spare rows: the last output row moved by j may run past the products' end
    moved = xp.zeros((columns + taps - 1, taps, out_channels), dtype=g.dtype)
    # tap j's gradient at column (b, *q) x padded width + w + j (its zeros stay where they are)
    grids = [
        moved[j : j + columns, j].reshape(examples, *out[:-1], shifted.width, out_channels)[..., : out[-1], :]
        for j in range(taps)
    ]
    term = xp.empty((shifted.rows.shape[0], taps * out_channels), dtype=xp.result_type(x.dtype, g.dtype))

    def product(x_part: Any, g_part: Any) -> Any:
        channels_last = xp.ascontiguousarray(xp.moveaxis(g_part, 1, -1))  # (b, *q, w, o)
        for grid in grids:
            grid[...] = channels_last
        return xp.matmul(shifted.fill(x_part), moved[:columns].reshape(columns, -1), out=term)

    return product


def _weight_gradient_stride1(g: Any, x: Any, padding: tuple[int, ...], kernel: tuple[int, ...]) -> Any:
    """The weight gradient (out, in, *kernel) of ``_correlate_stride1``: the sum over chunks of
    the shifted rows times the gradient of the products (g moved to column n + j for tap j),
    the latter built transposed, (columns, (j, o)): OpenBLAS runs that product up to 1.4 x
    faster than gradient @ rows^T for these shapes (16-64 channels, a long inner dimension)."""
    gw = None
    plan = lambda examples: _chunk_weight_gradient(g, x, examples, padding, kernel)  # noqa: E731
    for chunk, product in _planned_chunks(x, padding, kernel, g.shape[2:], plan):
        term = product(x[chunk], g[chunk])  # refilled by the next chunk: summed now
        if gw is None:
            gw = term.copy()
        else:
            gw += term
    lead, taps = len(kernel) - 1, kernel[-1]
    order = (lead + 2, 0, *range(1, lead + 1), lead + 1)  # (c, *i, j, o) -> (o, c, *i, j)
    return gw.reshape(x.shape[1], *kernel[:-1], taps, g.shape[1]).transpose(order)


def _by_shifted_rows(weight_shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Whether a convolution takes the shifted rows: stride 1, and the rows (in * prod(kernel[:-1])
    per column) at least as many as the products (kernel[-1] * out per column), which are the
    extra memory traffic: few input channels take im2col, and so does a 1-D kernel unless
    in >= kernel x out)."""
    out_channels, in_channels, *kernel = weight_shape
    return all(s == 1 for s in stride) and in_channels * math.prod(kernel[:-1]) >= kernel[-1] * out_channels


def _correlate_any(
    x: Any, padding: tuple[int, ...], weight: Any, stride: tuple[int, ...], out: tuple[int, ...]
) -> Any:
    """The correlation of ``x`` zero padded by ``padding`` with ``weight`` (out, in, *kernel):
    shifted rows where they pay (``_by_shifted_rows``), else im2col by chunks."""
    if _by_shifted_rows(weight.shape, stride):
        return _correlate_stride1(x, padding, weight, out)
    return _correlate(x, padding, weight.reshape(weight.shape[0], -1), weight.shape[2:], stride, out)


def _to_rows(g: Any) -> Any:
    """(batch, out, *p) -> (out, batch * positions): the output gradient as matrix rows."""
    return g.reshape(g.shape[0], g.shape[1], -1).swapaxes(0, 1).reshape(g.shape[1], -1)


def _column_pieces(g_columns: Any) -> Callable[[tuple[int, ...]], Any]:
    """``piece`` for ``_add_windows`` from a chunk's column gradients (channels, *kernel, batch,
    *out): offset k's (batch, channels, *out) slice."""
    return lambda offset: g_columns[(slice(None), *offset)].swapaxes(0, 1)


def _gradients_by_chunks(
    g: Any,
    x: Any,
    padding: tuple[int, ...],
    matrix: Any,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    weight_grad: bool,
    scatter: bool,
) -> tuple[Any, Any]:
    """(weight gradient (out, (c, k)) or None, padded input gradient or None): per chunk of
    examples, gw += g @ columns^T with the chunk's columns rebuilt (from the chunk of the input
    ``x``, padded) when ``weight_grad``, and the col2im of matrix^T @ g added into the padded
    input's gradient when ``scatter``."""
    xp = backend.get_array_module(g)
    out, channels = g.shape[2:], x.shape[1]
    gw = xp.zeros(matrix.shape[::-1], dtype=g.dtype) if weight_grad else None  # transposed
    padded_shape = x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], padding, strict=True))
    grad = xp.zeros(padded_shape, dtype=g.dtype) if scatter else None
    for chunk in _chunks(g.shape[0], matrix.shape[1], math.prod(out)):
        g_rows = _to_rows(g[chunk])
        if weight_grad:
            windows = _windows(_pad(x[chunk], padding), kernel, stride, out)
            gw += _channel_rows(windows) @ g_rows.T  # up to 2x faster than g @ columns^T
        if scatter:
            g_columns = (matrix.T @ g_rows).reshape(channels, *kernel, -1, *out)
            _add_windows(grad[chunk], _column_pieces(g_columns), kernel, stride, out)
    return (None if gw is None else gw.T), grad


def _input_gradient_by_correlation(g: Any, weight: Any, padding: tuple[int, ...]) -> Any:
    """The input gradient of a stride-1 convolution as a convolution itself: g zero padded by
    kernel - 1 - padding, correlated with the flipped kernel with in and out swapped
    (gx[b, c, h] = sum over o, k of w[o, c, k] g[b, o, h + padding - k])."""
    kernel = weight.shape[2:]
    flipped = weight.swapaxes(0, 1)[(slice(None), slice(None), *(slice(None, None, -1) for _ in kernel))]
    reach = tuple(k - 1 - p for k, p in zip(kernel, padding, strict=True))
    size = tuple(n - k + 1 + 2 * r for n, k, r in zip(g.shape[2:], kernel, reach, strict=True))
    return _correlate_any(g, reach, flipped, (1,) * len(kernel), size)


def conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    name: str = "conv",
) -> Tensor:
    """Cross-correlation of x (batch, in, *spatial) with weight (out, in, *kernel), plus bias
    (out,): PyTorch's conv1d/conv2d with groups=1 and dilation 1, as one graph node.

    Shifted rows or im2col by chunks of examples, each chunk padded where it is used (module
    docstring, "The fast path"); backward keeps the input's array, no copy of it. Same numbers as
    ``conv_im2col`` up to float rounding."""
    kernel, stride, padding, out = _conv_setup(x, weight, bias, stride, padding, name)
    data = x.data  # all that backward keeps of x
    result = _correlate_any(data, padding, weight.data, stride, out)
    if bias is not None:
        result += bias.data.reshape(-1, *(1,) * len(out))
    # stride 1 and padding < kernel: the input gradient is a convolution of g (no col2im)
    by_correlation = all(s == 1 for s in stride) and all(p < k for p, k in zip(padding, kernel, strict=True))
    by_rows = _by_shifted_rows(weight.shape, stride)
    input_grad, input_dtype, size = x.requires_grad, x.dtype, x.shape[2:]

    def backward(g: Any) -> tuple[Any, ...]:
        gx = gw = gb = None
        scatter = input_grad and not by_correlation
        chunk_gw = weight.requires_grad and not by_rows
        if weight.requires_grad and by_rows:
            gw = _weight_gradient_stride1(g, data, padding, kernel)
        if chunk_gw or scatter:
            matrix = weight.data.reshape(weight.shape[0], -1)  # (out, (c, k)), the columns' row order
            chunk_gw, grad = _gradients_by_chunks(g, data, padding, matrix, kernel, stride, chunk_gw, scatter)
            gw = gw if chunk_gw is None else chunk_gw.reshape(weight.shape)
            gx = None if grad is None else _unpad(grad, size, padding)
        if input_grad and by_correlation:
            gx = _input_gradient_by_correlation(g, weight.data, padding)
        gw = None if gw is None else gw.astype(weight.dtype, copy=False)
        gx = None if gx is None else gx.astype(input_dtype, copy=False)
        if bias is None:
            return gx, gw
        if bias.requires_grad:
            gb = g.sum(axis=(0, *range(2, g.ndim))).astype(bias.dtype, copy=False)
        return gx, gw, gb

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
