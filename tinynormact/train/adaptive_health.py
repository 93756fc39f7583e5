"""Flags for the adaptive layer's failure modes (docs/THEORY.md E27-E29), in a run's result.

``AdaptiveHealth.watch(model, steps_per_epoch)`` puts a forward hook (``Module.register_forward_hook``)
on every ``NormalizedActivation`` in adaptive mode. On every ``every``-th training forward it keeps,
per layer, four numbers on the device: the lambda applied (with ``units``, its largest and its
smallest unit's), q = mean(h^2) and the fraction of active entries, |phi'(h)| >= ``ACTIVE_SLOPE``.
Nothing travels to the host until ``flags()``, one transfer at the end of the run. A layer is
flagged, at the first recorded step where it happens:

- "lambda at its ceiling": lambda within 0.1% of min(1/sqrt(eps), c lambda_static) (E27: both
  gains floored at eps; c the layer's ``lambda_bound``), or "at its floor" lambda_static / c;
- "dead or saturated": fewer than ``DEAD_FRACTION`` of its entries active (relu's dead units,
  swish far below 0, tanh saturated: phi' ~ 0 there, and rho'_b with it);
- "q grew": q reached ``Q_GROWTH`` times its value at the first recorded step (E29's drift).

A flag is a dict {"layer", "name", "step", "epoch", "what"} (layer 1-based in forward order,
step the 1-based optimizer step). A resumed run flags only what happened after the resume.
"""

from __future__ import annotations

import math
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor, is_grad_enabled
from tinynormact.nn import Module
from tinynormact.nn.normalized import NormalizedActivation

__all__ = ["ACTIVE_SLOPE", "DEAD_FRACTION", "Q_GROWTH", "AdaptiveHealth"]

ACTIVE_SLOPE = 0.1
DEAD_FRACTION = 0.01
Q_GROWTH = 100.0
_AT_LIMIT = 1e-3  # relative distance from a limit that counts as reaching it


class AdaptiveHealth:
    """Per-layer lambda, q and active fraction of a model's adaptive layers every ``every``
    training steps, and the flags they raise (see the module docstring)."""

    def __init__(self, layers: list[tuple[str, NormalizedActivation]], steps_per_epoch: int, every: int = 10):
        self.layers, self.steps_per_epoch, self.every = layers, max(int(steps_per_epoch), 1), int(every)
        self.forwards = 0  # training forwards of the first layer seen: the step being taken
        self.rows: list[tuple[int, list[Any]]] = []  # (step, per-layer [lambda, q, active])
        self._handles = [module.register_forward_hook(self._hook(i)) for i, (_, module) in enumerate(layers)]

    @classmethod
    def watch(cls, model: Module, steps_per_epoch: int, every: int = 10) -> AdaptiveHealth | None:
        """A monitor of ``model``'s adaptive layers, or None when it has none."""
        layers = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, NormalizedActivation) and m.mode == "adaptive"
        ]
        return cls(layers, steps_per_epoch, every) if layers else None

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, index: int) -> Any:
        def hook(module: NormalizedActivation, inputs: tuple[Any, ...], output: Tensor) -> None:
            if not (module.training and is_grad_enabled()):
                return
            if index == 0:
                self.forwards += 1
                if (self.forwards - 1) % self.every == 0:
                    self.rows.append((self.forwards, [None] * len(self.layers)))
            if not self.rows or self.rows[-1][0] != self.forwards:
                return
            h = inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0]
            xp = backend.get_array_module(h)
            lam = module.last_lambda.data if isinstance(module.last_lambda, Tensor) else module.last_lambda
            active = (xp.abs(module.base.df(h)) >= ACTIVE_SLOPE).mean()
            lam = xp.asarray(lam)
            values = [lam.max(), (h * h).mean(), active, lam.min()]
            self.rows[-1][1][index] = xp.stack([v.astype("float64") for v in values])

        return hook

    def record(self) -> dict[str, Any]:
        """{"step": (S,), "lambda", "lambda_min", "q", "active": (S, layers)} of the recorded
        steps, on the host (one transfer; "lambda" is the largest unit's, "lambda_min" the
        smallest's, both the layer's lambda without ``units``); empty arrays before the first
        recorded step."""
        rows = [(step, values) for step, values in self.rows if all(v is not None for v in values)]
        np = backend.np
        if not rows:
            empty = np.zeros((0, len(self.layers)))
            keys = ("lambda", "lambda_min", "q", "active")
            return {"step": np.zeros(0, dtype=int), **dict.fromkeys(keys, empty)}
        xp = backend.get_array_module(rows[0][1][0])
        table = backend.to_numpy(xp.stack([xp.stack(values) for _, values in rows]))  # (S, L, 4)
        steps = np.array([step for step, _ in rows])
        columns = {"lambda": 0, "q": 1, "active": 2, "lambda_min": 3}
        return {"step": steps, **{key: table[:, :, column] for key, column in columns.items()}}

    def flags(self) -> list[dict[str, Any]]:
        """The flags of the recorded steps (one host transfer)."""
        record = self.record()
        found = []
        for index, (name, module) in enumerate(self.layers):
            columns = [record[key][:, index] for key in ("lambda", "lambda_min", "q", "active")]
            for row, what in _layer_problems(module, *columns):
                step = int(record["step"][row])
                epoch = (step - 1) // self.steps_per_epoch + 1
                found.append({"layer": index + 1, "name": name, "step": step, "epoch": epoch, "what": what})
        return sorted(found, key=lambda flag: (flag["step"], flag["layer"]))


def _layer_problems(
    module: NormalizedActivation, lam: Any, lam_min: Any, q: Any, active: Any
) -> list[tuple[int, str]]:
    """(first recorded row, description) of each problem one layer shows over the recorded steps
    (``lam`` and ``lam_min``: its largest and smallest unit's lambda)."""
    if not len(q):
        return []
    ceiling = 1.0 / math.sqrt(module.eps)
    floor = 0.0
    if module.lambda_bound:
        ceiling = min(ceiling, module.static_lambda * module.lambda_bound)
        floor = module.static_lambda / module.lambda_bound
    tests = [
        (
            lam >= ceiling * (1 - _AT_LIMIT),
            lambda i: f"lambda at its ceiling {ceiling:.4g} (lambda {lam[i]:.4g})",
        ),
        (
            lam_min <= floor * (1 + _AT_LIMIT),
            lambda i: f"lambda at its floor {floor:.4g} (lambda {lam_min[i]:.4g})",
        ),
        (
            active < DEAD_FRACTION,
            lambda i: f"dead or saturated: {100 * active[i]:.2g}% of entries with |phi'| >= {ACTIVE_SLOPE}",
        ),
        (
            q >= Q_GROWTH * q[0],
            lambda i: f"q = E[h^2] grew {q[i] / q[0]:.3g}x (from {q[0]:.3g} to {q[i]:.3g})",
        ),
    ]
    problems = []
    for hit, describe in tests:
        hits = hit.nonzero()[0]
        if len(hits):
            problems.append((int(hits[0]), describe(int(hits[0]))))
    return problems
