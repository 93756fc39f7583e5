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

Rules (docs/guide/tour.md repeats them):

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

from tinynormact.engine import backend

BackwardFn = Callable[[Any], tuple[Any, ...]]
ForwardFn = Callable[[Any], Any]

Hook = Callable[[Any], Any]
_grad_mode = {"enabled": True}
# While ``replay.record`` runs a step: the list every operation appends (output, forward, op) to.
_recording: dict[str, list | None] = {"steps": None}


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
    ``hooks`` are the tensor hooks (``Tensor.register_hook``) run on the gradient reaching it.
    ``pending`` is the gradient summed so far while a ``backward()`` runs through the node (None
    otherwise): the gradient waits on its node, with no lookup to find it.
    """

    __slots__ = (
        "parents",
        "backward",
        "op",
        "shape",
        "hooks",
        "grad_target",
        "released",
        "pending",
        "__weakref__",
    )

    def __init__(
        self, parents: tuple[Node | None, ...], backward: BackwardFn | None, op: str, shape: tuple[int, ...]
    ) -> None:
        self.parents, self.backward, self.op, self.shape = parents, backward, op, shape
        self.hooks: tuple[Hook, ...] = ()
        self.grad_target: Callable[[], Tensor | None] | None = None
        self.released = False  # True once a backward() freed its closure
        self.pending: Any = None

    @property
    def is_leaf(self) -> bool:
        """A tensor made by the user: no closure, and never had one."""
        return self.backward is None and not self.released

    def release(self) -> None:
        """Drop the closure (and the arrays it holds), the parents and the hooks."""
        self.parents, self.backward, self.hooks, self.released = (), None, (), True


class HookHandle:
    """Returned by every hook registration; ``remove()`` unregisters the hook (twice is harmless)."""

    __slots__ = ("_remove",)

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def remove(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None


def _checked_numbers(array: Any, data: Any) -> Any:
    """``array`` (converted from ``data``) if it holds numbers; TypeError naming ``data`` if not
    (strings, None, dicts and other objects become object or text arrays that fail later)."""
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"a Tensor holds numbers (bool, integer, float or complex), got {type(data).__name__} "
            f"{data!r:.60} (array dtype {array.dtype})"
        )
    return array


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
        self.data = _checked_numbers(backend.asarray(data, dtype=dtype, device=device), data)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require a gradient; got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node: Node | None = None  # made when first needed (see graph_node)

    # ----- construction of graph nodes (used by ops) ---------------------------------------
    @classmethod
    def from_op(
        cls,
        data: Any,
        parents: tuple[Tensor, ...],
        backward: BackwardFn,
        op: str,
        forward: ForwardFn | None = None,
    ) -> Tensor:
        """The result of operation ``op``: records ``parents`` and ``backward`` when needed.

        ``forward(out)``, given by the operations a replay can run, recomputes ``data`` from the
        inputs' current values into the array ``out`` (``replay`` keeps it only while recording)."""
        out = cls.__new__(cls)
        out.data = data
        out.grad = None
        out.requires_grad, out._node = False, None
        if _grad_mode["enabled"]:
            nodes = tuple([(p._node or p.graph_node()) if p.requires_grad else None for p in parents])
            if any(nodes):
                out.requires_grad, out._node = True, Node(nodes, backward, op, data.shape)
        if _recording["steps"] is not None:
            _recording["steps"].append((out, forward, op))
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
        return self._node is None or self._node.is_leaf

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
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad, device=device)

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

    def register_hook(self, hook: Hook) -> HookHandle:
        """Call ``hook(grad)`` with this tensor's full gradient array during backward() (PyTorch's
        ``Tensor.register_hook``). A hook that returns an array replaces the gradient passed on.

        Returns a handle whose ``remove()`` unregisters the hook; it holds the graph only weakly,
        so a hook may keep its own handle without keeping the graph alive. A hook on a leaf
        stays until removed; one on an intermediate tensor goes with its graph.
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

        return HookHandle(remove)

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
        backpropagate(topological_order(root), self._seed_gradient(grad), retain_graph)

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

    # Comparisons give tensors of booleans, outside the graph.
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= raw(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data == raw(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data != raw(other))

    __hash__ = object.__hash__

    # The arithmetic operators (+, *, @, ...) and the methods sum, mean, reshape, exp, ... are
    # differentiable operations: ``ops`` defines them and attaches them to Tensor (at its end).


# ----- the helpers of backward() ---------------------------------------------------------------


def backpropagate(order: list[Node], seed: Any, retain_graph: bool) -> None:
    """The loop of ``backward()``: visit ``order`` (``topological_order`` of the root) from the
    end, the root first with gradient ``seed``, passing each node's gradient through its closure
    and summing what reaches a parent over the paths to it (on the parent: ``Node.pending``)."""
    handed_out: set[int] = set()  # arrays given to some .grad (see _store_grad)
    order[-1].pending = seed
    try:
        for node in reversed(order):
            g, node.pending = node.pending, None
            if g is None:  # no path from the root carries a gradient to this node
                continue
            if node.hooks:
                g = _run_hooks(node, g)
            if node.grad_target is not None:
                _store_grad(node.grad_target(), g, handed_out)
            if node.backward is None:  # a leaf, or a node an earlier backward() freed
                if node.released:
                    _refuse_released()
                continue
            grads = node.backward(g)
            if len(grads) != len(node.parents):
                _refuse_gradient_count(node, grads)
            # checked above, not by zip's strict=: any keyword sends zip down CPython's slower
            # call path, once per node (docs/benchmarks.md, "Buffers made once per call")
            for parent, parent_grad in zip(node.parents, grads):  # noqa: B905
                if parent is not None and parent_grad is not None:
                    summed = parent.pending
                    parent.pending = parent_grad if summed is None else summed + parent_grad
            if not retain_graph:
                node.release()
    except BaseException:  # an error part way (a hook, a closure) leaves no gradient waiting
        for node in order:
            node.pending = None
        raise


def topological_order(root: Node) -> list[Node]:
    """Nodes that ``root`` depends on, each after all of its parents (iterative depth-first
    search, last parent first: a node is listed once every parent has been)."""
    order: list[Node] = []
    visited = {root}
    stack = [(root, reversed(root.parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:  # resumes where this node's last visit left off
            if parent is not None and parent not in visited:
                visited.add(parent)
                stack.append((parent, reversed(parent.parents)))
                break
        else:  # every parent listed
            stack.pop()
            order.append(node)
    return order


def _run_hooks(node: Node, g: Any) -> Any:
    """Run the node's tensor hooks in order; a hook that returns an array replaces ``g``."""
    for hook in node.hooks:
        replaced = hook(g)
        g = g if replaced is None else replaced
    return g


def _store_grad(tensor: Tensor | None, g: Any, handed_out: set[int]) -> None:
    """Add ``g`` to the ``.grad`` of ``tensor`` (a node's ``grad_target()``: a leaf, or one that
    called ``retain_grad``), never letting two ``.grad`` share one array."""
    if tensor is None:  # a retained tensor that no longer exists
        return
    if tensor.grad is not None:
        tensor.grad = tensor.grad + g
        return
    if id(g) in handed_out or getattr(g, "base", None) is not None:  # shared or a view
        g = g.copy()
    handed_out.add(id(g))
    tensor.grad = g


def _refuse_gradient_count(node: Node, grads: Any) -> None:
    """Refuse a backward closure that does not return one gradient per input."""
    raise RuntimeError(
        f"the backward of {node.op!r} returned {len(grads)} gradient(s) for its "
        f"{len(node.parents)} input(s): it must return one per input, None where there is none"
    )


def _refuse_released() -> None:
    """Refuse a second backward() through a graph the first one freed."""
    raise RuntimeError(
        "backward() through a graph that an earlier backward() already freed: recompute the "
        "forward pass, or call the first backward(retain_graph=True)"
    )


def raw(value: Any) -> Any:
    """The array inside a Tensor; any other value unchanged."""
    return value.data if isinstance(value, Tensor) else value
