"""Signal propagation at initialization: measured per layer, next to the theory (THEORY E8-E10).

For each activation and form, an MLP of ``depth`` hidden layers of ``width`` units (LeCun init,
sigma_w^2 = 1) gets a batch of standard normal inputs; one tracked forward and backward
(``tracking.measure_propagation``) gives per layer the forward second moment q_l = E[h_l^2], the
backward E[delta_l^2] and the weight-gradient second moment E[gW_l^2], which
``theory.mlp_profile`` predicts from the activation's Gaussian moments.
"""

from __future__ import annotations

from typing import Any

from tinynormact import backend, nn, theory, tracking
from tinynormact.backend import np

__all__ = ["STATISTICS", "measure_network", "signal_propagation"]

STATISTICS = ("preact_sq", "delta_sq", "weight_grad_sq")


def measure_network(
    activation: str, options: dict[str, Any], depth: int, width: int, batch: int, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """{"measured": {statistic: per-layer list}, "theory": {...}} for one activation and options
    (``{}`` for a vanilla activation, ``{"mode": ...}`` for "n<name>")."""
    widths = [width] * (depth + 2)
    model = nn.MLP(widths, activation, options, rng=seed)
    x = backend.default_rng([seed, 1]).standard_normal((batch, width))
    measured = tracking.measure_propagation(model, backend.asarray(x, dtype=model[0].weight.dtype), rng=seed)
    used = model[1].function  # phi, or lambda * (phi - mu) at initialization for "n<name>"
    predicted = tracking.theory_record(theory.mlp_profile(used, widths, q0=float(np.mean(x * x))))
    return {
        "measured": {key: measured[key].tolist() for key in STATISTICS},
        "theory": {key: np.asarray(predicted[key]).tolist() for key in STATISTICS},
    }


def signal_propagation(
    activations: tuple[str, ...],
    forms: tuple[str, ...],
    depth: int,
    width: int,
    batch: int,
    rule: str = "balanced",
    center: bool = False,
) -> dict[str, dict[str, Any]]:
    """{activation: {form: measure_network(...)}} for every activation and form."""
    result: dict[str, dict[str, Any]] = {}
    for act in activations:
        result[act] = {}
        for form in forms:
            name = act if form == "vanilla" else "n" + act
            options = {} if form == "vanilla" else {"mode": form, "rule": rule, "center": center}
            result[act][form] = measure_network(name, options, depth, width, batch)
    return result
