"""Every differentiable op: forward against NumPy, backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinynormact as tn
from tests.helpers import host, leaf
from tinynormact import ops

BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((), (2, 3)),
    ((2, 1, 3), (4, 1)),
    ((5,), ()),
]

BINARY = {
    "add": (ops.add, np.add, None),
    "sub": (ops.sub, np.subtract, None),
    "mul": (ops.mul, np.multiply, None),
    "div": (ops.div, np.divide, 0.5),  # divisor kept away from 0
    "pow": (ops.pow, np.power, 0.5),  # base and exponent positive
    "maximum": (ops.maximum, np.maximum, None),
    "minimum": (ops.minimum, np.minimum, None),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_binary_op_forward_and_gradient(name: str, shapes: tuple) -> None:
    op, reference, low = BINARY[name]
    a, b = leaf(shapes[0], seed=1, low=low), leaf(shapes[1], seed=2, low=low)
    np.testing.assert_allclose(host(op(a, b)), reference(host(a), host(b)), rtol=1e-12)
    assert tn.gradcheck(op, a, b)


@settings(max_examples=25, deadline=None)
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    op=st.sampled_from(["add", "mul", "sub"]),
)
def test_broadcasting_gradients_property(shapes, op: str) -> None:
    a, b = leaf(shapes.input_shapes[0], seed=3), leaf(shapes.input_shapes[1], seed=4)
    out = BINARY[op][0](a, b)
    assert out.shape == shapes.result_shape
    assert tn.gradcheck(BINARY[op][0], a, b)


@settings(max_examples=20, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_broadcast_gradient_equals_brute_force_sum(shapes) -> None:
    """d sum(a*b)/da equals b summed over the broadcast axes, computed here by explicit loops."""
    a, b = leaf(shapes.input_shapes[0], seed=5), leaf(shapes.input_shapes[1], seed=6)
    ops.mul(a, b).sum().backward()
    b_full = np.broadcast_to(host(b), shapes.result_shape)
    expected = np.zeros(a.shape)
    a_index = np.broadcast_to(np.arange(max(a.size, 1)).reshape(a.shape), shapes.result_shape)
    for idx in np.ndindex(shapes.result_shape):
        expected.reshape(-1)[a_index[idx]] += b_full[idx]
    np.testing.assert_allclose(host(a.grad), expected, rtol=1e-12, atol=1e-12)


UNARY = {
    "neg": (ops.neg, np.negative, None),
    "exp": (ops.exp, np.exp, None),
    "log": (ops.log, np.log, 0.3),
    "sqrt": (ops.sqrt, np.sqrt, 0.3),
    "abs": (ops.abs, np.abs, None),
    "clip": (lambda x: ops.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), None),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)], ids=str)
def test_unary_op_forward_and_gradient(name: str, shape: tuple) -> None:
    op, reference, low = UNARY[name]
    x = leaf(shape, seed=7, low=low)
    np.testing.assert_allclose(host(op(x)), reference(host(x)), rtol=1e-12)
    assert tn.gradcheck(op, x)


REDUCTIONS = {
    "sum": (ops.sum, np.sum),
    "mean": (ops.mean, np.mean),
    "max": (ops.max, np.max),
    "var": (ops.var, np.var),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_forward_and_gradient(name: str, axis, keepdims: bool) -> None:
    op, reference = REDUCTIONS[name]
    x = leaf((3, 4, 2), seed=8)
    out = op(x, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(host(out), reference(host(x), axis=axis, keepdims=keepdims), rtol=1e-12)
    assert tn.gradcheck(lambda t: op(t, axis=axis, keepdims=keepdims), x)


def test_var_with_ddof_matches_numpy_and_gradchecks() -> None:
    x = leaf((6, 3), seed=9)
    np.testing.assert_allclose(host(ops.var(x, axis=0, ddof=1)), np.var(host(x), axis=0, ddof=1))
    assert tn.gradcheck(lambda t: ops.var(t, axis=0, ddof=1), x)


def test_max_splits_gradient_between_ties() -> None:
    x = tn.Tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    ops.max(x).backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.5, 0.5, 0.0])


SHAPE_OPS = {
    "reshape": (lambda t: ops.reshape(t, (4, 6)), lambda a: a.reshape(4, 6)),
    "reshape_infer": (lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
    "transpose": (lambda t: t.T, lambda a: a.T),
    "transpose_axes": (lambda t: ops.transpose(t, (1, 2, 0)), lambda a: a.transpose(1, 2, 0)),
    "broadcast_to": (
        lambda t: ops.broadcast_to(t[:, :1, :], (5, 2, 3, 4)),
        lambda a: np.broadcast_to(a[:, :1, :], (5, 2, 3, 4)),
    ),
    "slice": (lambda t: t[1:, ::2, -1], lambda a: a[1:, ::2, -1]),
    "int_array_repeats": (lambda t: t[np.array([0, 1, 0, 0])], lambda a: a[np.array([0, 1, 0, 0])]),
    "mask": (lambda t: t[host(t) > 0], lambda a: a[a > 0]),
    "fancy_pair": (
        lambda t: t[np.array([0, 1, 1]), np.array([2, 0, 2])],
        lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])],
    ),
    "newaxis_ellipsis": (lambda t: t[None, ..., 1], lambda a: a[None, ..., 1]),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_op_forward_and_gradient(name: str) -> None:
    op, reference = SHAPE_OPS[name]
    x = leaf((2, 3, 4), seed=10)
    np.testing.assert_array_equal(host(op(x)), reference(host(x)))
    assert tn.gradcheck(op, x)


def test_getitem_repeated_indices_accumulate() -> None:
    x = tn.Tensor(np.zeros(3), requires_grad=True)
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(host(x.grad), [3.0, 0.0, 1.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis: int) -> None:
    a, b = leaf((2, 3), seed=11), leaf((2, 3), seed=12)
    np.testing.assert_array_equal(
        host(ops.concatenate([a, b], axis)), np.concatenate([host(a), host(b)], axis)
    )
    np.testing.assert_array_equal(host(ops.stack([a, b], axis)), np.stack([host(a), host(b)], axis))
    assert tn.gradcheck(lambda p, q: ops.concatenate([p, q], axis), a, b)
    assert tn.gradcheck(lambda p, q: ops.stack([p, q], axis), a, b)


def test_concatenate_uneven_sizes() -> None:
    a, b = leaf((2, 1), seed=13), leaf((2, 4), seed=14)
    assert tn.gradcheck(lambda p, q: ops.concatenate([p, q], axis=1), a, b)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (2, 4, 3)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_forward_and_gradient(shapes: tuple) -> None:
    a, b = leaf(shapes[0], seed=15), leaf(shapes[1], seed=16)
    np.testing.assert_allclose(host(a @ b), host(a) @ host(b), rtol=1e-12)
    assert tn.gradcheck(ops.matmul, a, b)


def test_linear_matches_matmul_and_gradchecks() -> None:
    x, w, b = leaf((5, 3), seed=17), leaf((4, 3), seed=18), leaf((4,), seed=19)
    np.testing.assert_allclose(host(ops.linear(x, w, b)), host(x) @ host(w).T + host(b), rtol=1e-12)
    assert tn.gradcheck(ops.linear, x, w, b)
    assert tn.gradcheck(lambda p, q: ops.linear(p, q), x, w)


def test_where_and_softmax_family() -> None:
    x, y = leaf((3, 5), seed=20), leaf((3, 5), seed=21)
    cond = host(x) > 0
    np.testing.assert_array_equal(host(ops.where(cond, x, y)), np.where(cond, host(x), host(y)))
    assert tn.gradcheck(lambda p, q: ops.where(cond, p, q), x, y)
    e = np.exp(host(x) - host(x).max(axis=1, keepdims=True))
    np.testing.assert_allclose(host(ops.softmax(x)), e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(
        host(ops.log_softmax(x, axis=0)), np.log(np.exp(host(x)) / np.exp(host(x)).sum(0)), rtol=1e-10
    )
    assert tn.gradcheck(lambda t: ops.softmax(t, axis=0), x)
    assert tn.gradcheck(ops.log_softmax, x)


def test_log_softmax_is_stable_for_large_inputs() -> None:
    x = tn.Tensor(np.array([[1000.0, 0.0], [-1000.0, 0.0]]), dtype="float64")
    out = host(ops.log_softmax(x))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.0, -1000.0], [-1000.0, 0.0]], atol=1e-12)


def test_large_inputs_use_the_random_direction_mode() -> None:
    x, w = leaf((16, 32), seed=22), leaf((32, 32), seed=23)
    assert tn.gradcheck(lambda p, q: ops.exp(ops.matmul(p, q) * 0.1).sum(axis=0), x, w, mode="directions")


def test_transpose_with_negative_axes() -> None:
    x = leaf((2, 3, 4), seed=24)
    np.testing.assert_array_equal(host(ops.transpose(x, (-1, 0, 1))), host(x).transpose(-1, 0, 1))
    assert tn.gradcheck(lambda t: ops.transpose(t, (-1, 0, 1)), x)


SHAPE_ONLY_BACKWARDS = {
    "add": lambda h: h + 1.0,
    "sub": lambda h: 1.0 - h,
    "sum": lambda h: h.sum(axis=0),
    "mean": lambda h: h.mean(),
    "astype": lambda h: ops.astype(h, np.float32),
}


@pytest.mark.parametrize("op", SHAPE_ONLY_BACKWARDS)
def test_an_op_whose_backward_needs_only_shapes_lets_its_input_array_go(op: str) -> None:
    """add, sub, the reductions and astype keep their inputs' shapes and dtypes, not their
    arrays: the array of an intermediate result goes as soon as nothing else holds it (a
    residual addition kept its branch's output alive until backward). (reshape and broadcast_to
    return views, which hold their input's array themselves.)"""
    import gc
    import weakref

    x = leaf((3, 4), seed=21)
    hidden = x * 2.0  # its array is held by this Tensor only (mul keeps x and 2.0)
    array = weakref.ref(hidden.data)
    result = SHAPE_ONLY_BACKWARDS[op](hidden)
    del hidden
    gc.collect()
    assert array() is None
    result.sum().backward()
    assert host(x.grad).shape == (3, 4)
