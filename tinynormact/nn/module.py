"""Module, Parameter and Sequential: the containers every layer is built from.

A Module owns Parameters (trainable leaf tensors), buffers (tensors saved with the model but not
trained, such as running statistics) and child Modules. Assigning one of them as an attribute
registers it, as in PyTorch::

    class Affine(Module):
        def __init__(self):
            super().__init__()
            self.scale = Parameter(1.0)

        def forward(self, x):
            return x * self.scale

Hooks, with PyTorch's names and signatures (with ``Tensor.register_hook(hook(grad))``, the
library's only hook API):

- ``register_forward_hook(hook(module, inputs, output))``: runs after every ``forward``;
- ``register_full_backward_hook(hook(module, grad_input, grad_output))``: runs during
  ``backward()`` once the gradients of the module's inputs are known. ``grad_output`` is a
  1-tuple with the gradient array of the loss with respect to the output (for a Linear layer:
  delta_l / B of THEORY E9 under a batch-mean loss); ``grad_input`` has one entry per input,
  the gradient that flows back through this module (None for an input that needs none). The
  hook must return None (to change a gradient, use ``Tensor.register_hook``).

Each registration returns a handle whose ``remove()`` unregisters the hook. A module without
hooks pays one empty-list check per call and nothing else; with full backward hooks, each call
adds an identity node in the graph before and after the module, whose tensor hooks collect the
gradients.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from tinynormact.engine import backend
from tinynormact.engine.autograd import HookHandle, Tensor, is_grad_enabled

ForwardHook = Callable[["Module", tuple[Any, ...], Any], None]
FullBackwardHook = Callable[["Module", tuple[Any, ...], tuple[Any, ...]], None]


class Parameter(Tensor):
    """A trainable tensor: a leaf that always requires a gradient."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, device: str | None = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor(") :]


class StateDictError(ValueError):
    """A checkpoint does not fit the module: names the missing, unexpected and misshapen keys."""


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models. Subclasses call ``super().__init__()`` first and define
    ``forward``."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "_backward_hooks", [])
        object.__setattr__(self, "training", True)

    # ----- registration ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            if not isinstance(value, Tensor):
                raise TypeError(f"buffer {name!r} must be a Tensor, got {type(value).__name__}")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Register ``tensor`` (no gradient) as state saved in ``state_dict`` and moved by ``to``."""
        if tensor.requires_grad:
            raise ValueError(f"buffer {name!r} must not require a gradient (use a Parameter)")
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    # ----- traversal ------------------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        yield from self._modules.values()

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (name ``prefix``) and every descendant, depth first, with dotted names."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by two modules is listed once."""
        yield from self._named_tensors("_parameters")

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_tensors("_buffers")

    def buffers(self) -> Iterator[Tensor]:
        for _, buf in self.named_buffers():
            yield buf

    def _named_tensors(self, registry: str) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, tensor in getattr(module, registry).items():
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    yield (f"{prefix}.{name}" if prefix else name), tensor

    # ----- modes, gradients, devices ----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and all below it."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the accumulated gradients of every parameter."""
        for param in self.parameters():
            param.grad = None

    def to(self, device: str) -> Module:
        """Move every parameter and buffer to ``device`` in place (optimizers keep their
        references); returns self."""
        for tensor in (*self.parameters(), *self.buffers()):
            tensor.data = backend.to_device(tensor.data, device)
            if tensor.grad is not None:
                tensor.grad = backend.to_device(tensor.grad, device)
        return self

    # ----- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """Ordered {dotted name: host NumPy copy} of every parameter and buffer."""
        state: OrderedDict[str, Any] = OrderedDict()
        for name, tensor in (*self.named_parameters(), *self.named_buffers()):
            state[name] = backend.np.array(backend.to_numpy(tensor.data), copy=True)
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy ``state`` into the parameters and buffers, keeping their device and dtype.

        Shape mismatches always raise StateDictError; with ``strict`` (the default) missing and
        unexpected keys raise it too. The message names every offending key. Nothing is changed
        when it raises.
        """
        own = dict((*self.named_parameters(), *self.named_buffers()))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        misshapen = [
            f"{k}: checkpoint {tuple(backend.np.shape(state[k]))} vs model {own[k].shape}"
            for k in own
            if k in state and tuple(backend.np.shape(state[k])) != own[k].shape
        ]
        problems = [f"shape mismatch: {', '.join(misshapen)}"] if misshapen else []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if problems:
            raise StateDictError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, tensor in own.items():
            if name in state:
                host = backend.to_numpy(state[name])
                tensor.data = backend.asarray(host, dtype=tensor.dtype, device=tensor.device).copy()
        return LoadResult(missing, unexpected)

    # ----- calling and hooks ------------------------------------------------------------------
    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs: Any) -> Any:
        boundary = _BackwardBoundary(self) if self._backward_hooks and is_grad_enabled() else None
        if boundary is not None:
            inputs = boundary.wrap_inputs(inputs)
        output = self.forward(*inputs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks):  # a copy: a hook may remove itself
                hook(self, inputs, output)
        return output if boundary is None else boundary.wrap_output(output)

    def register_forward_hook(self, hook: ForwardHook) -> HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward."""
        return _append(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook: FullBackwardHook) -> HookHandle:
        """Call ``hook(module, grad_input, grad_output)`` during backward (see the module
        docstring); only for calls whose output requires a gradient."""
        return _append(self._backward_hooks, hook)

    # ----- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def _append(hooks: list[Any], hook: Any) -> HookHandle:
    hooks.append(hook)
    return HookHandle(lambda: hooks.remove(hook) if hook in hooks else None)


def _boundary_node(x: Tensor) -> Tensor:
    """x again, as a new graph node whose gradient is the gradient reaching x through it."""
    return Tensor.from_op(x.data, (x,), lambda g: (g,), "hook_boundary")


class _BackwardBoundary:
    """One call of a module with full backward hooks: identity nodes around the module catch
    the gradient of its output, then of each input, and run the hooks when all are in."""

    def __init__(self, module: Module) -> None:
        self.module, self.hooks = module, tuple(module._backward_hooks)
        self.grad_input: list[Any] = []
        self.grad_output: tuple[Any, ...] | None = None
        self.waiting = 0  # inputs whose gradient has not arrived yet

    def wrap_inputs(self, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        self.grad_input = [None] * len(inputs)
        wrapped = []
        for i, x in enumerate(inputs):
            if isinstance(x, Tensor) and x.requires_grad:
                x = _boundary_node(x)
                x.register_hook(self._input_hook(i))
                self.waiting += 1
            wrapped.append(x)
        return tuple(wrapped)

    def wrap_output(self, output: Any) -> Any:
        if not (isinstance(output, Tensor) and output.requires_grad):
            return output
        output = _boundary_node(output)
        output.register_hook(self._on_grad_output)
        return output

    def _on_grad_output(self, g: Any) -> None:
        self.grad_output = (g,)
        if self.waiting == 0:
            self._run()

    def _input_hook(self, i: int) -> Callable[[Any], None]:
        def hook(g: Any) -> None:
            self.grad_input[i] = g
            self.waiting -= 1
            if self.waiting == 0 and self.grad_output is not None:
                self._run()

        return hook

    def _run(self) -> None:
        grad_input, grad_output = tuple(self.grad_input), self.grad_output
        for hook in self.hooks:
            if hook(self.module, grad_input, grad_output) is not None:
                raise RuntimeError(
                    "a full backward hook must return None; to replace a gradient, use "
                    "Tensor.register_hook"
                )


class Sequential(Module):
    """Modules applied one after another; ``model[i]``, ``len(model)`` and iteration work."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
