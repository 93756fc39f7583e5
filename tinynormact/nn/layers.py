"""The basic layers: Linear (h = x W^T + b) and Activation (x = phi(h))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from tinynormact import activations, backend, ops
from tinynormact.activations import ActivationFunction
from tinynormact.autograd import Tensor
from tinynormact.nn import init as nn_init
from tinynormact.nn.module import HookHandle, Module, Parameter

DerivativeHook = Callable[["Activation", Any, Any], None]
GradientHook = Callable[["Linear", "LinearGradients"], None]


class LinearGradients(NamedTuple):
    """What a Linear layer's backward computes: the gradient reaching its output (delta_l / B of
    THEORY E9 under a batch-mean loss), and from it the gradients of its input, weight and bias
    (None where none is needed). ``input`` is this layer's contribution to the input's gradient."""

    output: Any
    input: Any
    weight: Any
    bias: Any


class Linear(Module):
    """h = x @ weight.T + bias for x of shape (batch, in_features); one fused graph node.

    ``weight`` has shape (out_features, in_features), ``bias`` (out_features,) starts at zero.
    ``init`` is a scheme name of ``nn.init`` (default "lecun_normal": Var(W) = 1 / fan_in, the
    sigma_w^2 = 1 of THEORY E8-E14) or a callable ``init(weight, rng=rng)``. ``activation`` (the
    activation that follows the layer, a name or ActivationFunction) makes the gain
    activation-aware: computed from the theory, see ``nn.init.initialize``. ``rng`` is an int
    seed or a NumPy Generator; ``dtype`` defaults to the default dtype.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | nn_init.Initializer = "lecun_normal",
        activation: str | ActivationFunction | None = None,
        dtype: Any = None,
        rng: nn_init.Rng = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if int(value) != value or value < 1:
                raise ValueError(f"Linear: {name} must be an integer >= 1, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = backend.get_default_dtype() if dtype is None else dtype
        self.weight = Parameter(backend.np.zeros((self.out_features, self.in_features)), dtype=dtype)
        nn_init.initialize(self.weight, init, activation, rng)
        self.bias = Parameter(backend.np.zeros(self.out_features), dtype=dtype) if bias else None
        self._gradient_hooks: list[GradientHook] = []

    def forward(self, x: Any) -> Tensor:
        return ops.linear(ops.as_tensor(x), self.weight, self.bias, self._gradient_observer())

    def register_gradient_hook(self, hook: GradientHook) -> HookHandle:
        """Call ``hook(module, gradients)`` during backward with the ``LinearGradients`` this
        layer's backward computes; variance tracking reads the per-layer gradients this way. A
        forward binds the hooks registered at that time: adding or removing one applies from
        the next forward."""
        self._gradient_hooks.append(hook)
        return HookHandle(self._gradient_hooks, hook)

    def _gradient_observer(self) -> Callable[[Any, Any, Any, Any], None] | None:
        """The ``on_backward`` callback of ``ops.linear`` (None without hooks: no cost)."""
        if not self._gradient_hooks:
            return None
        hooks = tuple(self._gradient_hooks)

        def observe(output: Any, input: Any, weight: Any, bias: Any) -> None:  # noqa: A002
            gradients = LinearGradients(output, input, weight, bias)
            for hook in hooks:
                hook(self, gradients)

        return observe

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Activation(Module):
    """x = phi(h) elementwise, for any activation name of ``activations`` with its parameters.

    ``Activation("relu")``, ``Activation("swish", beta=2.0)``. A normalized name "n<name>" builds
    a ``NormalizedActivation`` (a subclass) and passes the options on:
    ``Activation("nswish", mode="adaptive", rule="backward", center=True)``.
    ``function`` is the ActivationFunction applied (for a normalized activation: phi_hat at
    initialization), which the theory and the initializers use.
    """

    def __new__(cls, name: str | ActivationFunction = "identity", *args: Any, **options: Any) -> Activation:
        if cls is Activation and is_normalized_name(name):
            from tinynormact.nn.normalized import NormalizedActivation  # subclass: imported late

            return super().__new__(NormalizedActivation)
        return super().__new__(cls)

    def __init__(self, name: str | ActivationFunction, **params: Any) -> None:
        super().__init__()
        self.function = get_activation(name, **params)
        self._derivative_hooks: list[DerivativeHook] = []

    def forward(self, x: Any) -> Tensor:
        return ops.activation(ops.as_tensor(x), self.function, self._derivative_observer())

    def register_derivative_hook(self, hook: DerivativeHook) -> HookHandle:
        """Call ``hook(module, derivative, scale)`` during backward, where ``scale * derivative``
        is the elementwise derivative of this module's output with respect to its input, lambda
        and mu held constant (phi'(h), THEORY E6): the array backward computes anyway. ``scale``
        is 1.0, except for a NormalizedActivation that applies lambda as a separate factor: then
        ``derivative`` is the base phi' and ``scale`` that lambda (a number or a 0-d array).
        Variance tracking measures rho' this way without recomputing phi'. A forward binds the
        hooks registered at that time: adding or removing one applies from the next forward."""
        self._derivative_hooks.append(hook)
        return HookHandle(self._derivative_hooks, hook)

    def _derivative_observer(self, scale: Callable[[], Any] | None = None) -> Callable[[Any], None] | None:
        """The ``on_derivative`` callback of ``ops.activation`` that runs the derivative hooks
        (None without hooks: no cost); ``scale()`` gives the factor, read when backward runs."""
        if not self._derivative_hooks:
            return None
        hooks = tuple(self._derivative_hooks)

        def observe(derivative: Any) -> None:
            factor = 1.0 if scale is None else scale()
            for hook in hooks:
                hook(self, derivative, factor)

        return observe

    def extra_repr(self) -> str:
        return repr(self.function)


def is_normalized_name(name: Any) -> bool:
    """True for a normalized-activation name "n<base>" whose base is a registered activation."""
    return isinstance(name, str) and activations.parse_normalized_name(name) is not None


def get_activation(name: str | ActivationFunction, **params: Any) -> ActivationFunction:
    """``activations.get``, whose error for an unknown name also mentions "n<name>"."""
    # parse_normalized_name("n" + name) recognises exactly the registered names and aliases
    if isinstance(name, str) and activations.parse_normalized_name("n" + name) is None:
        valid = ", ".join(activations.names())
        raise ValueError(
            f"unknown activation {name!r}; valid activations are {valid}, an alias of one, "
            "or 'n' + any of them for a normalized activation (e.g. nswish)"
        )
    return activations.get(name, **params)
