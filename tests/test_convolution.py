"""Convolution, pooling and batch norm ops: forward against naive loops written here, backward
against finite differences (float64), over a catalogue of shapes, strides and paddings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host, leaf
from tinynormact.engine import convolution
from tinynormact.engine.batch_norm import batch_norm

# (input shape, kernel, stride, padding): odd sizes, unequal axes, strides that skip elements,
# kernels 1, 3 and 5, padding 0, 1 and 2 (stride 1 with padding >= kernel takes col2im)
CONV_CASES = [
    ((2, 3, 7), (4, 3, 3), 1, 0),
    ((2, 3, 7), (4, 3, 3), 2, 1),
    ((1, 2, 9), (3, 2, 4), 3, 2),
    ((3, 1, 5), (2, 1, 5), 1, 2),
    ((2, 3, 6), (2, 3, 1), 1, 2),
    ((2, 2, 5, 7), (3, 2, 3, 3), 1, 1),
    ((2, 3, 6, 5), (2, 3, 3, 2), 2, 0),
    ((1, 2, 7, 7), (2, 2, 3, 5), (2, 1), (1, 2)),
    ((2, 1, 4, 4), (3, 1, 1, 1), 2, 0),
    ((2, 2, 7, 6), (3, 2, 5, 5), 1, 2),
    ((1, 2, 9, 8), (2, 2, 5, 3), 2, (2, 1)),
    # more input than output channels: the fast path takes its shifted rows (``_by_shifted_rows``)
    ((2, 5, 6, 7), (2, 5, 3, 2), 1, 1),
    ((3, 4, 5, 6), (1, 4, 2, 3), 1, (0, 2)),
    ((2, 7, 6), (2, 7, 3), 1, 1),
    ((2, 4, 4, 5), (1, 4, 1, 3), 1, (1, 3)),
    # a kernel taller than input + padding on one side: the first output rows read only zeros
    ((2, 8, 5, 7), (2, 8, 12, 3), 1, (4, 1)),
    # no padding: each chunk's rows are read from the input itself
    ((3, 6, 5, 6), (2, 6, 3, 3), 1, 0),
]
# the fast path and the teaching path (one im2col matrix)
CONVOLUTIONS = [convolution.conv, convolution.conv_im2col]
# the fast path's two ways for stride 1, each forced on every case: shifted rows, im2col by chunks
FAST_WAYS = {
    "shifted rows": lambda weight_shape, stride: all(s == 1 for s in stride),
    "im2col chunks": lambda weight_shape, stride: False,
}


def naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, padding) -> np.ndarray:
    """out[n, o, p] = sum_{c, k} xpad[n, c, p * stride + k] w[o, c, k] + b[o], by loops."""
    dims = w.ndim - 2
    stride = (stride,) * dims if isinstance(stride, int) else stride
    padding = (padding,) * dims if isinstance(padding, int) else padding
    xpad = np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)])
    kernel = w.shape[2:]
    out_shape = [(n - k) // s + 1 for n, k, s in zip(xpad.shape[2:], kernel, stride, strict=True)]
    out = np.zeros((x.shape[0], w.shape[0], *out_shape))
    for n, o in itertools.product(range(x.shape[0]), range(w.shape[0])):
        for p in itertools.product(*(range(m) for m in out_shape)):
            total = 0.0 if b is None else b[o]
            for c in range(x.shape[1]):
                for k in itertools.product(*(range(m) for m in kernel)):
                    idx = tuple(pi * si + ki for pi, si, ki in zip(p, stride, k, strict=True))
                    total += xpad[(n, c, *idx)] * w[(o, c, *k)]
            out[(n, o, *p)] = total
    return out


@pytest.mark.parametrize("conv", CONVOLUTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_forward_matches_loops_and_backward_matches_finite_differences(
    conv, case, with_bias: bool
) -> None:
    x_shape, w_shape, stride, padding = case
    x, w = leaf(x_shape, seed=1), leaf(w_shape, seed=2)
    b = leaf((w_shape[0],), seed=3) if with_bias else None
    out = conv(x, w, b, stride, padding)
    expected = naive_conv(host(x), host(w), None if b is None else host(b), stride, padding)
    np.testing.assert_allclose(host(out), expected, rtol=1e-12, atol=1e-12)
    assert out.data.flags.c_contiguous
    inputs = (x, w) if b is None else (x, w, b)
    assert tn.gradcheck(lambda *t: conv(*t, stride=stride, padding=padding), *inputs)


@pytest.mark.parametrize("way", FAST_WAYS)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_both_ways_of_the_fast_conv_match_loops_and_finite_differences(
    way: str, case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shifted rows and im2col by chunks, each forced wherever it applies (stride 1; the input
    gradient too, a stride-1 correlation), against the loops and float64 finite differences."""
    monkeypatch.setattr(convolution, "_by_shifted_rows", FAST_WAYS[way])
    x_shape, w_shape, stride, padding = case
    x, w, b = leaf(x_shape, seed=1), leaf(w_shape, seed=2), leaf((w_shape[0],), seed=3)
    out = convolution.conv(x, w, b, stride, padding)
    np.testing.assert_allclose(
        host(out), naive_conv(host(x), host(w), host(b), stride, padding), rtol=1e-12, atol=1e-12
    )
    assert tn.gradcheck(lambda *t: convolution.conv(*t, stride=stride, padding=padding), x, w, b)


def test_the_cases_reach_both_ways_of_the_fast_conv() -> None:
    """Unforced, the catalogue takes shifted rows for some stride-1 cases and im2col for others."""
    ways = {
        convolution._by_shifted_rows(w_shape, convolution.as_tuple(stride, len(w_shape) - 2, "stride"))
        for _, w_shape, stride, _ in CONV_CASES
    }
    assert ways == {True, False}


def test_loops_catch_shifted_rows_with_the_taps_reversed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison with the loops can fail: shifted rows whose weight matrix takes the taps
    along the last axis in reverse order give another output."""
    original = convolution._tap_matrix
    monkeypatch.setattr(convolution, "_tap_matrix", lambda w: original(w[..., ::-1]))
    x, w = leaf((2, 5, 6, 7), seed=1), leaf((2, 5, 3, 2), seed=2)
    out = convolution.conv(x, w, None, 1, 1)
    assert convolution._by_shifted_rows(w.shape, (1, 1))
    assert not np.allclose(host(out), naive_conv(host(x), host(w), None, 1, 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("way", FAST_WAYS)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_fast_conv_equals_im2col_across_chunks(way: str, case, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chunks of 2 examples (7 examples: 3 full chunks and a remainder of 1; within a chunk
    the shifted rows run from one example into the next) the fast path gives the one-matrix
    im2col's output and all three gradients, to float64 rounding."""
    x_shape, w_shape, stride, padding = case
    x_shape = (7, *x_shape[1:])
    calls = []

    def two_examples(batch: int, rows: int, positions: int) -> list[slice]:
        calls.append(batch)
        return [slice(start, min(start + 2, batch)) for start in range(0, batch, 2)]

    monkeypatch.setattr(convolution, "_chunks", two_examples)
    monkeypatch.setattr(convolution, "_by_shifted_rows", FAST_WAYS[way])
    results = []
    for conv in CONVOLUTIONS:
        x, w, b = leaf(x_shape, seed=1), leaf(w_shape, seed=2), leaf((w_shape[0],), seed=3)
        out = conv(x, w, b, stride, padding)
        out.backward(np.random.default_rng(4).standard_normal(out.shape))
        results.append([host(t) for t in (out, x.grad, w.grad, b.grad)])
    assert calls  # the fast path went by chunks
    for fast, reference in zip(*results, strict=True):
        np.testing.assert_allclose(fast, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("conv", "stride"), [(convolution.conv_im2col, 1), (convolution.conv, 2)], ids=str)
def test_gradcheck_catches_a_col2im_that_skips_a_kernel_offset(
    conv, stride, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks above can fail: with col2im dropping the gradient of offset 0 (the teaching
    path, and the fast path's strided convolutions), they do."""
    original = convolution._add_windows

    def skipping(grad, piece, kernel, stride, out):
        return original(grad, lambda k: piece(k) * (any(k) or 0.0), kernel, stride, out)

    monkeypatch.setattr(convolution, "_add_windows", skipping)
    x, w = leaf((1, 2, 6), seed=4), leaf((2, 2, 3), seed=5)
    with pytest.raises(tn.GradcheckError):
        tn.gradcheck(lambda *t: conv(*t, stride=stride, padding=1), x, w)


def test_gradcheck_catches_an_input_gradient_with_the_kernel_unflipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path's stride-1 input gradient correlates g with the flipped kernel; flipping it
    back (an unflipped kernel) makes the check fail."""
    original = convolution._input_gradient_by_correlation
    monkeypatch.setattr(
        convolution, "_input_gradient_by_correlation", lambda g, w, p: original(g, w[..., ::-1], p)
    )
    x, w = leaf((2, 2, 6), seed=4), leaf((3, 2, 3), seed=5)
    with pytest.raises(tn.GradcheckError):
        tn.gradcheck(lambda *t: convolution.conv(*t, padding=1), x, w)


def naive_pool(x: np.ndarray, kernel, stride, padding, reduce, fill: float) -> np.ndarray:
    dims = len(kernel)
    xpad = np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)], constant_values=fill)
    out_shape = [(n - k) // s + 1 for n, k, s in zip(xpad.shape[2:], kernel, stride, strict=True)]
    out = np.zeros((*x.shape[:2], *out_shape))
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for p in itertools.product(*(range(m) for m in out_shape)):
            window = xpad[
                (n, c, *(slice(p[i] * stride[i], p[i] * stride[i] + kernel[i]) for i in range(dims)))
            ]
            out[(n, c, *p)] = reduce(window)
    return out


# (input shape, kernel, stride, padding)
POOL_CASES = [
    ((2, 3, 7), (2,), (2,), (0,)),
    ((2, 2, 9), (3,), (2,), (1,)),
    ((1, 2, 5, 7), (2, 2), (2, 2), (0, 0)),
    ((2, 1, 7, 6), (3, 2), (2, 1), (1, 1)),
    ((1, 3, 5, 5), (3, 3), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_matches_loops_and_finite_differences(case) -> None:
    shape, kernel, stride, padding = case
    dims = len(kernel)
    # distinct values: the maximum of every window is unique, so finite differences are exact
    x = tn.Tensor(
        np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0, requires_grad=True
    )
    out = convolution.max_pool(x, kernel, stride, padding, dims)
    np.testing.assert_array_equal(host(out), naive_pool(host(x), kernel, stride, padding, np.max, -np.inf))
    assert tn.gradcheck(lambda t: convolution.max_pool(t, kernel, stride, padding, dims), x, eps=1e-4)


def test_max_pool_gives_a_tie_to_the_first_maximum_only() -> None:
    x = tn.Tensor(np.array([[[1.0, 3.0, 3.0, 0.0]]]), requires_grad=True)
    convolution.max_pool(x, 4, dims=1).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [[[0.0, 1.0, 0.0, 0.0]]])


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool_matches_loops_and_finite_differences(case) -> None:
    shape, kernel, stride, padding = case
    dims = len(kernel)
    x = leaf(shape, seed=6)
    out = convolution.avg_pool(x, kernel, stride, padding, dims)
    np.testing.assert_allclose(
        host(out), naive_pool(host(x), kernel, stride, padding, np.mean, 0.0), rtol=1e-12
    )
    assert tn.gradcheck(lambda t: convolution.avg_pool(t, kernel, stride, padding, dims), x)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 3, 5)], ids=str)
def test_global_avg_pool_and_flatten(shape) -> None:
    x = leaf(shape, seed=7)
    pooled = convolution.global_avg_pool(x)
    expected = np.array([[host(x)[n, c].mean() for c in range(shape[1])] for n in range(shape[0])])
    np.testing.assert_allclose(host(pooled), expected, rtol=1e-12)
    assert tn.gradcheck(convolution.global_avg_pool, x)
    flat = convolution.flatten(x)
    assert flat.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(host(flat)[1], host(x)[1].ravel())
    assert tn.gradcheck(convolution.flatten, x)


def naive_batch_norm(x: np.ndarray, weight, bias, eps: float, stats=None) -> np.ndarray:
    """Per channel, by a loop over channels, with the statistics of all other axes."""
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        values = x[:, c]
        mean, var = (values.mean(), values.var()) if stats is None else (stats[0][c], stats[1][c])
        out[:, c] = (values - mean) / np.sqrt(var + eps) * weight[c] + bias[c]
    return out


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5), (3, 2, 3, 5)], ids=str)
@pytest.mark.parametrize("batch_statistics", [True, False])
def test_batch_norm_matches_loops_and_finite_differences(shape, batch_statistics: bool) -> None:
    x = leaf(shape, seed=8)
    weight, bias = leaf((shape[1],), seed=9), leaf((shape[1],), seed=10)
    rng = np.random.default_rng(11)
    stats = None if batch_statistics else (rng.standard_normal(shape[1]), 0.5 + rng.random(shape[1]))
    y, mean, var = batch_norm(x, weight, bias, 1e-3, stats)
    np.testing.assert_allclose(
        host(y), naive_batch_norm(host(x), host(weight), host(bias), 1e-3, stats), rtol=1e-10, atol=1e-12
    )
    if batch_statistics:
        axes = tuple(a for a in range(len(shape)) if a != 1)
        np.testing.assert_allclose(host(mean), host(x).mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(host(var), host(x).var(axis=axes), rtol=1e-12)
    assert tn.gradcheck(lambda *t: batch_norm(*t, 1e-3, stats)[0], x, weight, bias)


def test_batch_norm_without_affine_parameters() -> None:
    x = leaf((4, 3, 5), seed=12)
    y = batch_norm(x, None, None, 1e-5)[0]
    np.testing.assert_allclose(host(y).mean(axis=(0, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(host(y).var(axis=(0, 2)), 1.0, rtol=1e-4)
    assert tn.gradcheck(lambda t: batch_norm(t, None, None, 1e-5)[0], x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_keeps_the_dtype_of_its_inputs(dtype: str) -> None:
    x = tn.Tensor(np.ones((1, 2, 5)), requires_grad=True, dtype=dtype)
    w = tn.Tensor(np.ones((3, 2, 3)), requires_grad=True, dtype=dtype)
    out = convolution.conv(x, w, padding=1)
    out.sum().backward()
    assert out.dtype == x.grad.dtype == w.grad.dtype == np.dtype(dtype)


@pytest.mark.parametrize("case", CONV_CASES[:2] + CONV_CASES[5:7], ids=str)
def test_per_example_weight_gradients_match_one_backward_per_example(case) -> None:
    """Row b is the weight gradient of example b's own output alone, by B separate backwards."""
    x_shape, w_shape, stride, padding = case
    x, w = leaf(x_shape, seed=1), leaf(w_shape, seed=2)
    g = np.random.default_rng(3).standard_normal(convolution.conv(x, w, None, stride, padding).shape)
    got = convolution.per_example_weight_gradients(host(x), g, w_shape[2:], stride, padding)
    for b in range(x_shape[0]):
        w.grad = None
        mask = np.zeros_like(g)
        mask[b] = g[b]
        convolution.conv(x, w, None, stride, padding).backward(mask)
        np.testing.assert_allclose(got[b].reshape(w.shape), host(w.grad), rtol=1e-12, atol=1e-12)
