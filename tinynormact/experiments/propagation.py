"""Signal propagation at initialization: measured per layer, next to the theory (THEORY E8-E10).

For each activation and form, an MLP of ``depth`` hidden layers of ``width`` units (LeCun init,
sigma_w^2 = 1) gets a batch of standard normal inputs; one tracked forward and backward
(``tracking.measure_propagation``) gives per layer the forward second moment q_l = E[h_l^2], the
backward E[delta_l^2] and the weight-gradient second moment E[gW_l^2], which
``theory.mlp_profile`` predicts from the activation's Gaussian moments; ``stability_at_start``
says whether E8 is unstable there (E19, E22), in which case the prediction fails at depth.
"""

from __future__ import annotations

from typing import Any

from tinynormact import nn, theory, tracking
from tinynormact.engine import backend
from tinynormact.engine.backend import np

__all__ = ["STATISTICS", "measure_network", "signal_propagation", "stability_at_start"]

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
    q0 = float(np.mean(x * x))
    predicted = tracking.theory_record(theory.mlp_profile(used, widths, q0=q0))
    return {
        "measured": {key: measured[key].tolist() for key in STATISTICS},
        "theory": {key: np.asarray(predicted[key]).tolist() for key in STATISTICS},
        "stability": stability_at_start(used, q0),
    }


def stability_at_start(act: Any, q0: float) -> dict[str, Any]:
    """Whether E8 is unstable where the network starts (THEORY E19, E22): "unstable" when the
    slope chi_q(q0) exceeds 1 or an unstable fixed point lies within a factor 2 of q0; then
    finite-width deviations grow layer by layer and measured batch means leave E8-E9 at depth.
    (For an adaptive form this describes its lambda at initialization only.)"""
    slope = float(theory.q_map_slope(act, q0))
    near = [p.q for p in theory.fixed_points(act) if p.stability == "unstable" and q0 / 2 <= p.q <= 2 * q0]
    return {"chi_q": slope, "unstable_fixed_points": near, "unstable": slope > 1.0 or bool(near)}


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
