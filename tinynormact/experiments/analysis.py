"""From run records to the reproduction's numbers.

- ``aggregate``: per (architecture, activation, form), the mean and standard deviation over
  seeds of the final test accuracy and of the convergence speed, and the epochs to the target;
- ``paired_differences``: normalized minus vanilla, seed by seed (same seed: same data order and
  the same initial weights before scaling), then mean and standard deviation;
- ``theory_table``: rho, rho', kappa and lambda (THEORY E5-E7, E12-E14) of each activation at
  q = 1, and the gains of the activation as used by each form;
- ``convergence_vs_property``: the paper's observation, convergence speed against a property
  measure of the activation as used, with Spearman's rank correlation.

Standard deviations are sample standard deviations (ddof = 1; 0 for a single seed). Runs that
diverged are counted but left out of means; a group with no completed run has NaN means.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import scipy.stats

from tinynormact import theory
from tinynormact.backend import np
from tinynormact.experiments.presets import FORMS

__all__ = [
    "MEASURES",
    "aggregate",
    "convergence_vs_property",
    "mean_std",
    "paired_differences",
    "theory_table",
]

# property measure -> (label, function of the gains of the activation as used)
MEASURES = {
    "gain_deviation": "|rho - 1| + |rho' - 1|",
    "log_kappa": "|log kappa|",
}


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of the finite ``values``; NaNs when none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return float(np.mean(finite)), std, len(finite)


def _groups(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["architecture"], run["activation"], run["form"])].append(run)
    return groups


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (architecture, activation, form) in the order the runs list them."""
    rows = []
    for (arch, act, form), group in _groups(runs).items():
        acc, acc_std, n_done = mean_std(r["final_test_acc"] for r in group)
        speed, speed_std, _ = mean_std(r["mean_train_loss"] for r in group)
        reached = [r["epochs_to_target"] for r in group if r["epochs_to_target"] is not None]
        rows.append(
            {
                "architecture": arch,
                "activation": act,
                "form": form,
                "seeds": len(group),
                "diverged": sum(r["status"] == "diverged" for r in group),
                "test_acc_mean": acc,
                "test_acc_std": acc_std,
                "mean_train_loss": speed,
                "mean_train_loss_std": speed_std,
                "reached_target": len(reached),
                "epochs_to_target_median": float(np.median(reached)) if reached else math.nan,
                "completed": n_done,
            }
        )
    return rows


def paired_differences(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Final test accuracy of each normalized form minus vanilla, paired by seed."""
    by_key = {(r["architecture"], r["activation"], r["form"], r["seed"]): r for r in runs}
    rows = []
    for arch, act, form in _groups(runs):
        if form == "vanilla":
            continue
        diffs = [
            r["final_test_acc"] - base["final_test_acc"]
            for (a, b, f, seed), r in by_key.items()
            if (a, b, f) == (arch, act, form) and (base := by_key.get((arch, act, "vanilla", seed)))
        ]
        mean, std, n = mean_std(diffs)
        rows.append(
            {
                "architecture": arch,
                "activation": act,
                "form": form,
                "diff_mean": mean,
                "diff_std": std,
                "pairs": n,
            }
        )
    return rows


def _gains_as_used(row: dict[str, Any], form: str, rule: str, center: bool) -> tuple[float, float]:
    """(rho, rho') at q = 1 of the activation as a form uses it: phi itself for "vanilla",
    lambda * (phi - mu) for the normalized forms (their value at initialization; the adaptive
    form starts from the same Gaussian statistics). Scaling by lambda multiplies both by
    lambda^2; centring replaces rho by rho_c."""
    if form == "vanilla":
        return row["rho"], row["rho_prime"]
    lam = theory.normalization(row["activation"], rule, 1.0, center).scale
    return lam**2 * (row["rho_c"] if center else row["rho"]), lam**2 * row["rho_prime"]


def theory_table(activations: Sequence[str], rule: str, center: bool) -> list[dict[str, Any]]:
    """``theory.gains_table`` at q = 1 for ``activations``, with the gains of each form as used
    and the two property measures (deviation of rho and rho' from 1, |log kappa|)."""
    rows = []
    for row in theory.gains_table(activations, q=1.0):
        entry = {key: row[key] for key in ("activation", "rho", "rho_c", "rho_prime", "kappa")}
        entry.update({f"lambda_{r}": row[f"lambda_{r}"] for r in theory.RULES})
        for form in FORMS:
            rho, rho_prime = _gains_as_used(row, form, rule, center)
            entry[form] = {
                "rho": rho,
                "rho_prime": rho_prime,
                "gain_deviation": abs(rho - 1.0) + abs(rho_prime - 1.0),
                "log_kappa": abs(math.log(rho_prime / rho)),
            }
        rows.append(entry)
    return rows


def convergence_vs_property(
    aggregates: Sequence[dict[str, Any]], theory_rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per architecture and property measure: the points (measure of the activation as used,
    mean train loss over the epochs) of every (activation, form), and Spearman's rank
    correlation between them with its two-sided p-value (NaN with fewer than 3 points).

    A positive correlation means: the further the activation is from the property, the slower
    training converged, which is the paper's observation."""
    gains = {row["activation"]: row for row in theory_rows}
    results = []
    for arch in dict.fromkeys(row["architecture"] for row in aggregates):
        rows = [r for r in aggregates if r["architecture"] == arch and math.isfinite(r["mean_train_loss"])]
        for measure in MEASURES:
            x = [gains[r["activation"]][r["form"]][measure] for r in rows]
            y = [r["mean_train_loss"] for r in rows]
            rho_s, p_value = _spearman(x, y)
            results.append(
                {
                    "architecture": arch,
                    "measure": measure,
                    "spearman": rho_s,
                    "p_value": p_value,
                    "points": [
                        {"activation": r["activation"], "form": r["form"], "x": xi, "y": yi}
                        for r, xi, yi in zip(rows, x, y, strict=True)
                    ],
                }
            )
    return results


def _spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation and p-value; NaN when undefined (< 3 points or a constant)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan, math.nan
    result = scipy.stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)
