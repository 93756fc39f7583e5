"""Tables and the written report: the console summary, report.md and results.csv.

Everything here reads the results dict (the content of results.json) and returns text.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from tinynormact.experiments.analysis import MEASURES

__all__ = ["format_table", "markdown_report", "runs_csv", "summary_rows", "summary_text"]

ARCH_NAMES = {"mlp": "MLP", "resmlp": "ResMLP"}
_CSV_RUN_COLUMNS = (
    "architecture",
    "activation",
    "form",
    "seed",
    "status",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "mean_train_loss",
    "epochs_to_target",
    "seconds",
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


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: final test accuracy (%) per architecture, activation and form, mean +- std
    over seeds, and the paired differences normalized - vanilla (points)."""
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
                text = _pm(row["test_acc_mean"], row["test_acc_std"]) if row else "not run"
                if row and row["diverged"]:
                    text += f" ({row['diverged']}/{row['seeds']} diverged)"
                cells.append(text)
            for form in normalized:
                row = paired.get((arch, act, form))
                cells.append(_pm(row["diff_mean"], row["diff_std"], signed=True) if row else "not run")
            rows.append(cells)
    return header, rows


def summary_text(results: dict[str, Any]) -> str:
    """The summary printed on the console."""
    header, rows = summary_rows(results)
    seeds = results["preset"]["seeds"]
    title = f"Final test accuracy (%), mean +- std over {seeds} seeds; differences paired by seed"
    return title + "\n" + format_table(header, rows)


def _convergence_table(results: dict[str, Any]) -> str:
    header = ["arch", "activation", "form", "mean train loss", "epochs to target (median)", "reached"]
    rows = [
        [
            ARCH_NAMES.get(r["architecture"], r["architecture"]),
            r["activation"],
            r["form"],
            _pm(r["mean_train_loss"], r["mean_train_loss_std"], scale=1.0, digits=3),
            _number(r["epochs_to_target_median"], 1),
            f"{r['reached_target']}/{r['seeds']}",
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
    header = ["arch", "property measure", "Spearman rho", "p-value", "points"]
    rows = [
        [
            ARCH_NAMES.get(c["architecture"], c["architecture"]),
            MEASURES[c["measure"]],
            _number(c["spearman"], 3, signed=True),
            _number(c["p_value"], 4),
            str(len(c["points"])),
        ]
        for c in results["correlation"]
    ]
    return format_table(header, rows, markdown=True)


def _correlation_verdict(results: dict[str, Any]) -> str:
    """One sentence per correlation saying what it shows, at the 5 % level."""
    lines = []
    for c in results["correlation"]:
        arch, measure = ARCH_NAMES.get(c["architecture"], c["architecture"]), MEASURES[c["measure"]]
        rho_s, p = c["spearman"], c["p_value"]
        if not math.isfinite(rho_s):
            lines.append(f"- {arch}, {measure}: not enough distinct points for a rank correlation.")
            continue
        if p >= 0.05:
            reading = "not distinguishable from no correlation at the 5 % level with these runs"
        elif rho_s > 0:
            reading = "activations further from the property converged more slowly, as the paper observes"
        else:
            reading = "activations further from the property converged faster, contrary to the paper"
        lines.append(f"- {arch}, {measure}: Spearman {rho_s:+.2f} (p = {p:.3g}): {reading}.")
    return "\n".join(lines)


def _diverged_list(results: dict[str, Any]) -> str:
    failed = [r for r in results["runs"] if r["status"] != "completed"]
    if not failed:
        return "Every run completed without NaN or Inf."
    return "\n".join(
        f"- {r['architecture']} {r['activation']} {r['form']} seed {r['seed']}: {r['message']}"
        for r in failed
    )


def _settings(results: dict[str, Any]) -> str:
    preset, settings = results["preset"], results["settings"]
    lines = [f"- preset `{preset['name']}`: {preset['description']}"]
    lines += [f"- {key}: `{value}`" for key, value in preset.items() if key not in ("name", "description")]
    lines += [f"- {key}: `{value}`" for key, value in settings.items()]
    lines += [f"- {name} {version}" for name, version in results["versions"].items()]
    return "\n".join(lines)


def markdown_report(results: dict[str, Any], figures: Sequence[str]) -> str:
    """report.md: the tables, the figures (``figures`` are file names under figures/), the
    settings, the software versions and the seeds."""
    preset = results["preset"]
    header, rows = summary_rows(results)
    status = ""
    if results["status"] != "completed":
        status = f"\n**This reproduction was {results['status']}: {len(results['runs'])} runs finished.**\n"
    figure = {name: f"![{name}](figures/{name})" for name in figures}
    loss_figures = "\n\n".join(figure[n] for n in figures if n.startswith("loss_curves"))
    return f"""# tinynormact reproduction: normalized vs vanilla activations

Preset `{preset["name"]}` on {preset["dataset"]}, seeds {", ".join(map(str, results["settings"]["seeds"]))},
device `{results["settings"]["device"]}`, wall time {results["wall_time_s"]:.0f} s.
Forms: *vanilla* phi; *static* lambda (phi - mu) with lambda from the Gaussian moments at q = 1
(THEORY E15, rule `{preset["rule"]}`, centring {preset["center"]}); *adaptive* lambda from batch
statistics with running estimates (E16). The balanced rule is the reading of the paper by its only
public re-implementation; see docs/THEORY.md for what is reconstructed.
{status}
## Final test accuracy

Mean +- std over seeds (%); the differences are normalized minus vanilla, seed by seed (points).

{format_table(header, rows, markdown=True)}

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
the mean train loss. Scaling leaves kappa unchanged, so |log kappa| separates activations, not forms.

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
per-layer second moments (dots) against THEORY E8-E9 (lines). Each layer multiplies the forward
second moment by rho(q) and the backward one by rho'(q), so activations whose gains are below 1
shrink both geometrically, while the normalized forms, with gains near 1 at q = 1, keep them
near 1 as long as q stays near 1. The adaptive form has no line: its lambda comes from the batch.
Where dots and lines part at depth, the mean-field assumptions (large width, Gaussian
pre-activations) are failing; for non-centred activations whose q drifts this sets in early at
this width and recedes as the width grows.

{figure.get("signal_propagation.png", "")}

## Runs that did not complete

{_diverged_list(results)}

## Settings and software

{_settings(results)}
"""


def runs_csv(results: dict[str, Any]) -> str:
    """results.csv: one line per run with its final numbers and the property measures."""
    theory = {r["activation"]: r for r in results["theory"]}
    columns = [*_CSV_RUN_COLUMNS, *MEASURES]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for run in results["runs"]:
        measures = theory[run["activation"]][run["form"]]
        writer.writerow([run.get(c, measures.get(c)) for c in columns])
    return text.getvalue()
