"""Text tables of the theory: the gains table (E5-E7, E15) and the stability table (E19-E22)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tinynormact.engine.backend import np
from tinynormact.theory import activations
from tinynormact.theory.activations import ActivationFunction
from tinynormact.theory.depth import forward_fixed_point
from tinynormact.theory.moments import Act, _as_q, gaussian_moments
from tinynormact.theory.normalization import RULES, _lambda, normalized
from tinynormact.theory.stability import (
    FixedPoint,
    backward_factor,
    fixed_points,
    large_q_growth,
    q_map_slope,
)


def stability_table(
    acts: Sequence[str] | None = None,
    rules: Sequence[str] = RULES,
    centers: Sequence[bool] = (False, True),
    q: float = 1.0,
    weight_var: float = 1.0,
) -> list[dict[str, Any]]:
    """E19-E22 for the static normalized forms (E15 at ``q``) of ``acts`` under each rule and
    centring, in a network with weights of variance weight_var / fan_in and no bias.

    Keys: activation, rule, center, chi_q (E19 at q), chi (E20 at q), fixed_points (a list of
    ``FixedPoint``), reached (E8's limit from q0 = q, ``forward_fixed_point``) and
    reached_stability (that fixed point's stability), large_q_growth.
    ``acts`` defaults to the activations of the reproduction's presets.
    """
    rows = []
    for name in acts or ("relu", "tanh", "sigmoid", "swish", "gelu", "elu"):
        for rule in rules:
            for center in centers:
                act = normalized(name, rule, q, center)
                rows.append(
                    _stability_row(act, q, weight_var) | {"activation": name, "rule": rule, "center": center}
                )
    return rows


def _stability_row(act: ActivationFunction, q: float, weight_var: float) -> dict[str, Any]:
    points = fixed_points(act, weight_var)
    reached = forward_fixed_point(act, weight_var, 0.0, q)
    match = [
        p.stability for p in points if p.stability == "every q" or math.isclose(p.q, reached, rel_tol=1e-6)
    ]
    return {
        "chi_q": float(q_map_slope(act, q, weight_var)),
        "chi": float(backward_factor(act, q, weight_var)),
        "fixed_points": points,
        "reached": reached,
        "reached_stability": match[0] if match else ("escapes" if reached == math.inf else "not found"),
        "large_q_growth": large_q_growth(act, weight_var),
    }


def activation_stability(
    acts: Sequence[Act], q: float = 1.0, weight_var: float = 1.0
) -> list[dict[str, Any]]:
    """``stability_table``'s columns for activations given as they are (e.g. ``normalized(...)``)."""
    return [
        {"activation": _table_label(activations.get(a))} | _stability_row(activations.get(a), q, weight_var)
        for a in acts
    ]


def format_fixed_points(points: Sequence[FixedPoint]) -> str:
    """'q* (chi_q, stability, xi_q)' for each fixed point (E19, E21, E22), e.g.
    '0 (0.681, stable, xi 2.6); 1.202 (1.17, unstable, xi 6.3)'."""
    if points and points[0].stability == "every q":
        return f"every q ({points[0].chi_q:.3g}, marginal, xi inf)"
    return (
        "; ".join(f"{p.q:.4g} ({p.chi_q:.3g}, {p.stability}, xi {p.depth_scale:.2g})" for p in points)
        or "none"
    )


def format_stability_table(rows: Sequence[dict[str, Any]]) -> str:
    """``stability_table`` or ``activation_stability`` rows as an aligned text table."""
    if not rows:
        return ""
    header = [k for k in ("activation", "rule", "center") if k in rows[0]]
    header += ["chi_q at q", "chi at q", "fixed points: q* (chi_q, stability, xi_q)", "E8 limit from q0 = q"]
    header += ["growth at large q"]
    lines = [header]
    for row in rows:
        cells = [str(row[k]) for k in ("activation", "rule", "center") if k in row]
        cells += [f"{row['chi_q']:.4f}", f"{row['chi']:.4f}", format_fixed_points(row["fixed_points"])]
        cells += [f"{row['reached']:.4g} ({row['reached_stability']})", f"{row['large_q_growth']:.4f}"]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


# --- the gains table ------------------------------------------------------------------------------


def _table_label(act: ActivationFunction) -> str:
    """The bare name for an activation with its default parameters, else its full repr."""
    try:
        defaults = activations.get(act.name).params
    except ValueError:  # not a registered name (e.g. an affine activation)
        return repr(act)
    return act.name if act.params == defaults else repr(act)


_TABLE_LAMBDAS = (
    ("lambda_forward", "forward", False),
    ("lambda_backward", "backward", False),
    ("lambda_balanced", "balanced", False),
    ("lambda_forward_c", "forward", True),
    ("lambda_balanced_c", "balanced", True),
)


def gains_table(acts: Sequence[Act] | None = None, q: float = 1.0) -> list[dict[str, Any]]:
    """One row per activation with E5-E7, lambda under each rule (E12-E14) and the init gains.

    Keys: activation, m1, rho, rho_c, rho_prime, kappa, lambda_forward, lambda_backward,
    lambda_balanced, lambda_forward_c, lambda_balanced_c (the centred rules, with shift m1),
    gain_forward, gain_backward (``init_gain``'s conventions; they equal the uncentred lambdas).
    ``acts`` defaults to every registered activation with its default parameters.
    """
    q = _as_q(q)
    if np.ndim(q) != 0:
        raise ValueError(f"gains_table needs one q, got an array of shape {np.shape(q)}")
    rows = []
    for act in activations.names() if acts is None else acts:
        act = activations.get(act)
        m = gaussian_moments(act, q)
        lam = {  # centring does not change phi', so there is no separate centred backward rule
            key: float(_lambda(m, q, rule, center)) for key, rule, center in _TABLE_LAMBDAS
        }
        rows.append(
            {
                "activation": _table_label(act),
                "m1": m.m1,
                "rho": m.m2 / q,
                "rho_c": m.v / q,
                "rho_prime": m.d2,
                "kappa": m.d2 * q / m.m2,
                **lam,
                "gain_forward": lam["lambda_forward"],
                "gain_backward": lam["lambda_backward"],
            }
        )
    return rows


def format_gains_table(rows: Sequence[dict[str, Any]]) -> str:
    """``gains_table`` rows as an aligned text table (numbers to 6 decimals)."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[f"{row[c]:.6f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns] + cells
    aligned = [
        [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        for line in lines
    ]
    return "\n".join("  ".join(line) for line in aligned)
