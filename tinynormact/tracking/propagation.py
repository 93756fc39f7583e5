"""Signal propagation at initialization, measured by a ``VarianceTracker`` (THEORY E8-E10)."""

from __future__ import annotations

import math
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.autograd import Tensor, is_grad_enabled
from tinynormact.engine.backend import np
from tinynormact.nn.init import as_generator
from tinynormact.nn.module import Module
from tinynormact.tracking.tracker import VarianceTracker

__all__ = ["measure_propagation"]


def measure_propagation(model: Module, x: Any, rng: int | Any = 0) -> dict[str, np.ndarray]:
    """Signal propagation at the model's current weights: one forward and backward, tracked.

    The backward pass is seeded as the batch mean of per-example losses whose output gradients
    u_b are independent N(0, 1), rescaled so that mean(u^2) = 1 exactly: the per-example
    gradient second moment at the output is 1, the ``grad_out_sq=1`` of ``theory.mlp_profile``.
    Returns ``VarianceTracker.profile``'s per-layer arrays. The parameters' ``.grad`` are left
    as they were; an adaptive layer in training mode updates its running statistics, as in any
    training forward. ``rng`` is a seed or a NumPy Generator.
    """
    if not is_grad_enabled():
        raise RuntimeError("measure_propagation needs autograd: call it outside no_grad()")
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with VarianceTracker(model) as tracker:
            out = model(x if isinstance(x, Tensor) else Tensor(x))
            u = as_generator(rng).standard_normal(out.shape)
            u /= math.sqrt(float(np.mean(u * u)))
            out.backward(backend.asarray(u / out.shape[0], dtype=out.dtype, device=out.device))
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    return tracker.profile(0)
