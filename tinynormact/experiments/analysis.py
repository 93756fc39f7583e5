"""From run records to the reproduction's numbers.

- ``outcome``: each run "trained", "failed to train" (finished without NaN/Inf but with a final
  train loss above the untrained network's) or "diverged" (NaN/Inf);
- ``aggregate``: per (architecture, activation, form), the mean and standard deviation over
  the runs that trained of the final test accuracy and of the convergence speed, the epochs to
  the target, and how many runs diverged or failed to train;
- ``paired_differences``: normalized minus vanilla, seed by seed (same seed: same data order and
  the same initial weights before scaling), over the seeds where both trained: mean, standard
  deviation, 95% t confidence interval, the paired t-test's p-value and that p-value corrected
  across every cell of the table by Holm's step-down method;
- ``theory_table``: rho, rho', kappa and lambda (THEORY E5-E7, E12-E14) of each activation at
  q = 1, and the gains of the activation as used by each form;
- ``convergence_vs_property``: the paper's observation, convergence speed against a property
  measure of the activation as used, tested within each form (a stratified permutation test),
  Holm-corrected over the architectures and measures.

Standard deviations are sample standard deviations (ddof = 1; 0 for a single seed). Runs that
diverged or failed to train are counted but left out of means; a group with no run that trained
has NaN means.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tinynormact import theory
from tinynormact.engine.backend import np
from tinynormact.experiments.grid import FORMS

__all__ = [
    "MEASURES",
    "aggregate",
    "convergence_vs_property",
    "holm",
    "mean_std",
    "outcome",
    "paired_differences",
    "theory_table",
]

PERMUTATIONS = 20000  # permutation test: p-values resolved to about 1e-4, reproducible (seeded)

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


def outcome(run: dict[str, Any]) -> str:
    """ "did not finish" (its worker died too often, or it raised: status "failed"), "diverged"
    (NaN or Inf stopped it), "failed to train" (it finished, but its final train loss is above
    the untrained network's, ``history["train_loss"][0]``) or "trained"."""
    if run["status"] == "failed":
        return "did not finish"
    if run["status"] != "completed":
        return "diverged"
    return "failed to train" if run["final_train_loss"] > run["history"]["train_loss"][0] else "trained"


def _reached(epochs: float | None) -> bool:
    """Whether a run reached the target loss: None in process, NaN once read back from
    results.json (which stores None as null), when it did not."""
    return epochs is not None and math.isfinite(epochs)


def _groups(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["architecture"], run["activation"], run["form"])].append(run)
    return groups


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (architecture, activation, form) in the order the runs list them; the means
    are over the runs that trained, and the other outcomes are counted."""
    rows = []
    for (arch, act, form), group in _groups(runs).items():
        trained = [r for r in group if outcome(r) == "trained"]
        acc, acc_std, n_trained = mean_std(r["final_test_acc"] for r in trained)
        speed, speed_std, _ = mean_std(r["mean_train_loss"] for r in trained)
        reached = [r["epochs_to_target"] for r in trained if _reached(r["epochs_to_target"])]
        rows.append(
            {
                "architecture": arch,
                "activation": act,
                "form": form,
                "seeds": len(group),
                "diverged": sum(outcome(r) == "diverged" for r in group),
                "failed": sum(outcome(r) == "failed to train" for r in group),
                "test_acc_mean": acc,
                "test_acc_std": acc_std,
                "mean_train_loss": speed,
                "mean_train_loss_std": speed_std,
                "reached_target": len(reached),
                "epochs_to_target_median": float(np.median(reached)) if reached else math.nan,
                "completed": n_trained,
            }
        )
    return rows


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction of ``p_values`` (NaNs are kept and not counted): the k-th
    smallest of m p-values becomes max over j <= k of min(1, (m - j + 1) p_(j)). It controls the
    family-wise error rate under any dependence between the tests."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    corrected = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - k) * p))
        corrected[i] = running
    return corrected


def _paired_t(diffs: Sequence[float]) -> tuple[float, float, float]:
    """(low, high) of the 95% t confidence interval of the mean of ``diffs`` and the two-sided
    p-value of the paired t-test of mean 0 (NaN with fewer than 2 pairs; p = NaN when every
    difference is the same)."""
    import scipy.stats  # here, not at the top: a command that only prints a table skips its load

    n = len(diffs)
    if n < 2:
        return math.nan, math.nan, math.nan
    mean, sem = float(np.mean(diffs)), float(np.std(diffs, ddof=1)) / math.sqrt(n)
    half = float(scipy.stats.t.ppf(0.975, n - 1)) * sem
    p_value = float(scipy.stats.ttest_1samp(diffs, 0.0).pvalue) if sem > 0 else math.nan
    return mean - half, mean + half, p_value


def paired_differences(runs: Sequence[dict[str, Any]], baseline: str = "vanilla") -> list[dict[str, Any]]:
    """Final test accuracy of each normalized form minus the ``baseline`` form ("vanilla", or
    "static" to compare the adaptive readings with it), paired by seed, over the seeds where both
    runs trained; with a 95% t interval, the paired t-test's p-value and its Holm correction
    across every row (``holm``)."""
    by_key = {(r["architecture"], r["activation"], r["form"], r["seed"]): r for r in runs}
    rows = []
    for arch, act, form in _groups(runs):
        if form in ("vanilla", baseline):
            continue
        diffs = [
            r["final_test_acc"] - base["final_test_acc"]
            for (a, b, f, seed), r in by_key.items()
            if (a, b, f) == (arch, act, form)
            and (base := by_key.get((arch, act, baseline, seed)))
            and outcome(r) == outcome(base) == "trained"
        ]
        mean, std, n = mean_std(diffs)
        low, high, p_value = _paired_t(diffs)
        rows.append(
            {
                "architecture": arch,
                "activation": act,
                "form": form,
                "diff_mean": mean,
                "diff_std": std,
                "ci_low": low,
                "ci_high": high,
                "p_value": p_value,
                "pairs": n,
            }
        )
    for row, corrected in zip(rows, holm([row["p_value"] for row in rows]), strict=True):
        row["p_holm"] = corrected
    return rows


def _gains_as_used(row: dict[str, Any], form: str, rule: str, center: bool) -> tuple[float, float]:
    """(rho, rho') at q = 1 of the activation as a form uses it: phi itself for "vanilla",
    lambda * (phi - mu) for the normalized forms (their value at initialization; the adaptive
    form starts from the same Gaussian statistics). Scaling by lambda multiplies both by
    lambda^2; centring replaces rho by rho_c."""
    if form == "vanilla":
        return row["rho"], row["rho_prime"]
    lam = theory.normalization(row["activation"], rule, 1.0, center).lambda_
    return lam**2 * (row["rho_c"] if center else row["rho"]), lam**2 * row["rho_prime"]


def theory_table(
    activations: Sequence[str], rule: str, centring: dict[str, bool], forms: Sequence[str] = FORMS
) -> list[dict[str, Any]]:
    """``theory.gains_table`` at q = 1 for ``activations``, with the gains of each form as used
    (``centring``: whether each form centres) and the two property measures (deviation of rho
    and rho' from 1, |log kappa|)."""
    rows = []
    for row in theory.gains_table(activations, q=1.0):
        entry = {key: row[key] for key in ("activation", "rho", "rho_c", "rho_prime", "kappa")}
        entry.update({f"lambda_{r}": row[f"lambda_{r}"] for r in theory.RULES})
        for form in forms:
            rho, rho_prime = _gains_as_used(row, form, rule, centring.get(form, False))
            entry[form] = {
                "rho": rho,
                "rho_prime": rho_prime,
                "gain_deviation": abs(rho - 1.0) + abs(rho_prime - 1.0),
                "log_kappa": abs(math.log(rho_prime / rho)),
            }
        rows.append(entry)
    return rows


def convergence_vs_property(
    aggregates: Sequence[dict[str, Any]], theory_rows: Sequence[dict[str, Any]], seed: int = 0
) -> list[dict[str, Any]]:
    """Per architecture and property measure: the points (measure of the activation as used,
    mean train loss over the epochs of the runs that trained) of every (activation, form), and
    whether the measure predicts convergence speed.

    The static and adaptive forms of an activation share its measure, and normalized forms
    converge faster than vanilla ones whatever their measure, so pooling all points would count
    shared x values as independent and mostly measure the form. The test is therefore within
    forms: Spearman's rank correlation in each form (``within``), their mean (``statistic``) and
    its two-sided p-value from ``PERMUTATIONS`` random permutations of the activations within
    each form (``p_value``), Holm-corrected over all architectures and measures (``p_holm``).
    ``pooled`` (all points) and ``form_indicator`` (Spearman of the loss with "vanilla or
    not" alone) are kept for description only. A positive statistic means: the further from the
    property, the slower training converged, the paper's observation."""
    gains = {row["activation"]: row for row in theory_rows}
    rng = np.random.default_rng(seed)
    results = []
    for arch in dict.fromkeys(row["architecture"] for row in aggregates):
        rows = [r for r in aggregates if r["architecture"] == arch and math.isfinite(r["mean_train_loss"])]
        for measure in MEASURES:
            points = [
                {
                    "activation": r["activation"],
                    "form": r["form"],
                    "x": gains[r["activation"]][r["form"]][measure],
                    "y": r["mean_train_loss"],
                }
                for r in rows
            ]
            statistic, within, p_value = _within_form_test(points, rng)
            x, y = [p["x"] for p in points], [p["y"] for p in points]
            results.append(
                {
                    "architecture": arch,
                    "measure": measure,
                    "statistic": statistic,
                    "within": within,
                    "p_value": p_value,
                    "pooled": _spearman(x, y),
                    "form_indicator": _spearman([p["form"] == "vanilla" for p in points], y),
                    "points": points,
                }
            )
    for entry, corrected in zip(results, holm([e["p_value"] for e in results]), strict=True):
        entry["p_holm"] = corrected
    return results


def _within_form_test(
    points: Sequence[dict[str, Any]], rng: np.random.Generator
) -> tuple[float, dict[str, float], float]:
    """(mean within-form Spearman, {form: Spearman}, permutation p-value). Forms with fewer than
    3 points or a constant measure are left out; NaNs when none is left."""
    import scipy.stats

    groups = defaultdict(list)
    for point in points:
        groups[point["form"]].append(point)
    ranks = {}
    for form, group in groups.items():
        x, y = [p["x"] for p in group], [p["y"] for p in group]
        if len(group) >= 3 and len(set(x)) > 1 and len(set(y)) > 1:
            ranks[form] = (scipy.stats.rankdata(x), scipy.stats.rankdata(y))
    if not ranks:
        return math.nan, {}, math.nan
    within = {form: float(np.corrcoef(rx, ry)[0, 1]) for form, (rx, ry) in ranks.items()}
    observed = float(np.mean(list(within.values())))
    null = np.zeros(PERMUTATIONS)
    for rx, ry in ranks.values():  # Spearman = Pearson of the ranks; permute y's ranks
        shuffled = rng.permuted(np.broadcast_to(ry, (PERMUTATIONS, len(ry))), axis=1)
        centred_x, centred_y = rx - rx.mean(), shuffled - shuffled.mean(axis=1, keepdims=True)
        null += centred_y @ centred_x / np.sqrt((centred_x @ centred_x) * np.sum(centred_y**2, axis=1))
    null /= len(ranks)
    exceed = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return observed, within, (exceed + 1) / (PERMUTATIONS + 1)


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN when undefined (< 3 points or a constant)."""
    import scipy.stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(scipy.stats.spearmanr(x, y).statistic)
