"""The reproduction's figures, drawn from the results dict alone (so ``tinynormact plot`` can
redraw them from results.json).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), which needs no
GUI backend and leaves pyplot's state alone; ``plots.save`` writes them atomically.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tinynormact.engine.backend import np
from tinynormact.experiments.analysis import MEASURES
from tinynormact.tracking import plots

__all__ = [
    "accuracy_figure",
    "convergence_figure",
    "figures",
    "loss_curves_figure",
    "paired_difference_figure",
    "propagation_figure",
    "write_figures",
]

DPI = 120
FORM_COLORS = {"vanilla": "tab:gray", "static": "tab:blue", "adaptive": "tab:orange"}
ARCH_TITLES = {"mlp": "MLP", "resmlp": "residual MLP", "resnet1d": "1-D ResNet"}
ARCH_TITLES |= {f"resnet{depth}": f"ResNet-{depth}" for depth in (20, 32, 56, 50)}


def _grid(n_panels: int, columns: int, panel: tuple[float, float]) -> tuple[Figure, list[Any]]:
    rows = math.ceil(n_panels / columns)
    columns = min(columns, n_panels)
    figure = Figure(figsize=(panel[0] * columns, panel[1] * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return figure, axes[:n_panels]


def loss_curves_figure(results: dict[str, Any], architecture: str) -> Figure:
    """Train loss per epoch, one panel per activation, one line per form: the mean over seeds
    (completed runs), with the range over seeds shaded."""
    preset = results["preset"]
    figure, axes = _grid(len(preset["activations"]), 3, (4.0, 3.0))
    for ax, act in zip(axes, preset["activations"], strict=True):
        for form in preset["forms"]:
            curves = [
                r["history"]["train_loss"]
                for r in results["runs"]
                if (r["architecture"], r["activation"], r["form"], r["status"])
                == (architecture, act, form, "completed")
            ]
            if not curves:
                continue
            curves_arr = np.asarray(curves, dtype=float)
            epochs = np.arange(curves_arr.shape[1])
            label = form if form == "vanilla" else f"{form} n{act}"
            ax.plot(epochs, curves_arr.mean(axis=0), color=FORM_COLORS[form], label=label)
            ax.fill_between(
                epochs, curves_arr.min(axis=0), curves_arr.max(axis=0), color=FORM_COLORS[form], alpha=0.2
            )
        ax.axhline(preset["target_loss"], color="black", linewidth=0.6, linestyle=":")
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss")
        if ax.get_legend_handles_labels()[0]:  # no line when every run diverged
            ax.legend(fontsize="small")
    figure.suptitle(
        f"{ARCH_TITLES.get(architecture, architecture)}: "
        "train loss (mean over seeds, range shaded; dotted: target loss)"
    )
    return figure


def _bar_panels(
    results: dict[str, Any],
    table: str,
    forms: Sequence[str],
    value: str,
    errors: Callable[[dict[str, Any]], tuple[float, float]],
    ylabel: str,
) -> tuple[Figure, list[dict[tuple[str, str], dict[str, Any]]]]:
    """One panel per architecture with grouped bars per activation and form: 100 * ``value``
    from ``results[table]`` with error bars ``errors(row)`` = (below, above), already in
    percent (NaN for a group that has no row). Returns the figure and each panel's rows."""
    preset = results["preset"]
    figure, axes = _grid(len(preset["architectures"]), 2, (6.0, 3.5))
    x = np.arange(len(preset["activations"]))
    width = 0.8 / len(forms)
    panels = []
    for ax, arch in zip(axes, preset["architectures"], strict=True):
        rows = {(r["activation"], r["form"]): r for r in results[table] if r["architecture"] == arch}
        for k, form in enumerate(forms):
            found = [rows.get((act, form)) for act in preset["activations"]]
            means = [100.0 * row[value] if row else math.nan for row in found]
            spans = np.array([errors(row) if row else (math.nan, math.nan) for row in found]).T
            offset = (k - (len(forms) - 1) / 2) * width
            ax.bar(x + offset, means, width, yerr=spans, capsize=2, color=FORM_COLORS[form], label=form)
        ax.set_xticks(x, preset["activations"])
        ax.set_title(ARCH_TITLES.get(arch, arch))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        panels.append(rows)
    return figure, panels


def _annotate_bars(
    figure: Figure,
    panels: list[dict[tuple[str, str], dict[str, Any]]],
    activations: Sequence[str],
    forms: Sequence[str],
    label: Callable[[dict[str, Any]], tuple[str, float] | None],
    fontsize: float,
) -> None:
    """Write ``label(row)`` = (text, height) above the bars of ``_bar_panels`` it returns one for."""
    width = 0.8 / len(forms)
    for ax, rows in zip(figure.axes, panels, strict=True):
        for k, form in enumerate(forms):
            for i, act in enumerate(activations):
                found = label(rows[(act, form)]) if (act, form) in rows else None
                if found:
                    x = i + (k - (len(forms) - 1) / 2) * width
                    ax.annotate(found[0], (x, found[1]), ha="center", va="bottom", fontsize=fontsize)


def accuracy_figure(results: dict[str, Any]) -> Figure:
    """Final test accuracy (%) per activation and form (mean +- std over the seeds that trained),
    one panel per architecture."""
    forms = results["preset"]["forms"]

    def std(row: dict[str, Any]) -> tuple[float, float]:
        return 100.0 * row["test_acc_std"], 100.0 * row["test_acc_std"]

    def trained_count(row: dict[str, Any]) -> tuple[str, float] | None:  # how many runs a bar stands for
        if row["completed"] == row["seeds"]:
            return None
        height = 100.0 * row["test_acc_mean"] if row["completed"] else 0.0
        return f"{row['completed']}/{row['seeds']}", height

    ylabel = "final test accuracy (%)"
    figure, panels = _bar_panels(results, "aggregates", forms, "test_acc_mean", std, ylabel)
    _annotate_bars(figure, panels, results["preset"]["activations"], forms, trained_count, fontsize=7)
    figure.suptitle(
        "Final test accuracy (mean +- std over the seeds that trained; n/N: only n of N seeds trained)"
    )
    return figure


def paired_difference_figure(results: dict[str, Any]) -> Figure:
    """Normalized minus vanilla final test accuracy in points, paired by seed: the mean with its
    95% t interval; * over a bar whose Holm-corrected p-value is below 0.05."""
    forms = [f for f in results["preset"]["forms"] if f != "vanilla"]

    def interval(row: dict[str, Any]) -> tuple[float, float]:
        return 100.0 * (row["diff_mean"] - row["ci_low"]), 100.0 * (row["ci_high"] - row["diff_mean"])

    ylabel = "test accuracy difference (points)"

    def significant(row: dict[str, Any]) -> tuple[str, float] | None:
        return ("*", 100.0 * max(row["ci_high"], row["diff_mean"])) if row["p_holm"] < 0.05 else None

    figure, panels = _bar_panels(results, "paired", forms, "diff_mean", interval, ylabel)
    for ax in figure.axes:
        ax.axhline(0.0, color="black", linewidth=0.8)
    _annotate_bars(figure, panels, results["preset"]["activations"], forms, significant, fontsize=12)
    figure.suptitle("Normalized minus vanilla, paired by seed: mean and 95% interval (*: Holm p < 0.05)")
    return figure


MARKERS = "osD^vPXh*<>p"


def convergence_figure(results: dict[str, Any]) -> Figure:
    """Convergence speed (mean train loss over epochs) against each property measure, one panel
    per (measure, architecture): color by form, marker by activation (no text labels, which
    overlap where static and adaptive share a measure); symmetric-log x axis (the normalized
    forms sit near 0) and log y axis, so an outlier does not squeeze the rest. The title gives
    the within-form test (``analysis.convergence_vs_property``)."""
    entries = results["correlation"]
    activations = results["preset"]["activations"]
    marker = {act: MARKERS[i % len(MARKERS)] for i, act in enumerate(activations)}
    figure, axes = _grid(len(entries), len(results["preset"]["architectures"]), (4.5, 3.5))
    for ax, entry in zip(axes, entries, strict=True):
        for point in entry["points"]:
            style = {"color": FORM_COLORS[point["form"]], "marker": marker[point["activation"]]}
            ax.scatter(point["x"], point["y"], s=30, alpha=0.85, **style)
        statistic, p = entry["statistic"], entry["p_holm"]
        title = ARCH_TITLES.get(entry["architecture"], entry["architecture"])
        ax.set_title(
            f"{title}: within-form Spearman {_fmt(statistic, 2)}\n"
            f"(Holm p = {_fmt(p, 3)})",
            fontsize="medium",
        )
        ax.set_xlabel(MEASURES[entry["measure"]] + " of the activation as used")
        ax.set_ylabel("mean train loss over epochs")
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_yscale("log")
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=f) for f, c in FORM_COLORS.items()]
    handles += [Line2D([], [], color="black", marker=marker[a], linestyle="", label=a) for a in activations]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 9), fontsize="small")
    figure.suptitle("Convergence speed against the property measure (lower loss: faster)")
    return figure


def _unstable_note(records: dict[str, Any]) -> str:
    """'static: E8 unstable (q* = 1.2)' for the forms whose recorded stability (THEORY E19, E22)
    is unstable at the start; '' when none is (or the record predates the stability entry)."""
    notes = []
    for form, record in records.items():
        stability = record.get("stability", {})
        if form != "adaptive" and stability.get("unstable"):
            near = ", ".join(f"{q:.2f}" for q in stability["unstable_fixed_points"])
            notes.append(f"{form}: E8 unstable" + (f" (q* = {near})" if near else ""))
    return "; ".join(notes)


def propagation_figure(results: dict[str, Any]) -> Figure:
    """Per-layer forward E[h^2] (top row) and backward E[delta^2] (bottom row) at initialization:
    measured (dots) and THEORY E8-E9 (lines), one column per activation. The adaptive form has
    no line: its lambda comes from the batch, so only the static one has a closed form. A form
    whose E8 map is unstable at the start (E19, E22) gets a dashed line and a note in the title:
    finite-width deviations grow there, so the measured batch means leave the line at depth."""
    data = results["propagation"]
    activations = list(data)
    figure = Figure(figsize=(3.0 * len(activations), 5.8), dpi=DPI, layout="constrained")
    axes = figure.subplots(2, len(activations), squeeze=False)
    rows = (("preact_sq", "forward E[h^2]"), ("delta_sq", "backward E[delta^2]"))
    for column, act in enumerate(activations):
        for row, (statistic, label) in enumerate(rows):
            ax = axes[row][column]
            for form, record in data[act].items():
                measured = np.asarray(record["measured"][statistic], dtype=float)
                layers = np.arange(1, len(measured) + 1)
                if form != "adaptive":
                    style = "--" if record.get("stability", {}).get("unstable") else "-"
                    ax.plot(layers, record["theory"][statistic], style, color=FORM_COLORS[form], linewidth=1)
                ax.plot(layers, measured, "o", color=FORM_COLORS[form], markersize=2.5)
            ax.set_yscale("log")
            ax.set_xlabel("layer")
            if column == 0:
                ax.set_ylabel(label)
            if row == 0:
                note = _unstable_note(data[act])
                ax.set_title(act + (f"\n{note}" if note else ""), fontsize="medium")
    handles = [
        Line2D([], [], color=c, marker="o", markersize=4, linestyle="", label=f)
        for f, c in FORM_COLORS.items()
    ]
    handles.append(Line2D([], [], color="black", linewidth=1, label="theory E8-E9 (vanilla, static)"))
    handles.append(
        Line2D([], [], color="black", linewidth=1, linestyle="--", label="E8 unstable at start (E19, E22)")
    )
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    figure.suptitle("Signal propagation at initialization: measured (dots) vs theory (lines)")
    return figure


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def figures(results: dict[str, Any]) -> dict[str, Callable[[], Figure]]:
    """{file name: function drawing the figure} for every figure of ``results``."""
    named: dict[str, Callable[[], Figure]] = {
        f"loss_curves_{arch.replace(' ', '_')}.png": functools.partial(loss_curves_figure, results, arch)
        for arch in results["preset"]["architectures"]
    }
    named["accuracy.png"] = functools.partial(accuracy_figure, results)
    named["paired_difference.png"] = functools.partial(paired_difference_figure, results)
    named["convergence_vs_property.png"] = functools.partial(convergence_figure, results)
    named["signal_propagation.png"] = functools.partial(propagation_figure, results)
    return named


def write_figures(results: dict[str, Any], folder: str | Path) -> list[str]:
    """Draw every figure of ``results`` into ``folder``; return the file names."""
    for name, draw in figures(results).items():
        plots.save(draw(), Path(folder) / name)
    return list(figures(results))
