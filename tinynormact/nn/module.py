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

Calling a module runs ``forward`` and then its hooks:

- forward hooks ``hook(module, inputs, output)`` run after ``forward``;
- backward hooks ``hook(module, grad_output)`` receive, during ``backward()``, the gradient array
  of the loss with respect to the module's output (for a Linear layer: delta_l of THEORY E9).
  A backward hook that returns an array replaces the gradient passed on.

Both registrations return a handle whose ``remove()`` unregisters the hook. A module without
hooks pays one empty-list check per call and nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from tinynormact import backend
from tinynormact.autograd import Tensor

ForwardHook = Callable[["Module", tuple[Any, ...], Any], None]
BackwardHook = Callable[["Module", Any], Any]


class Parameter(Tensor):
    """A trainable tensor: a leaf that always requires a gradient."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, device: str | None = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor(") :]


class HookHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook (twice is harmless)."""

    def __init__(self, hooks: list[Any], hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


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
        output = self.forward(*inputs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks):
                hook(self, inputs, output)
        if self._backward_hooks and isinstance(output, Tensor) and output.requires_grad:
            for hook in self._backward_hooks:
                output.register_hook(_bind(hook, self))
        return output

    def register_forward_hook(self, hook: ForwardHook) -> HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward."""
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    def register_backward_hook(self, hook: BackwardHook) -> HookHandle:
        """Call ``hook(module, grad_output)`` with the gradient array of the loss with respect to
        this module's output, during backward (only when the output requires a gradient)."""
        self._backward_hooks.append(hook)
        return HookHandle(self._backward_hooks, hook)

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


def _bind(hook: BackwardHook, module: Module) -> Callable[[Any], Any]:
    """A tensor hook ``grad -> hook(module, grad)``."""
    return lambda grad: hook(module, grad)


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
