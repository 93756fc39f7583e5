"""The plot functions: the figures have the expected axes, scales, lines and colorbars, and the
files are written in the formats their suffixes ask for."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from tinynormact.tracking import plots

LAYERS, STEPS = 5, 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def per_layer(scale: float) -> dict[str, np.ndarray]:
    decay = scale * 0.5 ** np.arange(LAYERS)
    return {"preact_sq": decay, "delta_sq": decay[::-1].copy()}


def training_record() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    record = {"step": np.arange(STEPS) * 10}
    for name in ("rho", "rho_prime", "weight_grad_var"):
        record[name] = np.exp(0.3 * rng.standard_normal((STEPS, LAYERS)))
    record["rho"][:, -1] = record["rho_prime"][:, -1] = np.nan  # the last Linear has no activation
    return record


def check_written(paths) -> None:
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 1000, path
        if path.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
        elif path.suffix == ".svg":
            assert b"<svg" in data[:2000]
        else:
            assert data.startswith(b"%PDF")


def test_signal_propagation_has_two_log_panels_with_markers_and_theory_lines(tmp_path):
    measured = {"tanh": per_layer(1.0), "ntanh": per_layer(2.0), "relu": per_layer(3.0)}
    theory = {"tanh": per_layer(1.1), "ntanh": per_layer(2.1)}  # no theory for relu
    paths = [tmp_path / "prop.png", tmp_path / "prop.svg"]
    fig = plots.plot_signal_propagation(measured, theory, path=paths, figsize=(8, 3), dpi=50)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert tuple(fig.get_size_inches()) == (8, 3) and fig.dpi == 50
    for ax, statistic in zip(fig.axes, ("preact_sq", "delta_sq"), strict=True):
        assert ax.get_yscale() == "log" and ax.get_xlabel() == "layer l"
        lines = ax.get_lines()
        markers = [line for line in lines if line.get_linestyle() == "None"]
        curves = [line for line in lines if line.get_linestyle() == "-"]
        assert len(markers) == 3 and len(curves) == 2
        np.testing.assert_array_equal(markers[0].get_xdata(), np.arange(1, LAYERS + 1))
        np.testing.assert_array_equal(markers[1].get_ydata(), measured["ntanh"][statistic])
        assert markers[0].get_color() == curves[0].get_color()  # one color per label
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["tanh", "ntanh", "relu", "measured", "theory"]
    check_written(paths)


def test_gradient_heatmap_is_layer_by_step_with_a_log_colorbar(tmp_path):
    record = training_record()
    record["weight_grad_var"][1, 2] = np.nan
    fig = plots.plot_gradient_heatmap(record, path=tmp_path / "heat.pdf")
    ax, colorbar_ax = fig.axes
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.get_array().shape == (LAYERS, STEPS)  # layers up, steps across
    assert mesh.get_array().mask[2, 1]  # NaN stays blank
    assert type(mesh.norm).__name__ == "LogNorm"
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "layer l"
    assert ax.get_xlim()[0] < 0 < 30 < ax.get_xlim()[1]  # the x axis is in steps
    assert "variance" in colorbar_ax.get_ylabel()
    check_written([tmp_path / "heat.pdf"])


def test_gradient_heatmap_refuses_data_without_positive_values():
    record = training_record()
    record["weight_grad_var"][:] = 0.0
    with pytest.raises(ValueError, match="no positive value"):
        plots.plot_gradient_heatmap(record)


def test_gains_over_training_draws_each_layer_with_an_activation_and_the_line_one(tmp_path):
    record = training_record()
    fig = plots.plot_gains_over_training(record, path=tmp_path / "gains.png")
    panels, colorbar_ax = fig.axes[:2], fig.axes[2]
    for ax in panels:
        assert ax.get_yscale() == "log" and ax.get_xlabel() == "training step"
        lines = ax.get_lines()
        assert len(lines) == LAYERS  # LAYERS - 1 layers with an activation, and the line at 1
        reference = [line for line in lines if line.get_linestyle() == "--"]
        assert len(reference) == 1 and set(reference[0].get_ydata()) == {1.0}
        low, high = ax.get_ylim()
        assert low < 1.0 < high
    assert colorbar_ax.get_ylabel() == "layer l"
    check_written([tmp_path / "gains.png"])


def test_saving_rejects_an_unknown_format_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        plots.plot_signal_propagation({"tanh": per_layer(1.0)}, path=tmp_path / "figure.jpg")
    assert list(tmp_path.iterdir()) == []
