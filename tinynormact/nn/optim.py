"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping.

Usage per training step::

    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm(model.parameters(), max_norm=1.0)   # optional
    optimizer.step()
    schedule.step()                                    # optional, once per step (or per epoch)

Updates read ``p.grad`` and change ``p.data`` in place, outside the graph. Parameters whose
``.grad`` is None are skipped (their state does not advance). The update rules follow PyTorch's
(torch.optim) so that results can be compared; each class states its rule.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor
from tinynormact.infra.validation import check_integer

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "LRSchedule",
    "StepLR",
    "CosineLR",
    "LinearWarmup",
    "clip_grad_norm",
]


def _check(name: str, value: float, low: float, high: float = math.inf, include_low: bool = True) -> float:
    """``value`` as a float, or ValueError naming it when outside [low, high) (or (low, high))."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above = value >= low if include_low else value > low
    if not (math.isfinite(value) and above and value < high):
        bracket = "[" if include_low else "("
        upper = "inf)" if high == math.inf else f"{high})"
        raise ValueError(f"{name} must be in {bracket}{low}, {upper}, got {value!r}")
    return value


class Optimizer:
    """Base class: holds the parameters, the learning rate ``lr`` and per-parameter state.

    Subclasses list their hyperparameters in ``hyperparameter_names`` and define ``_update``.
    """

    hyperparameter_names: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        unique: dict[int, Tensor] = {}
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"optimizers take tensors that require a gradient, got {type(p).__name__}")
            unique.setdefault(id(p), p)
        if not unique:
            raise ValueError("the optimizer got an empty list of parameters")
        self.params: list[Tensor] = list(unique.values())
        self.lr = lr
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    @property
    def lr(self) -> float:
        """The learning rate; setting it (directly, by a schedule or from a saved state) checks it."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check("lr", value, 0.0)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad, state)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state (host NumPy copies), for resuming training."""
        state = [
            {k: backend.np.array(backend.to_numpy(v)) if hasattr(v, "shape") else v for k, v in s.items()}
            for s in self.state
        ]
        hyper = {name: getattr(self, name) for name in self.hyperparameter_names}
        return {"hyperparameters": hyper, "state": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``state_dict()``; the parameters must be the same, in the same order."""
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(
                f"optimizer state has {len(states)} parameters, this optimizer has {len(self.params)}"
            )
        restored = []
        for i, (p, saved) in enumerate(zip(self.params, states, strict=True)):
            entry = {}
            for key, value in saved.items():
                if hasattr(value, "shape"):
                    if tuple(value.shape) != p.shape:
                        raise ValueError(
                            f"optimizer state {key!r} of parameter {i}: shape {value.shape} vs {p.shape}"
                        )
                    value = backend.asarray(value, dtype=p.dtype, device=p.device).copy()
                entry[key] = value
            restored.append(entry)
        for name, value in state_dict["hyperparameters"].items():
            setattr(self, name, value)
        self.state = restored

    def __repr__(self) -> str:
        hyper = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.hyperparameter_names)
        return f"{type(self).__name__}({hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's rule, no dampening).

    g = grad + weight_decay * p;  with momentum mu: b = g on the first step, else b = mu * b + g;
    the step direction is b, or g + mu * b with ``nesterov``;  p <- p - lr * direction.
    """

    hyperparameter_names = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any]) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if self.momentum:
            buffer = state.get("momentum_buffer")
            buffer = grad.copy() if buffer is None else self.momentum * buffer + grad
            state["momentum_buffer"] = buffer
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        p.data -= self._lr * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba) with bias correction; weight_decay adds an L2 term to the gradient.

    g = grad + weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = 1, 2, ... per parameter.
    """

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")
    decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        self.eps = _check("eps", eps, 0.0, include_low=False)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        if self.decoupled:
            p.data *= 1.0 - self._lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * p.data
        t = state.get("step", 0) + 1
        m = beta1 * state.get("m", 0.0) + (1.0 - beta1) * grad
        v = beta2 * state.get("v", 0.0) + (1.0 - beta2) * grad * grad
        state.update(step=t, m=m, v=v)
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        p.data -= self._lr * m_hat / (v_hat**0.5 + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), PyTorch's rule:
    p <- p * (1 - lr * weight_decay), then the Adam step with the raw gradient."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


# ----------------------------------------------------------------------------------------------
# learning-rate schedules
# ----------------------------------------------------------------------------------------------


class LRSchedule:
    """Sets ``optimizer.lr = lr_at(t)`` where t counts the calls of ``step()`` (0 at creation).

    ``base_lr`` defaults to the optimizer's lr when the schedule is made.
    """

    def __init__(self, optimizer: Optimizer, base_lr: float | None = None) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr if base_lr is None else base_lr
        self.last_step = 0
        optimizer.lr = self.get_lr()

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> float:
        """The learning rate for the current step."""
        return self.lr_at(self.last_step)

    def step(self) -> None:
        """Advance one step and set the optimizer's learning rate."""
        self.last_step += 1
        self.optimizer.lr = self.get_lr()


class StepLR(LRSchedule):
    """lr = base_lr * gamma ** (t // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_integer("step_size", step_size, 1)
        self.gamma = _check("gamma", gamma, 0.0)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineLR(LRSchedule):
    """lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2, then min_lr."""

    def __init__(self, optimizer: Optimizer, total_steps: int, min_lr: float = 0.0) -> None:
        self.total_steps = check_integer("total_steps", total_steps, 1)
        self.min_lr = _check("min_lr", min_lr, 0.0)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        progress = min(t, self.total_steps) / self.total_steps
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LinearWarmup(LRSchedule):
    """lr = base_lr * (t + 1) / warmup_steps for t < warmup_steps, then ``after``'s schedule
    (restarted at its own step 0) or the constant base_lr. ``after`` must drive the same
    optimizer; step only the warmup, which steps nothing else."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, after: LRSchedule | None = None) -> None:
        check_integer("warmup_steps", warmup_steps, 1)
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: the wrapped schedule drives a different optimizer")
        self.warmup_steps = int(warmup_steps)
        self.after = after
        super().__init__(optimizer, None if after is None else after.base_lr)

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.base_lr * (t + 1) / self.warmup_steps
        return self.after.lr_at(t - self.warmup_steps) if self.after is not None else self.base_lr


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> Any:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping as a 0-d array on the gradients' device (as PyTorch returns
    a tensor): computing it and clipping need no host synchronisation; ``float()`` of it is one.
    The gradients are replaced by new arrays (never modified in place); a non-finite norm leaves
    their values unchanged.
    """
    max_norm = _check("max_norm", max_norm, 0.0, include_low=False)
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return backend.np.zeros(())
    xp = backend.get_array_module(grads[0].grad)
    total = xp.sqrt(sum((p.grad * p.grad).sum() for p in grads))
    factor = xp.where(xp.isfinite(total), max_norm / xp.maximum(total, max_norm), 1.0)
    for p in grads:
        p.grad = p.grad * factor.astype(p.grad.dtype)
    return total
