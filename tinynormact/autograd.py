"""Reverse-mode automatic differentiation: the Tensor, the graph and ``backward``.

A Tensor wraps an array (NumPy or CuPy, see ``backend``). Every differentiable operation in
``ops`` computes its output array and, when any input requires a gradient, gives the output a
graph ``Node`` that records

- the nodes of the inputs (``parents``), and
- a closure ``backward(grad_out) -> tuple of input gradients`` (one per input, None for an
  input that needs no gradient).

``backward()`` then visits the recorded nodes in reverse topological order, calling each closure
once and summing the gradients that reach a node along different paths.

The graph is made of nodes rather than of the tensors themselves so that it keeps alive only
what the closures need: once a forward pass is done, an intermediate tensor that no closure and
no variable refers to (the pre-activation h of ``Linear`` then ``tanh``, say) is freed.

Rules (the README repeats them):

- Gradients accumulate: ``backward()`` adds into the ``.grad`` of leaf tensors that require a
  gradient, so calling it twice doubles ``.grad``; ``zero_grad()`` (or an optimizer's) clears it.
- Only leaves keep ``.grad``; an intermediate tensor keeps its gradient only after
  ``t.retain_grad()``.
- ``backward()`` frees the graph as it goes (the closures and the arrays they hold), so a second
  ``backward()`` through the same graph raises, unless the first used ``retain_graph=True``.
- Inside ``with no_grad():`` operations record nothing.
- The graph walk is iterative, so a chain of any length (100,000 ops and more) works.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from tinynormact import backend

BackwardFn = Callable[[Any], tuple[Any, ...]]

_FREED = "freed"  # marks a node whose graph was released by a previous backward()
Hook = Callable[[Any], Any]
_grad_mode = {"enabled": True}


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph."""
    return _grad_mode["enabled"]


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager inside which operations record no graph (evaluation, updates)."""
    previous = _grad_mode["enabled"]
    _grad_mode["enabled"] = False
    try:
        yield
    finally:
        _grad_mode["enabled"] = previous


class Node:
    """One vertex of the graph: how a tensor was computed, without the tensor's data.

    ``parents`` are the input nodes (None for an input that needs no gradient), aligned with the
    gradients ``backward`` returns; a leaf has no parents and ``backward`` None. ``grad_target``
    returns the tensor whose ``.grad`` backward fills: set for leaves (a strong reference) and by
    ``retain_grad()`` (a weak one); None for every other node, which keeps no tensor alive.
    """

    __slots__ = ("parents", "backward", "op", "shape", "hooks", "grad_target", "__weakref__")

    def __init__(
        self, parents: tuple[Node | None, ...], backward: BackwardFn | None, op: str, shape: tuple[int, ...]
    ) -> None:
        self.parents, self.backward, self.op, self.shape = parents, backward, op, shape
        self.hooks: tuple[Hook, ...] = ()
        self.grad_target: Callable[[], Tensor | None] | None = None


class Tensor:
    """An array with an optional gradient and the record of how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)``: Python numbers and lists of
    floats take the default dtype (float32 unless ``set_default_dtype``); arrays keep theirs.
    The tensor lives on ``device`` (default: the current device of ``set_device``).
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")

    # Make ``ndarray <op> Tensor`` call the Tensor's reflected operator instead of NumPy's.
    __array_ufunc__ = None

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = backend.asarray(data, dtype=dtype, device=device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require a gradient; got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node: Node | None = None  # made when first needed (see graph_node)

    # ----- construction of graph nodes (used by ops) ---------------------------------------
    @classmethod
    def from_op(cls, data: Any, parents: tuple[Tensor, ...], backward: BackwardFn, op: str) -> Tensor:
        """The result of operation ``op``: records ``parents`` and ``backward`` when needed."""
        out = cls.__new__(cls)
        out.data = data
        out.grad = None
        out.requires_grad, out._node = False, None
        if _grad_mode["enabled"]:
            nodes = tuple([(p._node or p.graph_node()) if p.requires_grad else None for p in parents])
            if any(nodes):
                out.requires_grad, out._node = True, Node(nodes, backward, op, data.shape)
        return out

    def graph_node(self) -> Node:
        """This tensor's node in the graph (a leaf node for a tensor made by the user)."""
        if self._node is None:
            self._node = Node((), None, "leaf", self.data.shape)
            self._node.grad_target = lambda: self
        return self._node

    # ----- basic properties -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by an operation."""
        return self._node is None or self._node.backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device='{self.device}'"
        body = repr(backend.to_numpy(self.data)).replace("array", "tensor", 1)
        return f"{body[:-1]}{grad}{dev})" if body.endswith(")") else f"tensor({body}{grad}{dev})"

    # ----- conversions ---------------------------------------------------------------------
    def numpy(self) -> Any:
        """A NumPy copy of the data on the host."""
        return backend.to_numpy(self.data)

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside any graph."""
        return Tensor(self.data)

    def to(self, device: str) -> Tensor:
        """This tensor on ``device``: itself when already there, else a new leaf copy."""
        if backend.device_of(self.data) == device:
            return self
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def astype(self, dtype: Any) -> Tensor:
        """A copy with another dtype (differentiable for floating dtypes)."""
        from tinynormact import ops

        return ops.astype(self, dtype)

    # ----- gradients -----------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def retain_grad(self) -> None:
        """Keep this intermediate tensor's gradient in ``.grad`` during backward()."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require a gradient")
        node = self.graph_node()
        if node.grad_target is None:
            node.grad_target = weakref.ref(self)

    def register_hook(self, hook: Callable[[Any], Any]) -> Callable[[], None]:
        """Call ``hook(grad)`` with this tensor's full gradient array during backward().

        A hook that returns an array replaces the gradient passed on. Returns a function that
        removes the hook; it holds the graph only weakly, so a hook may keep its own remover
        without keeping the graph alive. Module hooks (``nn``) and variance tracking are built
        on this.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require a gradient")
        node = self.graph_node()
        node.hooks = (*node.hooks, hook)
        node_ref = weakref.ref(node)

        def remove() -> None:
            node = node_ref()
            if node is not None:
                node.hooks = tuple(h for h in node.hooks if h is not hook)

        return remove

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires it.

        ``grad`` is the gradient of the final objective with respect to this tensor; it may be
        omitted only for a one-element tensor (then it is 1). See the module docstring for the
        accumulation and graph-freeing rules.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require a gradient: create the leaves with "
                "requires_grad=True, and compute the result outside no_grad()"
            )
        root = self.graph_node()
        if root.backward is _FREED:
            raise RuntimeError(_FREED_MESSAGE)
        seed = self._seed_gradient(grad)
        grads: dict[int, Any] = {id(root): seed}
        stored: set[int] = {id(seed)}  # arrays already handed to some .grad (copy before reuse)
        order = _topological_order(root)
        for i in range(len(order) - 1, -1, -1):
            node, order[i] = order[i], None  # drop our reference early to free memory
            g = grads.pop(id(node), None)
            if g is None:
                continue
            for hook in node.hooks:
                replaced = hook(g)
                g = g if replaced is None else replaced
            if node.grad_target is not None:
                tensor = node.grad_target()
                if tensor is not None:  # None: a retained tensor that no longer exists
                    tensor.grad = _accumulate(tensor.grad, g, stored)
            backward_fn = node.backward
            if backward_fn is None:
                continue
            if backward_fn is _FREED:
                raise RuntimeError(_FREED_MESSAGE)
            for parent, parent_grad in zip(node.parents, backward_fn(g), strict=True):
                if parent_grad is not None and parent is not None:
                    key = id(parent)
                    grads[key] = grads[key] + parent_grad if key in grads else parent_grad
            if not retain_graph:
                node.parents, node.backward, node.hooks = (), _FREED, ()

    def _seed_gradient(self, grad: Any) -> Any:
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a tensor of shape {self.shape} needs the gradient of the "
                    "objective with respect to it: call t.backward(grad) with an array of that "
                    "shape, or reduce to a scalar first (for example t.sum().backward())"
                )
            return backend.xp(self.device).ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, device=self.device)
        if grad.shape != self.shape:
            raise ValueError(
                f"backward(grad): grad has shape {grad.shape} but the tensor has shape {self.shape}"
            )
        return grad.astype(self.dtype, copy=False)

    # ----- operators (implemented in ops) ----------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops().add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops().add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops().sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops().sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops().mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops().mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops().div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops().div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops().pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops().pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops().matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops().matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops().neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops().getitem(self, index)

    # Comparisons give tensors of booleans, outside the graph.
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= _raw(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data == _raw(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data != _raw(other))

    __hash__ = object.__hash__

    # ----- method spellings of common ops ----------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().mean(self, axis, keepdims)

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        return _ops().var(self, axis, ddof, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().max(self, axis, keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        return _ops().reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        return _ops().transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's spelling)
        return _ops().transpose(self, None)

    def exp(self) -> Tensor:
        return _ops().exp(self)

    def log(self) -> Tensor:
        return _ops().log(self)

    def sqrt(self) -> Tensor:
        return _ops().sqrt(self)

    def abs(self) -> Tensor:
        return _ops().abs(self)

    def clip(self, low: Any = None, high: Any = None) -> Tensor:
        return _ops().clip(self, low, high)


_FREED_MESSAGE = (
    "backward() through a graph that an earlier backward() already freed: recompute the "
    "forward pass, or call the first backward(retain_graph=True)"
)


def _ops() -> Any:
    """The ops module (imported late: ops builds on this module)."""
    from tinynormact import ops

    return ops


def _raw(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _accumulate(current: Any, g: Any, stored: set[int]) -> Any:
    """``current + g`` for a .grad slot, never aliasing an array stored elsewhere."""
    if current is not None:
        return current + g
    if id(g) in stored or getattr(g, "base", None) is not None:
        g = g.copy()
    stored.add(id(g))
    return g


def _topological_order(root: Node) -> list[Node]:
    """Nodes that ``root`` depends on, each after all of its parents (iterative DFS)."""
    order: list[Node] = []
    visited: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order
