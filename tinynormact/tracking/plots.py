"""Figures of signal propagation and of per-layer statistics over training (matplotlib).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (so nothing opens a
window and any backend, Agg included, works) and takes

- ``path``: None, a path, or a list of paths; each file's format follows its suffix (.png,
  .svg or .pdf), and each is written atomically;
- ``figsize`` (inches) and ``dpi``.

The numbers come from ``tinynormact.tracking.tracker`` (measured) and ``tinynormact.theory``
(predicted), under the statistics convention of docs/THEORY.md, so measured markers and theory
lines are directly comparable::

    measured = {"tanh": tracking.measure_propagation(model, x)}
    predicted = {"tanh": tracking.theory_record(theory.mlp_profile("tanh", widths))}
    plot_signal_propagation(measured, predicted, path="propagation.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from tinynormact.engine.backend import np
from tinynormact.infra.files import check_writable, write_atomically

__all__ = [
    "FORMATS",
    "check_figure_path",
    "plot_gains_over_training",
    "plot_gradient_heatmap",
    "plot_signal_propagation",
    "save",
    "write_tracking_figures",
]

FORMATS = (".png", ".svg", ".pdf")
PathLike = str | Path | Sequence[str | Path] | None
Record = Mapping[str, Any]

_LABELS = {
    "preact_sq": r"$q_l = E[h_l^2]$",
    "delta_sq": r"$E[\delta_l^2]$ per example",
    "weight_grad_var": r"variance over examples of $\partial loss_b / \partial W_l$",
    "weight_grad_sq": r"$E[(\partial loss_b / \partial W_l)^2]$",
    "rho": r"$\rho$",
    "rho_prime": r"$\rho'$",
}
_PLAIN_NUMBER = FuncFormatter(lambda value, _: f"{value:g}")


def _label(statistic: str) -> str:
    return _LABELS.get(statistic, statistic)


def check_figure_path(path: str | Path) -> Path:
    """``path`` as a Path if a figure can be saved there: a known suffix (FORMATS) and a folder
    that can be written (created if needed). ValueError or OSError naming it otherwise, so a
    caller can check before computing what the figure shows."""
    if str(path) == "":
        raise ValueError("cannot save a figure to an empty path; give a file name such as fig.png")
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise ValueError(f"cannot save a figure as {p}: the suffix must be one of {', '.join(FORMATS)}")
    if p.is_dir():
        raise ValueError(f"cannot save a figure as {p}: it is a folder")
    check_writable(p.parent)
    return p


def save(fig: Figure, path: PathLike) -> None:
    """Write ``fig`` to every path in ``path`` (format from the suffix), atomically."""
    paths = [] if path is None else [path] if isinstance(path, str | Path) else list(path)
    for p in map(check_figure_path, paths):
        fmt = p.suffix.lower()[1:]
        write_atomically(p, lambda file, fmt=fmt: fig.savefig(file, format=fmt, bbox_inches="tight"))


def plot_signal_propagation(
    measured: Mapping[str, Record],
    theory: Mapping[str, Record] | None = None,
    forward: str = "preact_sq",
    backward: str = "delta_sq",
    path: PathLike = None,
    figsize: tuple[float, float] = (11.0, 4.2),
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """Forward q_l (E8) and backward E[delta_l^2] (E9) against the layer l, on log scales.

    ``measured`` maps a label (e.g. "tanh", "ntanh") to per-layer arrays keyed by statistic
    name, such as ``tracking.measure_propagation``'s; ``theory`` maps the same labels to
    predictions with the same keys (``tracking.theory_record``). Each label gets one color:
    markers for the measurement, a line for the theory.
    """
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((axes[0], forward, "forward (E8)"), (axes[1], backward, "backward (E9)"))
    for ax, statistic, name in panels:
        for i, (label, record) in enumerate(measured.items()):
            values = np.asarray(record[statistic], dtype=float)
            layers = np.arange(1, len(values) + 1)
            ax.plot(layers, values, "o", color=f"C{i}", markersize=4, label=label)
            if theory is not None and label in theory:
                predicted = np.asarray(theory[label][statistic], dtype=float)
                ax.plot(np.arange(1, len(predicted) + 1), predicted, "-", color=f"C{i}", linewidth=1.2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer l")
        ax.set_ylabel(_label(statistic))
        ax.set_title(name)
        ax.grid(True, which="major", alpha=0.3)
    handles, _ = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o", linestyle="none", markersize=4, label="measured")]
    if theory is not None:
        handles += [Line2D([], [], color="k", linestyle="-", label="theory")]
    axes[1].legend(handles=handles, fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    save(fig, path)
    return fig


def plot_gradient_heatmap(
    record: Record,
    statistic: str = "weight_grad_var",
    path: PathLike = None,
    figsize: tuple[float, float] = (8.0, 4.2),
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """One per-layer statistic over training as a layer x step heatmap on a log color scale.

    ``record`` is ``VarianceTracker.to_dict()`` (or ``tracking.read_json``): "step" of shape (S,)
    and ``statistic`` of shape (S, L). Cells that are NaN or not positive stay blank.
    """
    steps = np.asarray(record["step"])
    values = np.asarray(record[statistic], dtype=float).T  # (L, S): layers up the y axis
    shown = np.ma.masked_where(~(values > 0), values)
    if shown.count() == 0:
        raise ValueError(f"plot_gradient_heatmap: {statistic!r} has no positive value to show on a log scale")
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    layers = np.arange(1, values.shape[0] + 1)
    mesh = ax.pcolormesh(
        steps,
        layers,
        shown,
        shading="nearest",
        cmap="viridis",
        norm=LogNorm(vmin=shown.min(), vmax=shown.max()),
    )
    fig.colorbar(mesh, ax=ax, label=_label(statistic))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel("layer l")
    ax.set_title(title or f"{statistic} per layer over training")
    save(fig, path)
    return fig


def plot_gains_over_training(
    record: Record,
    path: PathLike = None,
    figsize: tuple[float, float] = (11.0, 4.2),
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """The measured gains rho (E5) and rho' (E6) of every layer over training, against 1.

    One line per layer with an activation, colored by depth (colorbar), and a dashed line at 1,
    the value a normalized activation aims for; log y scale. ``record`` as in
    ``plot_gradient_heatmap``.
    """
    steps = np.asarray(record["step"])
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    n_layers = np.asarray(record["rho"]).shape[1]
    colors = ScalarMappable(Normalize(1, max(n_layers, 2)), cmap="viridis")
    for ax, statistic, name in (
        (axes[0], "rho", "forward gain rho (E5)"),
        (axes[1], "rho_prime", "backward gain rho' (E6)"),
    ):
        values = np.asarray(record[statistic], dtype=float)
        for l in range(n_layers):
            if np.isfinite(values[:, l]).any():
                ax.plot(steps, values[:, l], color=colors.to_rgba(l + 1), linewidth=1.2)
        ax.axhline(1.0, color="k", linestyle="--", linewidth=1.0, label="1")
        _log_axis_around_one(ax, values)
        ax.set_xlabel("training step")
        ax.set_ylabel(_label(statistic))
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
    fig.colorbar(colors, ax=list(axes), label="layer l")
    if title:
        fig.suptitle(title)
    save(fig, path)
    return fig


def _log_axis_around_one(ax: Any, values: np.ndarray) -> None:
    """A log y axis centred on 1 that spans the finite ``values``, with plain-number labels
    (minor ticks labelled too when the axis spans less than a decade each way)."""
    finite = values[np.isfinite(values) & (values > 0)]
    reach = max(np.log10(2.0), *np.abs(np.log10(finite))) * 1.05 if finite.size else 1.0
    ax.set_yscale("log")
    ax.set_ylim(10.0**-reach, 10.0**reach)
    ax.yaxis.set_major_formatter(_PLAIN_NUMBER)
    ax.yaxis.set_minor_formatter(_PLAIN_NUMBER if reach <= 1.0 else NullFormatter())


TRACKING_HEATMAPS = ("preact_sq", "delta_sq", "weight_grad_var")


def write_tracking_figures(record: Record, folder: str | Path) -> list[str]:
    """Draw a tracker record's figures into ``folder``; return the file names: a heatmap
    (``plot_gradient_heatmap``) of each of ``TRACKING_HEATMAPS`` the record holds with a
    positive value, "tracking_<statistic>.png", and the gains (``plot_gains_over_training``),
    "tracking_gains.png", when it holds rho and rho'."""
    if not len(record["step"]):
        raise ValueError("the tracker record holds no recorded step to draw")
    names = []
    for statistic in TRACKING_HEATMAPS:
        if statistic in record and (np.asarray(record[statistic]) > 0).any():
            names.append(f"tracking_{statistic}.png")
            plot_gradient_heatmap(record, statistic, path=Path(folder) / names[-1])
    if "rho" in record and "rho_prime" in record:
        names.append("tracking_gains.png")
        plot_gains_over_training(record, path=Path(folder) / names[-1])
    return names
