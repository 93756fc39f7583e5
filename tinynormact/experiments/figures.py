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
_READING_COLORS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def form_color(form: str, forms: Sequence[str] = ()) -> str:
    """The color of a form: FORM_COLORS for the three forms, then one per further reading in
    the order of ``forms``."""
    if form in FORM_COLORS:
        return FORM_COLORS[form]
    readings = [f for f in forms if f not in FORM_COLORS]
    return _READING_COLORS[readings.index(form) % len(_READING_COLORS)] if form in readings else "black"
ARCH_TITLES = {
    "mlp": "MLP",
    "resmlp": "residual MLP",
    "mlp-bn": "MLP with batch norm",
    "resmlp-bn": "residual MLP with batch norm",
    "resnet1d": "1-D ResNet",
}
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
            color = form_color(form, preset["forms"])
            ax.plot(epochs, curves_arr.mean(axis=0), color=color, label=label)
            ax.fill_between(epochs, curves_arr.min(axis=0), curves_arr.max(axis=0), color=color, alpha=0.2)
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
            color = form_color(form, preset["forms"])
            ax.bar(x + offset, means, width, yerr=spans, capsize=2, color=color, label=form)
        if len(preset["activations"]) > 6:  # ten names side by side run into each other
            ax.set_xticks(x, preset["activations"], rotation=30, ha="right")
        else:
            ax.set_xticks(x, preset["activations"])
        ax.set_title(ARCH_TITLES.get(arch, arch))
        ax.set_ylabel(ylabel)
        panels.append(rows)
    # one legend below the panels: inside one, nine forms' names hid its bars
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(forms), 5), fontsize="small")
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
# how a form fills the marker of its activation in the convergence figure
FORM_FILLS = {"vanilla": "none", "static": "full", "adaptive": "bottom"}
FORM_MARKERS = {"vanilla": "o", "static": "s", "adaptive": "^"}
_READING_FILLS = ("left", "right", "top")
_READING_MARKERS = "vD<>ph"


def _reading_style(form: str, forms: Sequence[str], table: dict[str, str], further: Sequence[str]) -> str:
    """``table``'s entry for the three forms, else one of ``further`` per reading in ``forms``' order."""
    if form in table:
        return table[form]
    readings = [f for f in forms if f not in table]
    return further[readings.index(form) % len(further)] if form in readings else further[0]


def form_fill(form: str, forms: Sequence[str] = ()) -> str:
    """The marker fill of a form in the convergence figure (hollow vanilla, filled static, ...)."""
    return _reading_style(form, forms, FORM_FILLS, _READING_FILLS)


def form_marker(form: str, forms: Sequence[str] = ()) -> str:
    """The marker of a form in the propagation figure."""
    return _reading_style(form, forms, FORM_MARKERS, _READING_MARKERS)


def convergence_figure(results: dict[str, Any]) -> Figure:
    """Convergence speed (mean train loss over epochs) against each property measure, one panel
    per (measure, architecture): each activation has its own colour and marker, each form its
    fill (hollow vanilla, filled static, half-filled adaptive); no text labels, which overlap
    where static and adaptive share a measure. Symmetric-log x axis (the normalized forms sit
    near 0) and log y axis with plain-number labels, so an outlier does not squeeze the rest.
    The title gives the within-form test (``analysis.convergence_vs_property``)."""
    entries = results["correlation"]
    activations = results["preset"]["activations"]
    marker = {act: MARKERS[i % len(MARKERS)] for i, act in enumerate(activations)}
    colour = {act: f"C{i % 10}" for i, act in enumerate(activations)}
    forms = results["preset"].get("forms", tuple(FORM_FILLS))
    figure, axes = _grid(len(entries), len(results["preset"]["architectures"]), (4.5, 3.5))
    for ax, entry in zip(axes, entries, strict=True):
        for point in entry["points"]:
            act = point["activation"]
            fill = form_fill(point["form"], forms)
            style = {"color": colour[act], "marker": marker[act], "fillstyle": fill}
            ax.plot(
                [point["x"]], [point["y"]], linestyle="", markersize=6, markerfacecoloralt="white", **style
            )
        title = ARCH_TITLES.get(entry["architecture"], entry["architecture"])
        ax.set_title(
            f"{title}: within-form Spearman {_fmt(entry['statistic'], 2)}\n"
            f"(Holm p = {_fmt(entry['p_holm'], 3)})",
            fontsize="medium",
        )
        ax.set_xlabel(MEASURES[entry["measure"]] + " of the activation as used")
        ax.set_ylabel("mean train loss over epochs")
        ax.set_xscale("symlog", linthresh=0.01)
        plots.plain_log_yaxis(ax)
    handles = [Line2D([], [], color=colour[a], marker=marker[a], linestyle="", label=a) for a in activations]
    handles += [
        Line2D(
            [],
            [],
            color="black",
            marker="o",
            fillstyle=form_fill(f, forms),
            markerfacecoloralt="white",
            linestyle="",
            label=f,
        )
        for f in forms
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 9), fontsize="small")
    figure.suptitle("Convergence speed against the property measure (lower loss: faster)")
    return figure


def _unstable_note(records: dict[str, Any]) -> str:
    """'static: unstable at the start' and, on a second line, 'q* = 1.20 (E19, E22)', for the
    forms whose recorded stability (of the forward map E8, by THEORY E19 and E22) is unstable at
    the start; '' when none is (or the record predates the stability entry)."""
    notes = []
    for form, record in records.items():
        stability = record.get("stability", {})
        if form in ("vanilla", "static") and stability.get("unstable"):
            near = ", ".join(f"{q:.2f}" for q in stability["unstable_fixed_points"])
            where = f"\nq* = {near} (E19, E22)" if near else " (E19, E22)"
            notes.append(f"{form}: unstable at the start{where}")
    return "; ".join(notes)


def propagation_figure(results: dict[str, Any]) -> Figure:
    """Per-layer forward E[h^2] (top row) and backward E[delta^2] (bottom row) at initialization:
    measured (a marker per form) and THEORY E8-E9 (lines), one column per activation. The adaptive
    form has no line (nor has any adaptive reading): its lambda comes from the batch, so only the
    static one has a closed form. A form
    whose E8 map is unstable at the start (E19, E22) gets a dashed line and a note in the title:
    finite-width deviations grow there, so the measured batch means leave the line at depth."""
    data = results["propagation"]
    activations = list(data)
    figure = Figure(figsize=(3.0 * len(activations), 5.8), dpi=DPI, layout="constrained")
    axes = figure.subplots(2, len(activations), squeeze=False)
    rows = (("preact_sq", "forward E[h^2] (E8)"), ("delta_sq", "backward E[delta^2] (E9)"))
    for column, act in enumerate(activations):
        for row, (statistic, label) in enumerate(rows):
            ax = axes[row][column]
            for form, record in data[act].items():
                measured = np.asarray(record["measured"][statistic], dtype=float)
                layers = np.arange(1, len(measured) + 1)
                color = form_color(form, list(data[act]))
                if form in ("vanilla", "static"):
                    style = "--" if record.get("stability", {}).get("unstable") else "-"
                    ax.plot(layers, record["theory"][statistic], style, color=color, linewidth=1)
                ax.plot(layers, measured, form_marker(form, list(data[act])), color=color, markersize=2.5)
            plots.plain_log_yaxis(ax)
            ax.set_xlabel("layer")
            if column == 0:
                ax.set_ylabel(label)
            if row == 0:
                note = _unstable_note(data[act])
                ax.set_title(act + (f"\n{note}" if note else ""), fontsize="medium")
    forms = list(data[activations[0]])
    handles = [
        Line2D(
            [], [], color=form_color(f, forms), marker=form_marker(f, forms), markersize=4, linestyle="",
            label=f"{f}, measured",
        )
        for f in forms
    ]
    handles.append(Line2D([], [], color="black", linewidth=1, label="theory, vanilla and static (E8-E9)"))
    handles.append(
        Line2D(
            [],
            [],
            color="black",
            linewidth=1,
            linestyle="--",
            label="theory, unstable: deviations grow with depth",
        )
    )
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    figure.suptitle(
        "Signal propagation at initialization: per-layer second moments, measured (markers) and the "
        "mean-field theory (lines)"
    )
    return figure


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def figures(results: dict[str, Any]) -> dict[str, Callable[[], Figure]]:
    """{file name: function drawing the figure} for every figure of ``results`` (no paired
    differences in a grid without a normalized form)."""
    named: dict[str, Callable[[], Figure]] = {
        f"loss_curves_{arch.replace(' ', '_')}.png": functools.partial(loss_curves_figure, results, arch)
        for arch in results["preset"]["architectures"]
    }
    named["accuracy.png"] = functools.partial(accuracy_figure, results)
    if any(form != "vanilla" for form in results["preset"]["forms"]):
        named["paired_difference.png"] = functools.partial(paired_difference_figure, results)
    named["convergence_vs_property.png"] = functools.partial(convergence_figure, results)
    named["signal_propagation.png"] = functools.partial(propagation_figure, results)
    return named


def write_figures(results: dict[str, Any], folder: str | Path) -> list[str]:
    """Draw every figure of ``results`` into ``folder``; return the file names."""
    for name, draw in figures(results).items():
        plots.save(draw(), Path(folder) / name)
    return list(figures(results))
