"""Differentiable operations: each computes its forward on arrays and returns a Tensor whose
backward closure maps the output gradient to one gradient per input.

Conventions shared by every op here:

- Operands may be Tensors, arrays or Python numbers. Non-tensors are constants (no gradient).
  Python numbers are "weak": ``float32_tensor * 2.0`` stays float32. Tensors and arrays of
  different dtypes follow NumPy's promotion rules (float32 with float64 gives float64), and each
  input's gradient is returned in that input's own dtype.
- Broadcasting follows NumPy; every backward sums the gradient over the broadcast axes
  (``unbroadcast``) so that an input's gradient has the input's shape.
- A backward computes only the gradients of inputs that require one.
- The operations a traced step can replay (``REPLAYABLE``, see ``replay``) compute their output
  with a closure ``forward(out=None)`` on the inputs' current arrays: the eager call runs it once
  (``out=None``, a new array) and hands it to ``Tensor.from_op``; a replay runs it again, writing
  into the recorded output array, so the backward closures see the new values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor

np = backend.np  # NumPy's ufuncs dispatch to the arrays' own module (CuPy, the strict device)

# the operations with a ``forward(out)``, here and in nn.losses
REPLAYABLE = (
    "linear",
    "activation (any ActivationFunction)",
    "add",
    "sub",
    "mul",
    "sum",
    "mean",
    "mse_loss",
    "softmax_cross_entropy",
)

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def as_tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor; a Python number takes ``like``'s dtype when that keeps it exact."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)):
        dtype = backend.np.result_type(like.dtype, value)
        return Tensor(value, dtype=dtype, device=like.device)
    device = like.device if like is not None else None
    return Tensor(value, device=device)


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands of a binary op as Tensors on the same device: arrays and numbers join the
    tensor's device; two tensors on different devices are refused, naming both."""
    if isinstance(a, Tensor):
        b = as_tensor(b, like=a)
    else:
        b = as_tensor(b)
        a = as_tensor(a, like=b)
    _check_devices(a, b)
    return a, b


def _check_devices(first: Tensor, *others: Tensor) -> None:
    """Refuse tensors of different devices in one operation with one message naming both."""
    for other in others:
        if type(other.data) is not type(first.data) and other.device != first.device:
            raise backend.DeviceError(
                f"operands on different devices, {first.device} and {other.device}: move one with "
                f".to({first.device!r}) or .to({other.device!r})"
            )


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def _target(t: Tensor) -> tuple[tuple[int, ...], Any] | None:
    """What shapes the gradient of input ``t`` (its shape and dtype; None when it needs none):
    a backward closure that keeps this instead of ``t`` keeps t's array free to go."""
    return (t.shape, t.data.dtype) if t.requires_grad else None


def _grad_to(target: tuple[tuple[int, ...], Any] | None, grad: Any) -> Any:
    """The gradient for an input of ``target`` (``_target``): its shape and dtype, or None."""
    if target is None:
        return None
    shape, dtype = target
    return _cast(unbroadcast(grad, shape), dtype)


def _grad_for(t: Tensor, grad: Any) -> Any:
    """The gradient for input ``t``: its shape and dtype, or None when it needs none."""
    return _grad_to(_target(t), grad)


def in_dtype(grad: Any, t: Tensor) -> Any:
    """``grad`` in input ``t``'s dtype (for a gradient that already has t's shape)."""
    return _cast(grad, t.data.dtype)


def _cast(grad: Any, dtype: Any) -> Any:
    return grad if grad.dtype == dtype else grad.astype(dtype)


def into(out: Any, result: Any) -> Any:
    """``result``, or ``out`` holding it when a replay gives the array to write into."""
    if out is None:
        return result
    out[...] = result
    return out


def _check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    try:
        backend.np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimension(s)")
    return tuple(sorted(a % (ndim or 1) for a in axes))


def _expand_reduced(grad: Any, axes: tuple[int, ...], keepdims: bool, shape: tuple[int, ...]) -> Any:
    """Broadcast the gradient of a reduction back to the input's shape."""
    xp = backend.get_array_module(grad)
    if not keepdims:
        grad = xp.expand_dims(grad, axes) if axes else grad
    return xp.broadcast_to(grad, shape)


# ----------------------------------------------------------------------------------------------
# elementwise binary ops
# ----------------------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Tensor:
    """a + b."""
    a, b = _pair(a, b)
    _check_broadcast("add", a, b)
    forward = lambda out=None: np.add(a.data, b.data, out=out)  # noqa: E731
    ta, tb = _target(a), _target(b)  # backward needs no value of a or b: it keeps neither array
    return Tensor.from_op(forward(), (a, b), lambda g: (_grad_to(ta, g), _grad_to(tb, g)), "add", forward)


def sub(a: Any, b: Any) -> Tensor:
    """a - b."""
    a, b = _pair(a, b)
    _check_broadcast("sub", a, b)
    forward = lambda out=None: np.subtract(a.data, b.data, out=out)  # noqa: E731
    ta, tb = _target(a), _target(b)  # as in add: neither array is kept
    backward = lambda g: (_grad_to(ta, g), None if tb is None else _grad_to(tb, -g))  # noqa: E731
    return Tensor.from_op(forward(), (a, b), backward, "sub", forward)


def mul(a: Any, b: Any) -> Tensor:
    """a * b."""
    a, b = _pair(a, b)
    _check_broadcast("mul", a, b)

    def backward(g: Any) -> tuple[Any, Any]:
        ga = _grad_for(a, g * b.data) if a.requires_grad else None
        gb = _grad_for(b, g * a.data) if b.requires_grad else None
        return ga, gb

    forward = lambda out=None: np.multiply(a.data, b.data, out=out)  # noqa: E731
    return Tensor.from_op(forward(), (a, b), backward, "mul", forward)


def div(a: Any, b: Any) -> Tensor:
    """a / b."""
    a, b = _pair(a, b)
    _check_broadcast("div", a, b)
    out = a.data / b.data

    def backward(g: Any) -> tuple[Any, Any]:
        ga = _grad_for(a, g / b.data) if a.requires_grad else None
        gb = _grad_for(b, -g * out / b.data) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(out, (a, b), backward, "div")


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 (the operator's name)
    """a ** b; the gradient with respect to b needs a > 0 where it is used."""
    a, b = _pair(a, b)
    _check_broadcast("pow", a, b)
    out = a.data**b.data

    def backward(g: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(g)
        ga = _grad_for(a, g * b.data * a.data ** (b.data - 1)) if a.requires_grad else None
        gb = _grad_for(b, g * out * xp.log(a.data)) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(out, (a, b), backward, "pow")


def _select_binary(op: str, a: Any, b: Any) -> Tensor:
    """maximum/minimum: the gradient goes to the selected input; ties split it evenly."""
    a, b = _pair(a, b)
    _check_broadcast(op, a, b)
    xp = backend.get_array_module(a.data)
    take_a = a.data >= b.data if op == "maximum" else a.data <= b.data
    out = xp.where(take_a, a.data, b.data)
    weight_a = xp.where(a.data == b.data, 0.5, take_a).astype(out.dtype)

    def backward(g: Any) -> tuple[Any, Any]:
        ga = _grad_for(a, g * weight_a) if a.requires_grad else None
        gb = _grad_for(b, g * (1 - weight_a)) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(out, (a, b), backward, op)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum."""
    return _select_binary("maximum", a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum."""
    return _select_binary("minimum", a, b)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (condition gets no gradient)."""
    a, b = _pair(a, b)
    _check_broadcast("where", a, b)
    cond = condition.data if isinstance(condition, Tensor) else backend.asarray(condition, device=a.device)
    xp = backend.get_array_module(a.data)
    out = xp.where(cond, a.data, b.data)

    def backward(g: Any) -> tuple[Any, Any]:
        zero = xp.zeros((), dtype=g.dtype)
        ga = _grad_for(a, xp.where(cond, g, zero)) if a.requires_grad else None
        gb = _grad_for(b, xp.where(cond, zero, g)) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(out, (a, b), backward, "where")


# ----------------------------------------------------------------------------------------------
# elementwise unary ops
# ----------------------------------------------------------------------------------------------


def _unary(op: str, x: Tensor, out: Any, local_grad: Any) -> Tensor:
    """A unary op whose backward multiplies by the local derivative ``local_grad()``."""
    return Tensor.from_op(out, (x,), lambda g: (g * local_grad(),), op)


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Tensor.from_op(-x.data, (x,), lambda g: (-g,), "neg")


def exp(x: Tensor) -> Tensor:
    """e ** x."""
    out = backend.get_array_module(x.data).exp(x.data)
    return _unary("exp", x, out, lambda: out)


def log(x: Tensor) -> Tensor:
    """Natural logarithm."""
    out = backend.get_array_module(x.data).log(x.data)
    return _unary("log", x, out, lambda: 1 / x.data)


def sqrt(x: Tensor) -> Tensor:
    """Square root."""
    out = backend.get_array_module(x.data).sqrt(x.data)
    return _unary("sqrt", x, out, lambda: 0.5 / out)


def abs(x: Tensor) -> Tensor:  # noqa: A001 (the operation's name)
    """|x| (gradient sign(x), 0 at 0)."""
    xp = backend.get_array_module(x.data)
    return _unary("abs", x, xp.abs(x.data), lambda: xp.sign(x.data))


def clip(x: Tensor, low: Any = None, high: Any = None) -> Tensor:
    """x limited to [low, high]; the gradient is zero where x was clipped."""
    if low is None and high is None:
        raise ValueError("clip needs at least one of low and high")
    xp = backend.get_array_module(x.data)
    out = xp.clip(x.data, low, high)
    return _unary("clip", x, out, lambda: (out == x.data).astype(x.dtype))


def activation(x: Tensor, act: Any) -> Tensor:
    """phi(x) for an activation function with ``f`` and ``df`` (see ``activations``).

    When the activation can compute phi' from its output (``df_from_output``), backward uses the
    output, which it has at hand, instead of recomputing phi from the input (tanh, sigmoid). An
    activation that is a NumPy ufunc (tanh) writes a replay's output array itself, with no copy.
    """
    ufunc = isinstance(act.f, backend.np.ufunc)

    def forward(out: Any = None) -> Any:
        return act.f(x.data, out=out) if ufunc else into(out, act.f(x.data))

    out = forward()
    from_output = getattr(act, "df_from_output", None)
    # the closure keeps only the array phi' is computed from: the output when it can
    argument, df = (x.data, act.df) if from_output is None else (out, from_output)
    return Tensor.from_op(out, (x,), lambda g: (g * df(argument),), act.name, forward)


def astype(x: Tensor, dtype: Any) -> Tensor:
    """x converted to ``dtype``; the gradient comes back in x's dtype."""
    out, input_dtype = x.data.astype(dtype), x.dtype
    return Tensor.from_op(out, (x,), lambda g: (g.astype(input_dtype),), "astype")


# ----------------------------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------------------------


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    axes, shape = _axes(axis, x.ndim), x.shape  # backward keeps the shape, not x's array
    forward = lambda out=None: into(out, x.data.sum(axis=axes, keepdims=keepdims))  # noqa: E731
    backward = lambda g: (_expand_reduced(g, axes, keepdims, shape),)  # noqa: E731
    return Tensor.from_op(forward(), (x,), backward, "sum", forward)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes when None)."""
    axes, shape = _axes(axis, x.ndim), x.shape  # backward keeps the shape, not x's array
    count = _count(shape, axes)
    forward = lambda out=None: into(out, x.data.mean(axis=axes, keepdims=keepdims))  # noqa: E731
    backward = lambda g: (_expand_reduced(g / count, axes, keepdims, shape),)  # noqa: E731
    return Tensor.from_op(forward(), (x,), backward, "mean", forward)


def var(x: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom (NumPy's convention)."""
    axes = _axes(axis, x.ndim)
    count = _count(x.shape, axes)
    if count - ddof <= 0:
        raise ValueError(f"var: ddof={ddof} needs more than {ddof} elements along axis {axis}")
    centred = x.data - x.data.mean(axis=axes, keepdims=True)
    out = (centred * centred).sum(axis=axes, keepdims=keepdims) / (count - ddof)

    def backward(g: Any) -> tuple[Any]:
        return (_expand_reduced(g, axes, keepdims, x.shape) * centred * (2 / (count - ddof)),)

    return Tensor.from_op(out, (x,), backward, "var")


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; tied maxima share the gradient evenly."""
    axes = _axes(axis, x.ndim)
    out = x.data.max(axis=axes, keepdims=True)
    winners = (x.data == out).astype(x.dtype)
    winners /= winners.sum(axis=axes, keepdims=True)

    def backward(g: Any) -> tuple[Any]:
        return (_expand_reduced(g, axes, keepdims, x.shape) * winners,)

    result = out if keepdims else out.reshape([n for i, n in enumerate(out.shape) if i not in axes])
    return Tensor.from_op(result, (x,), backward, "max")


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    count = 1
    for a in axes:
        count *= shape[a]
    return count


# ----------------------------------------------------------------------------------------------
# shape ops
# ----------------------------------------------------------------------------------------------


def reshape(x: Tensor, shape: Any) -> Tensor:
    """x with a new shape of the same size (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    try:
        out = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {shape}") from None
    input_shape = x.shape  # backward keeps the shape, not x's array
    return Tensor.from_op(out, (x,), lambda g: (g.reshape(input_shape),), "reshape")


def transpose(x: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    xp = backend.get_array_module(x.data)
    out = xp.transpose(x.data, axes)
    inverse = None if axes is None else tuple(backend.np.argsort([a % x.ndim for a in axes]))
    return Tensor.from_op(out, (x,), lambda g: (xp.transpose(g, inverse),), "transpose")


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """x broadcast to ``shape`` (NumPy rules)."""
    xp = backend.get_array_module(x.data)
    shape = tuple(shape)
    try:
        out = xp.broadcast_to(x.data, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    input_shape = x.shape  # backward keeps the shape, not x's array
    return Tensor.from_op(out, (x,), lambda g: (unbroadcast(g, input_shape),), "broadcast_to")


def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index]: slices, integers, masks and integer arrays; repeated indices accumulate."""
    index = _raw_index(index, x.device)
    out = x.data[index]

    def backward(g: Any) -> tuple[Any]:
        xp = backend.get_array_module(g)
        grad = xp.zeros(x.shape, dtype=g.dtype)
        if _is_basic(index):
            grad[index] = g  # a basic index addresses each element at most once
        else:
            backend.scatter_add(grad, index, g)
        return (grad,)

    return Tensor.from_op(out, (x,), backward, "getitem")


def _raw_index(index: Any, device: str) -> Any:
    """``index`` with tensors unwrapped and index arrays moved to ``device`` (as CuPy needs)."""

    def raw(i: Any) -> Any:
        i = i.data if isinstance(i, Tensor) else i
        return backend.to_device(i, device) if getattr(i, "ndim", 0) > 0 else i

    return tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [as_tensor(t) for t in tensors]
    _check_devices(*tensors)
    xp = backend.get_array_module(tensors[0].data)
    try:
        out = xp.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ValueError(f"concatenate: shapes {shapes} do not match off axis {axis}") from None
    bounds = backend.np.cumsum([t.shape[axis] for t in tensors])[:-1].tolist()

    def backward(g: Any) -> tuple[Any, ...]:
        return tuple(xp.split(g, bounds, axis=axis))

    return Tensor.from_op(out, tuple(tensors), backward, "concatenate")


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all shapes must be equal, got {', '.join(map(str, shapes))}")
    _check_devices(*tensors)
    xp = backend.get_array_module(tensors[0].data)
    out = xp.stack([t.data for t in tensors], axis=axis)

    def backward(g: Any) -> tuple[Any, ...]:
        return tuple(xp.moveaxis(g, axis, 0))

    return Tensor.from_op(out, tuple(tensors), backward, "stack")


# ----------------------------------------------------------------------------------------------
# linear algebra
# ----------------------------------------------------------------------------------------------


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b with NumPy's rules: 1-D operands are promoted, leading axes broadcast."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast") from None

    def backward(g: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(g)
        a2 = a.data[None, :] if a.ndim == 1 else a.data
        b2 = b.data[:, None] if b.ndim == 1 else b.data
        g2 = xp.expand_dims(g, -1) if b.ndim == 1 else g
        g2 = xp.expand_dims(g2, -2) if a.ndim == 1 else g2
        ga = gb = None
        if a.requires_grad:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = _grad_for(a, ga[..., 0, :] if a.ndim == 1 else ga)
        if b.requires_grad:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = _grad_for(b, gb[..., :, 0] if b.ndim == 1 else gb)
        return ga, gb

    return Tensor.from_op(out, (a, b), backward, "matmul")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias for x of shape (batch, in) and weight (out, in): one fused graph node."""
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            "(expected input (batch, in_features) and weight (out_features, in_features))"
        )
    _check_devices(x, weight)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def forward(out: Any = None) -> Any:
        result = np.matmul(x.data, weight.data.T, out=out)
        if bias is not None:
            result += bias.data
        return result

    # shapes match the inputs' by construction: only the dtype may need a cast, where they differ
    mixed = len({t.dtype for t in parents}) > 1
    x_grad, w_grad, b_grad = x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad

    def backward(g: Any) -> tuple[Any, ...]:
        grads = (g @ weight.data if x_grad else None, g.T @ x.data if w_grad else None)
        if bias is not None:
            grads += (g.sum(axis=0) if b_grad else None,)
        if mixed:
            return tuple(None if d is None else in_dtype(d, t) for d, t in zip(grads, parents, strict=True))
        return grads

    return Tensor.from_op(forward(), parents, backward, "linear", forward)


# ----------------------------------------------------------------------------------------------
# softmax family
# ----------------------------------------------------------------------------------------------


def log_softmax_array(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)) of an array, computed stably (shifted by the maximum: no overflow)."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed stably (``log_softmax_array``)."""
    xp = backend.get_array_module(x.data)
    out = log_softmax_array(x.data, axis)

    def backward(g: Any) -> tuple[Any]:
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)

    return Tensor.from_op(out, (x,), backward, "log_softmax")


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably."""
    xp = backend.get_array_module(x.data)
    e = xp.exp(x.data - x.data.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)

    def backward(g: Any) -> tuple[Any]:
        return (out * (g - (g * out).sum(axis=axis, keepdims=True)),)

    return Tensor.from_op(out, (x,), backward, "softmax")


# ----------------------------------------------------------------------------------------------
# the operators and methods of Tensor: attached here, once, so that autograd never imports ops
# ----------------------------------------------------------------------------------------------


def _reflected(op: Any) -> Any:
    return lambda self, other: op(other, self)


def _variadic_shape(op: Any) -> Any:
    """``t.reshape(2, 3)`` and ``t.reshape((2, 3))`` alike (NumPy's spelling)."""
    return lambda self, *shape: op(self, shape[0] if len(shape) == 1 else shape)


Tensor.__add__, Tensor.__radd__ = add, _reflected(add)
Tensor.__sub__, Tensor.__rsub__ = sub, _reflected(sub)
Tensor.__mul__, Tensor.__rmul__ = mul, _reflected(mul)
Tensor.__truediv__, Tensor.__rtruediv__ = div, _reflected(div)
Tensor.__pow__, Tensor.__rpow__ = pow, _reflected(pow)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, _reflected(matmul)
Tensor.__neg__ = neg
Tensor.__getitem__ = getitem
Tensor.sum, Tensor.mean, Tensor.var, Tensor.max = sum, mean, var, max
Tensor.exp, Tensor.log, Tensor.sqrt, Tensor.abs, Tensor.clip = exp, log, sqrt, abs, clip
Tensor.astype = astype
Tensor.reshape = _variadic_shape(reshape)
Tensor.transpose = lambda self, *axes: transpose(self, (axes[0] if len(axes) == 1 else axes) or None)
Tensor.T = property(lambda self: transpose(self, None))
