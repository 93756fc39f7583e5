"""The engine's rules: accumulation, graph freeing, no_grad, long chains, dtypes, errors."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host, leaf
from tinynormact import activations, ops
from tinynormact.engine import autograd


def test_backward_of_a_hand_derived_expression() -> None:
    """d/dx of sum(x**2 * y + x / y) is 2 x y + 1 / y, derived by hand."""
    x, y = leaf((3,), seed=1), leaf((3,), seed=2, low=0.5)
    (x**2 * y + x / y).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * host(x) * host(y) + 1 / host(y), rtol=1e-12)
    np.testing.assert_allclose(host(y.grad), host(x) ** 2 - host(x) / host(y) ** 2, rtol=1e-12)


def test_gradients_accumulate_and_zero_grad_clears() -> None:
    x = leaf((4,), seed=3)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.full(4, 6.0))
    x.zero_grad()
    assert x.grad is None


def test_shared_subexpression_sums_both_paths() -> None:
    x = leaf((2,), seed=4)
    y = x * 2.0
    (y + y * y).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2.0 + 8.0 * host(x), rtol=1e-12)


def test_leaf_gradients_never_alias_each_other() -> None:
    a, b = leaf((3,), seed=5), leaf((3,), seed=6)
    (a + b).sum().backward()
    a.grad[...] = 7.0  # mutating one .grad in place must not change the other
    np.testing.assert_array_equal(host(b.grad), np.ones(3))


def test_intermediate_gradients_are_freed_unless_retained() -> None:
    x = leaf((3,), seed=7)
    hidden, kept = x * 2.0, x * 3.0
    kept.retain_grad()
    (hidden * kept).sum().backward()
    assert hidden.grad is None
    np.testing.assert_allclose(host(kept.grad), host(hidden), rtol=1e-12)


def test_second_backward_through_freed_graph_raises_with_advice() -> None:
    x = leaf((3,), seed=8)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = leaf((3,), seed=9)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(host(x.grad), 4 * host(x), rtol=1e-12)


def test_backward_on_non_scalar_needs_a_gradient() -> None:
    x = leaf((3,), seed=10)
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*t.backward\(grad\)"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.ones(3))
    np.testing.assert_array_equal(host(x.grad), np.full(3, 2.0))


def test_backward_errors_on_tensor_without_grad_and_wrong_grad_shape() -> None:
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        tn.Tensor([1.0, 2.0]).sum().backward()
    x = leaf((3,), seed=11)
    with pytest.raises(ValueError, match=r"grad has shape \(2,\) but the tensor has shape \(3,\)"):
        (x * 1.0).backward(np.ones(2))


def test_no_grad_builds_no_graph() -> None:
    x = leaf((3,), seed=12)
    with tn.no_grad():
        y = x * 2.0
        assert not tn.is_grad_enabled()
    assert tn.is_grad_enabled()
    assert not y.requires_grad and y._node is None


def test_a_chain_of_100000_ops_does_not_hit_the_recursion_limit() -> None:
    x = tn.Tensor(np.array(1.0), requires_grad=True, dtype="float64")
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert host(x.grad) == 1.0


def test_default_dtype_python_scalars_and_promotion() -> None:
    assert tn.Tensor([1.0, 2.0]).dtype == np.float32
    assert tn.Tensor(np.zeros(2)).dtype == np.float64  # arrays keep their dtype
    assert (tn.Tensor([1.0]) * 2.5).dtype == np.float32  # Python numbers are weak
    assert (tn.Tensor([1.0]) + tn.Tensor([1.0], dtype="float64")).dtype == np.float64
    tn.set_default_dtype("float64")
    assert tn.Tensor([1.0]).dtype == np.float64
    with pytest.raises(ValueError, match="float32, float64.*int32"):
        tn.set_default_dtype("int32")


def test_mixed_dtype_gradients_come_back_in_each_inputs_dtype() -> None:
    a = tn.Tensor([1.0, 2.0], requires_grad=True)  # float32
    b = tn.Tensor([3.0, 4.0], requires_grad=True, dtype="float64")
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(host(a.grad), [3.0, 4.0])


def test_numpy_interop_and_reflected_operators() -> None:
    x = leaf((3,), seed=13)
    array = np.array([1.0, 2.0, 3.0])
    for result, expected in [
        (array + x, array + host(x)),
        (array - x, array - host(x)),
        (array * x, array * host(x)),
        (array / x, array / host(x)),
        (2.0 - x, 2.0 - host(x)),
        (2.0**x, 2.0 ** host(x)),
        (-x, -host(x)),
    ]:
        assert isinstance(result, tn.Tensor)
        np.testing.assert_allclose(host(result), expected, rtol=1e-12)
    assert tn.gradcheck(lambda t: np.ones((2, 3)) @ (2.0 / (t + 5.0)).reshape(3, 1), x)


def test_comparisons_are_not_differentiable() -> None:
    x = leaf((3,), seed=14)
    for result in (x < 0, x <= 0, x > 0, x >= 0, x == x, x != 0.0):
        assert result.dtype == np.bool_ and not result.requires_grad
    np.testing.assert_array_equal(host(x > 0), host(x) > 0)


def test_only_floating_tensors_can_require_grad() -> None:
    with pytest.raises(TypeError, match="int64"):
        tn.Tensor(np.arange(3), requires_grad=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: leaf((2, 3)) @ leaf((4, 5)), r"matmul: shapes \(2, 3\) and \(4, 5\)"),
        (lambda: leaf((2, 3)) + leaf((4, 3)), r"add: shapes \(2, 3\) and \(4, 3\)"),
        (lambda: leaf((2, 3)) * leaf((2,)), r"mul: shapes \(2, 3\) and \(2,\)"),
        (lambda: leaf((2, 3)).reshape(4, 2), r"reshape: .*\(2, 3\) into \(4, 2\)"),
        (lambda: ops.linear(leaf((2, 3)), leaf((4, 5))), r"linear: input of shape \(2, 3\).*\(4, 5\)"),
        (lambda: ops.sum(leaf((2, 3)), axis=2), "axis 2 is out of range"),
        (lambda: ops.broadcast_to(leaf((2, 3)), (4, 3)), r"\(2, 3\) to \(4, 3\)"),
    ],
)
def test_shape_errors_name_the_op_and_both_shapes(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_item_numpy_detach_and_repr() -> None:
    x = leaf((1,), seed=15)
    assert isinstance(x.item(), float)
    assert isinstance(x.numpy(), np.ndarray)
    d = (x * 2.0).detach()
    assert d.is_leaf and not d.requires_grad
    assert "requires_grad=True" in repr(x)
    with pytest.raises(ValueError, match="one element"):
        leaf((2,)).item()


def test_to_same_device_is_identity(device: str) -> None:
    x = leaf((2,))
    assert x.to(device) is x
    assert x.device == device


def test_gradcheck_catches_a_wrong_backward_and_names_the_input() -> None:
    def bad_square(t: tn.Tensor) -> tn.Tensor:
        return tn.Tensor.from_op(t.data**2, (t,), lambda g: (g * t.data * 2.2,), "bad_square")

    with pytest.raises(tn.GradcheckError, match=r"input 0 \(shape \(3,\)\) at index \(0,\)"):
        tn.gradcheck(bad_square, leaf((3,), seed=16))
    with pytest.raises(tn.GradcheckError, match="random direction 0"):
        tn.gradcheck(bad_square, leaf((300,), seed=17))


@pytest.mark.parametrize("returned", [1, 3])
def test_a_backward_returning_the_wrong_number_of_gradients_is_refused(returned: int) -> None:
    """An op of two inputs whose backward returns one gradient, or three, fails with a message
    naming the op and both counts, and leaves no gradient waiting on the graph."""
    a, b = leaf((3,), seed=1), leaf((3,), seed=2)
    out = tn.Tensor.from_op(a.data * b.data, (a, b), lambda g: (g,) * returned, "miscounted")
    message = rf"'miscounted' returned {returned} gradient\(s\) for its 2 input"
    with pytest.raises(RuntimeError, match=message):
        out.sum().backward()
    assert a.grad is None and b.grad is None
    assert all(node.pending is None for node in autograd.topological_order(out.graph_node()))


def test_gradcheck_argument_errors() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        tn.gradcheck(ops.exp, leaf((2,)), mode="fast")
    with pytest.raises(ValueError, match="no floating input"):
        tn.gradcheck(ops.exp, tn.Tensor(np.zeros(2)))


def test_hooks_see_the_full_gradient_and_can_replace_it() -> None:
    x = leaf((3,), seed=18)
    hidden = x * 2.0
    seen = []
    handle = hidden.register_hook(lambda g: seen.append(g.copy()))
    hidden.register_hook(lambda g: g * 10.0)
    (hidden * 3.0 + hidden).sum().backward(retain_graph=True)
    np.testing.assert_array_equal(host(seen[0]), np.full(3, 4.0))  # both paths summed before the hook
    np.testing.assert_array_equal(host(x.grad), np.full(3, 80.0))
    handle.remove()
    handle.remove()  # twice is harmless
    (hidden * 3.0 + hidden).sum().backward()
    assert len(seen) == 1  # removed: not called again
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        tn.Tensor([1.0]).register_hook(print)


def test_a_backward_that_fails_part_way_leaves_no_gradient_waiting() -> None:
    """A gradient waits on its node while backward() runs (``Node.pending``): an error part way
    must not leave one there for the next backward() through the same graph to add to."""
    x = leaf((3,), seed=19)
    doubled, five_times = x * 2.0, x * 5.0
    calls = []

    def fail_once(g: object) -> None:
        calls.append(g)
        if len(calls) == 1:
            raise RuntimeError("hook failed")

    doubled.register_hook(fail_once)
    five_times.register_hook(fail_once)
    total = (doubled + five_times).sum()
    with pytest.raises(RuntimeError, match="hook failed"):
        total.backward(retain_graph=True)  # the other branch's gradient is waiting at this point
    x.grad = None
    total.backward()
    np.testing.assert_array_equal(host(x.grad), np.full(3, 7.0))  # not 7 plus a stale 2 or 5


def test_a_hook_handle_does_not_keep_the_graph_alive() -> None:
    """A hook may hold its own handle (to run once): the handle refers to the graph weakly,
    so a graph that never reaches backward still goes with its last tensor."""
    x = leaf((3,), seed=20)
    hidden = x * 2.0
    handle = hidden.register_hook(lambda g: handle.remove())
    node = weakref.ref(hidden.graph_node())
    del hidden
    assert node() is None
    handle.remove()  # harmless once the graph is gone


def test_gradcheck_checks_python_numbers_in_float64() -> None:
    """0.1 must not be rounded to float32 (0.10000000149...) before the check."""
    seen = []

    def record(t: tn.Tensor) -> tn.Tensor:
        seen.append(host(t).item())
        return t * t

    tn.gradcheck(record, 0.1)
    assert seen[0] == 0.1


def test_the_graph_keeps_only_what_backward_needs() -> None:
    """tanh's backward needs its output only, so its input h, referred to by nothing else, is
    freed after the forward pass; backward still gives d sum(tanh(2x)) / dx = 2 (1 - tanh^2)."""
    x = leaf((3,), seed=19)
    h = x * 2.0
    h_alive = weakref.ref(h)
    y = ops.activation(h, activations.get("tanh"))
    del h
    assert h_alive() is None
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * (1 - np.tanh(2 * host(x)) ** 2), rtol=1e-12)
