"""Tables and the written report: the console summary, report.md and results.csv.

Everything here reads the results dict (the content of results.json) and returns text.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from tinynormact.experiments.analysis import MEASURES, outcome

__all__ = ["format_table", "markdown_report", "runs_csv", "summary_rows", "summary_text"]

ARCH_NAMES = {"mlp": "MLP", "resmlp": "ResMLP", "mlp-bn": "MLP+BN", "resmlp-bn": "ResMLP+BN"}
ARCH_NAMES["resnet1d"] = "1-D ResNet"
ARCH_NAMES |= {f"resnet{depth}": f"ResNet-{depth}" for depth in (20, 32, 56, 50)}
_CSV_RUN_COLUMNS = (
    "architecture",
    "activation",
    "form",
    "seed",
    "width",
    "depth",
    "lr",
    "status",
    "outcome",
    "initial_train_loss",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "mean_train_loss",
    "epochs_to_target",
    "seconds",
    "config_hash",
    "flags",
)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """An aligned plain-text table, or a Markdown table with ``markdown=True``."""
    if markdown:  # a "|" inside a cell would end it
        header, rows = _escape_pipes(header), [_escape_pipes(row) for row in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = [[str(c).ljust(w) for c, w in zip(line, widths, strict=True)] for line in [header, *rows]]
    if markdown:
        rule = ["-" * w for w in widths]
        return "\n".join("| " + " | ".join(line) + " |" for line in [lines[0], rule, *lines[1:]])
    rule = ["-" * w for w in widths]
    return "\n".join("  ".join(line).rstrip() for line in [lines[0], rule, *lines[1:]])


def _escape_pipes(cells: Sequence[str]) -> list[str]:
    return [str(c).replace("|", "\\|") for c in cells]


def _number(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    """'mean +- std' (scaled, e.g. to percent), or 'n/a'."""
    if not math.isfinite(mean):
        return "n/a"
    return f"{_number(scale * mean, digits, signed)} +- {_number(scale * std, digits)}"


def _lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["architecture"], r["activation"], r["form"]): r for r in rows}


def _accuracy(row: dict[str, Any]) -> str:
    """'mean +- std' in %, or the mean alone for a single run (which has no spread)."""
    if row["completed"] == 1:
        return _number(100 * row["test_acc_mean"], 1)
    return _pm(row["test_acc_mean"], row["test_acc_std"])


def _not_trained(row: dict[str, Any]) -> str:
    """' (1/3 failed to train, 1/3 diverged)' for a group with such runs, else ''."""
    counts = [(row["failed"], "failed to train"), (row["diverged"], "diverged")]
    notes = [f"{n}/{row['seeds']} {what}" for n, what in counts if n]
    return f" ({', '.join(notes)})" if notes else ""


def _difference(row: dict[str, Any]) -> str:
    """'+5.2 [+4.9, +5.5]*': mean paired difference in points, its 95% interval, and * when the
    Holm-corrected p-value is below 0.05."""
    if not math.isfinite(row["diff_mean"]):
        return "n/a"
    star = "*" if row["p_holm"] < 0.05 else ""
    if not math.isfinite(row["ci_low"]):
        return f"{_number(100 * row['diff_mean'], 1, signed=True)} (1 pair)"
    low, high = (_number(100 * row[k], 1, signed=True) for k in ("ci_low", "ci_high"))
    return f"{_number(100 * row['diff_mean'], 1, signed=True)} [{low}, {high}]{star}"


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: final test accuracy (%) per architecture, activation and form, mean +- std
    over the seeds that trained, and the paired differences normalized - vanilla (points) with
    their 95% interval, * marking those whose Holm-corrected p-value is below 0.05."""
    preset = results["preset"]
    forms = preset["forms"]
    normalized = [f for f in forms if f != "vanilla"]
    header = ["arch", "activation", *[f"{f} acc %" for f in forms], *[f"{f} - vanilla" for f in normalized]]
    aggregates, paired = _lookup(results["aggregates"]), _lookup(results["paired"])
    rows = []
    for arch in preset["architectures"]:
        for act in preset["activations"]:
            cells = [ARCH_NAMES.get(arch, arch), act]
            for form in forms:
                row = aggregates.get((arch, act, form))
                cells.append(_accuracy(row) + _not_trained(row) if row else "not run")
            for form in normalized:
                row = paired.get((arch, act, form))
                cells.append(_difference(row) if row else "not run")
            rows.append(cells)
    return header, rows


def _tested(results: dict[str, Any]) -> int:
    """How many paired differences have a p-value (two or more pairs of runs that trained)."""
    return sum(math.isfinite(r["p_value"]) for r in results["paired"])


def _significance_note(results: dict[str, Any]) -> str:
    """How many differences are significant before and after Holm's correction."""
    tested = [r for r in results["paired"] if math.isfinite(r["p_value"])]
    raw = sum(r["p_value"] < 0.05 for r in tested)
    corrected = [r for r in tested if r["p_holm"] < 0.05]
    names = ", ".join(
        f"{ARCH_NAMES.get(r['architecture'], r['architecture'])} {r['form']} {r['activation']} "
        f"({_number(100 * r['diff_mean'], 1, signed=True)})"
        for r in corrected
    )
    return (
        f"{raw} of {len(tested)} differences have a paired t-test p < 0.05; {len(corrected)} remain "
        f"below 0.05 after Holm's correction across the {len(tested)}{': ' + names if names else ''}."
    )


def summary_text(results: dict[str, Any]) -> str:
    """The summary printed on the console."""
    header, rows = summary_rows(results)
    seeds = len(results["settings"]["seeds"])
    title = (
        f"Final test accuracy (%), mean +- std over {seeds} seeds (runs that trained); differences "
        "paired by seed in points [95% t interval], *: Holm-corrected p < 0.05"
    )
    return title + "\n" + format_table(header, rows) + "\n" + _significance_note(results)


def _paired_table(results: dict[str, Any], key: str = "paired") -> str:
    header = ["arch", "activation", "form", "pairs", "mean (points)", "95% interval", "p", "p (Holm)"]
    rows = [
        [
            ARCH_NAMES.get(r["architecture"], r["architecture"]),
            r["activation"],
            r["form"],
            str(r["pairs"]),
            _number(100 * r["diff_mean"], 1, signed=True),
            f"[{_number(100 * r['ci_low'], 1, signed=True)}, {_number(100 * r['ci_high'], 1, signed=True)}]",
            _number(r["p_value"], 4),
            _number(r["p_holm"], 4),
        ]
        for r in results[key]
    ]
    return format_table(header, rows, markdown=True)


def _static_section(results: dict[str, Any]) -> str:
    """The adaptive readings against the static form, when the grid has several readings."""
    if "paired_static" not in results:
        return ""
    return f"""### The adaptive readings against the static form

Final test accuracy minus the static form's, seed by seed (points), 95% t interval; Holm's
correction across the rows of this table.

{_paired_table(results, "paired_static")}
"""


def _convergence_table(results: dict[str, Any]) -> str:
    header = ["arch", "activation", "form", "mean train loss", "epochs to target (median)", "reached"]
    header.append("trained")
    rows = [
        [
            ARCH_NAMES.get(r["architecture"], r["architecture"]),
            r["activation"],
            r["form"],
            _pm(r["mean_train_loss"], r["mean_train_loss_std"], scale=1.0, digits=3),
            _number(r["epochs_to_target_median"], 1),
            f"{r['reached_target']}/{r['seeds']}",
            f"{r['completed']}/{r['seeds']}",
        ]
        for r in results["aggregates"]
    ]
    return format_table(header, rows, markdown=True)


def _theory_table(results: dict[str, Any]) -> str:
    preset = results["preset"]
    header = ["activation", "rho", "rho_c", "rho'", "kappa", "lambda fwd", "lambda bwd", "lambda bal"]
    header += [f"{f}: rho, rho'" for f in preset["forms"]]
    rows = []
    for r in results["theory"]:
        cells = [r["activation"], *(_number(r[k], 4) for k in ("rho", "rho_c", "rho_prime", "kappa"))]
        cells += [_number(r[f"lambda_{rule}"], 4) for rule in ("forward", "backward", "balanced")]
        cells += [f"{_number(r[f]['rho'], 3)}, {_number(r[f]['rho_prime'], 3)}" for f in preset["forms"]]
        rows.append(cells)
    return format_table(header, rows, markdown=True)


def _correlation_table(results: dict[str, Any]) -> str:
    forms = results["preset"]["forms"]
    header = ["arch", "property measure", *[f"Spearman in {f}" for f in forms], "mean", "p", "p (Holm)"]
    header += ["pooled (descriptive)", "vanilla indicator (descriptive)"]
    rows = [
        [
            ARCH_NAMES.get(c["architecture"], c["architecture"]),
            MEASURES[c["measure"]],
            *(_number(c["within"].get(f, math.nan), 2, signed=True) for f in forms),
            _number(c["statistic"], 2, signed=True),
            _number(c["p_value"], 4),
            _number(c["p_holm"], 4),
            _number(c["pooled"], 2, signed=True),
            _number(c["form_indicator"], 2, signed=True),
        ]
        for c in results["correlation"]
    ]
    return format_table(header, rows, markdown=True)


def _correlation_verdict(results: dict[str, Any]) -> str:
    """One sentence per test saying what it shows, at the 5 % level after Holm's correction."""
    lines = []
    for c in results["correlation"]:
        arch, measure = ARCH_NAMES.get(c["architecture"], c["architecture"]), MEASURES[c["measure"]]
        statistic, p = c["statistic"], c["p_holm"]
        if not math.isfinite(statistic):
            lines.append(f"- {arch}, {measure}: not enough distinct points for a rank correlation.")
            continue
        if p >= 0.05:
            reading = "not distinguishable from no within-form correlation at the 5 % level with these runs"
        elif statistic > 0:
            reading = "within each form, activations further from the property converged more slowly"
        else:
            reading = "within each form, activations further from the property converged faster"
        found = f"mean within-form Spearman {statistic:+.2f} (Holm p = {p:.3g})"
        lines.append(f"- {arch}, {measure}: {found}: {reading}.")
    return "\n".join(lines)


def _not_trained_list(results: dict[str, Any]) -> str:
    rows = [(r, outcome(r)) for r in results["runs"]]
    lines = [
        f"- {r['architecture']} {r['activation']} {r['form']} seed {r['seed']}: diverged: {r['message']}"
        for r, kind in rows
        if kind == "diverged"
    ]
    lines += [
        f"- {r['architecture']} {r['activation']} {r['form']} seed {r['seed']}: failed to train: final train "
        f"loss {r['final_train_loss']:.4g} > initial {r['history']['train_loss'][0]:.4g} "
        f"(test accuracy {100 * r['final_test_acc']:.1f}%)"
        for r, kind in rows
        if kind == "failed to train"
    ]
    lines += [
        f"- {r['architecture']} {r['activation']} {r['form']} seed {r['seed']}: did not finish: "
        f"{r['message']}"
        for r, kind in rows
        if kind == "did not finish"
    ]
    if not lines:
        return "Every run trained: none diverged, and every final train loss is below the initial one."
    return "\n".join(lines)


def flag_text(flags: Sequence[dict[str, Any]]) -> str:
    """'layer 19 (layers.37) step 820 (epoch 13): lambda at its ceiling ...; ...' ('' for none)."""
    return "; ".join(
        f"layer {f['layer']} ({f['name']}) step {f['step']} (epoch {f['epoch']}): {f['what']}" for f in flags
    )


def _flagged_list(results: dict[str, Any]) -> str:
    """One line per run with adaptive-layer flags (``train.adaptive_health``)."""
    lines = [
        f"- {r['architecture']} {r['activation']} {r['form']} seed {r['seed']}: {flag_text(r['flags'])}"
        for r in results["runs"]
        if r.get("flags")
    ]
    return "\n".join(lines) if lines else "No adaptive layer was flagged."


def _settings(results: dict[str, Any]) -> str:
    preset, settings = results["preset"], results["settings"]
    lines = [f"- preset `{preset['name']}`: {preset['description']}"]
    lines += [f"- {key}: `{value}`" for key, value in preset.items() if key not in ("name", "description")]
    lines += [f"- {key}: `{value}`" for key, value in settings.items() if key not in preset]  # once each
    lines += [f"- {name} {version}" for name, version in results["versions"].items()]
    return "\n".join(lines)


def markdown_report(results: dict[str, Any], figures: Sequence[str]) -> str:
    """report.md: the tables, the figures (``figures`` are file names under figures/), the
    settings, the software versions and the seeds."""
    preset, n_seeds = results["preset"], len(results["settings"]["seeds"])
    header, rows = summary_rows(results)
    status = ""
    if results["status"] != "completed":
        status = f"\n**This reproduction was {results['status']}: {len(results['runs'])} runs finished.**\n"
    figure = {name: f"![{name}](figures/{name})" for name in figures}
    loss_figures = "\n\n".join(figure[n] for n in figures if n.startswith("loss_curves"))
    return f"""# tinynormact reproduction: normalized vs vanilla activations

Grid `{preset["name"]}` on {preset["dataset"]}, seeds {", ".join(map(str, results["settings"]["seeds"]))},
device `{results["settings"]["device"]}`, wall time {results["wall_time_s"]:.0f} s (this reproduction, on the
machine under Settings; the measured times of the presets are in docs/timings.md).
Forms: *vanilla* phi; *static* lambda (phi - mu) with lambda from the Gaussian moments at q = 1
(THEORY E15, rule `{preset["rule"]}`, centring {preset["center"] is True}); *adaptive* lambda from
batch statistics with running estimates (E16, centring {preset["center"] is not False} unless a
reading sets it). The balanced rule is not from the paper but this project's
choice between the forward and backward rules; see docs/THEORY.md for what is reconstructed.
{status}
## Final test accuracy

Mean +- std over the seeds that trained (%); the differences are normalized minus vanilla, seed by
seed (points), with a 95% t interval; * marks a difference whose paired t-test p-value stays
below 0.05 after Holm's step-down correction across the {_tested(results)} differences of the table that have
two or more pairs.
With {n_seeds} seeds an interval is wide and a correction is strict: read a difference without *
as not established, not as absent.

{format_table(header, rows, markdown=True)}

{_significance_note(results)}

{_paired_table(results)}

{_static_section(results)}
{figure.get("accuracy.png", "")}

{figure.get("paired_difference.png", "")}

## Convergence

Mean train loss over the epochs (the area under the loss curve; lower is faster) and the epochs
until the train loss first reached {preset["target_loss"]}.

{_convergence_table(results)}

{loss_figures}

## Convergence speed against the property (the paper's observation)

Each point is one (activation, form): the property measure of the activation as used at
initialization (THEORY E5-E7 at q = 1, after scaling by lambda for the normalized forms) against
the mean train loss of the runs that trained. Scaling leaves kappa unchanged, so |log kappa|
separates activations, not forms. The static and adaptive forms share their measure, and
normalized forms converge faster than vanilla ones whatever their measure, so the points are not
independent and a correlation over all of them would mostly measure the form (the "vanilla
indicator" column: Spearman of the loss with vanilla-or-not alone). The test is within forms:
Spearman's correlation in each form, their mean, and a two-sided permutation p-value from
random permutations of the activations within each form, Holm-corrected over the
{len(results["correlation"])} tests (architectures x measures). The pooled correlation is shown for
comparison only; its p-value would count shared points as independent.

{_correlation_table(results)}

{_correlation_verdict(results)}

{figure.get("convergence_vs_property.png", "")}

## Theory: gains at q = 1

rho = E[phi(z)^2], rho_c its centred form, rho' = E[phi'(z)^2], kappa = rho'/rho, lambda under
each rule (E12-E14), and (rho, rho') of the activation as each form uses it.

{_theory_table(results)}

## Signal propagation at initialization

An MLP of {preset["propagation_depth"]} hidden layers of width {preset["propagation_width"]}
(LeCun init, sigma_w^2 = 1), a batch of {preset["propagation_batch"]} N(0, 1) inputs: measured
per-layer second moments (a marker per form) against THEORY E8-E9 (lines). Each layer multiplies the forward
second moment by rho(q) and the backward one by rho'(q), so activations whose gains are below 1
shrink both geometrically, while the normalized forms, with gains near 1 at q = 1, keep them
near 1 as long as q stays near 1. The adaptive form has no line: its lambda comes from the batch.
A dashed line and a note in the title mark a form whose forward map E8 is unstable where the
network starts (THEORY E19, E22: slope chi_q(1) > 1, or an unstable fixed point q* within a factor
2 of q0 = 1), as for the static swish and gelu: finite-width deviations grow by chi_q per layer,
the examples that cross q* grow geometrically, and the measured batch means leave the line at
depth, receding only slowly as the width grows (docs/THEORY.md, "Stability of the fixed points").

{figure.get("signal_propagation.png", "")}

## Runs that did not train

A run *diverged* when NaN or Inf stopped it, and *failed to train* when it finished but its final
train loss is above that of the untrained network (epoch 0). Both are counted in the tables and
left out of every mean and paired difference.

{_not_trained_list(results)}

## Flagged adaptive layers

A run's adaptive layer is flagged (docs/THEORY.md E27-E29) at the first step, of those checked
every 10, where its lambda reached its ceiling or floor, fewer than 1% of its units were active
(|phi'| >= 0.1: dead or saturated), or its q = E[h^2] grew 100x from the first step.

{_flagged_list(results)}

## Settings and software

{_settings(results)}
"""


def runs_csv(results: dict[str, Any]) -> str:
    """results.csv: one line per run with its final numbers, its outcome (``analysis.outcome``:
    the untrained network's train loss, epoch 0, is the column initial_train_loss) and the
    property measures."""
    theory = {r["activation"]: r for r in results["theory"]}
    columns = [*_CSV_RUN_COLUMNS, *MEASURES]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for run in results["runs"]:
        losses = run.get("history", {}).get("train_loss") or [None]  # none for a run that raised
        flags = flag_text(run.get("flags", []))
        derived = {"outcome": outcome(run), "initial_train_loss": losses[0], "flags": flags}
        measures = theory[run["activation"]][run["form"]]
        writer.writerow([derived[c] if c in derived else run.get(c, measures.get(c)) for c in columns])
    return text.getvalue()
