"""The reproduction's figures and the propagation plot read on their own (issue 23, item 9): every
point is told apart by colour as well as by marker, a narrow log axis has at least three
distinct labels, the legend names a theory line only when one is drawn, and a title says what
it plots, with any THEORY equation number in parentheses."""

from __future__ import annotations

import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tinynormact.experiments.figures import convergence_figure, paired_difference_figure, propagation_figure
from tinynormact.tracking import plots

ACTIVATIONS = ("relu", "tanh", "swish")
FORMS = ("vanilla", "static", "adaptive")
LAYERS = 6


def correlation_results() -> dict:
    """What convergence_figure reads: mean train losses between 0.88 and 1.3 (a tenth of a decade,
    where matplotlib's log axis labels only 10^0 and 9x10^-1)."""
    rng = np.random.default_rng(3)
    points = [
        {"activation": act, "form": form, "x": 0.05 * (i + 1) * (form == "vanilla"), "y": y}
        for i, act in enumerate(ACTIVATIONS)
        for form, y in zip(FORMS, rng.uniform(0.88, 1.3, size=3), strict=True)
    ]
    entry = {"architecture": "mlp", "measure": "gain_deviation", "statistic": 0.3, "p_holm": 0.7}
    return {
        "preset": {"activations": list(ACTIVATIONS), "architectures": ["mlp"]},
        "correlation": [{**entry, "points": points}],
    }


def propagation_results() -> dict:
    """What propagation_figure reads: tanh in three forms, its static form unstable at q* = 1.2."""
    decay = list(0.8 ** np.arange(LAYERS))
    record = {"measured": {"preact_sq": decay, "delta_sq": decay[::-1]}}
    stable = {**record, "theory": record["measured"], "stability": {"unstable": False}}
    unstable = {**stable, "stability": {"unstable": True, "unstable_fixed_points": [1.2]}}
    return {"propagation": {"tanh": {"vanilla": stable, "static": unstable, "adaptive": record}}}


def texts(figure: Figure) -> list[str]:
    """Every title, axis label and legend entry of ``figure``."""
    found = [figure.get_suptitle()]
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    found += [t.get_text() for legend in legends for t in legend.get_texts()]
    for ax in figure.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [text for text in found if text]


def equations_outside_parentheses(text: str) -> list[str]:
    """The THEORY equation numbers (E8, E19) of ``text`` that stand outside any parentheses."""
    return re.findall(r"\bE\d+", re.sub(r"\([^()]*\)", "", text))


def labelled_y_ticks(figure: Figure, ax) -> list[str]:
    FigureCanvasAgg(figure).draw()  # tick labels exist once the figure is drawn
    low, high = ax.get_ylim()
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text() and low <= t.get_position()[1] <= high]


def test_equation_checker_finds_a_bare_equation_number() -> None:
    assert equations_outside_parentheses("static: E8 unstable (q* = 1.2)") == ["E8"]
    assert equations_outside_parentheses("theory E8-E9 (vanilla, static)") == ["E8", "E9"]
    assert equations_outside_parentheses("backward E[delta^2] (E9)") == []


def test_convergence_points_differ_by_colour_and_marker_per_activation_and_by_fill_per_form() -> None:
    results = correlation_results()
    figure = convergence_figure(results)
    ax = figure.axes[0]
    drawn = [line for line in ax.get_lines() if line.get_linestyle() == "None"]
    points = results["correlation"][0]["points"]
    assert len(drawn) == len(points)
    style = {}
    for line, point in zip(drawn, points, strict=True):
        style.setdefault(point["activation"], set()).add((line.get_color(), line.get_marker()))
        assert (
            line.get_fillstyle() == {"vanilla": "none", "static": "full", "adaptive": "bottom"}[point["form"]]
        )
    assert all(len(s) == 1 for s in style.values())  # one look per activation, whatever the form
    colours = {next(iter(s))[0] for s in style.values()}
    markers = {next(iter(s))[1] for s in style.values()}
    assert len(colours) == len(markers) == len(ACTIVATIONS)  # colour alone tells them apart, so does marker


def test_a_narrow_log_axis_has_at_least_three_distinct_labels() -> None:
    figure = convergence_figure(correlation_results())
    labels = labelled_y_ticks(figure, figure.axes[0])
    assert figure.axes[0].get_yscale() == "log"
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_propagation_forms_differ_by_colour_and_marker() -> None:
    figure = propagation_figure(propagation_results())
    measured = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "None"]
    assert len(measured) == len(FORMS)
    assert len({line.get_color() for line in measured}) == len(FORMS)
    assert len({line.get_marker() for line in measured}) == len(FORMS)


def test_titles_say_what_is_plotted_with_equation_numbers_in_parentheses() -> None:
    figures = {
        "convergence": convergence_figure(correlation_results()),
        "propagation": propagation_figure(propagation_results()),
        "plot_signal_propagation": plots.plot_signal_propagation(
            {"tanh": {"preact_sq": [1.0, 0.5], "delta_sq": [0.5, 1.0]}},
            {"tanh": {"preact_sq": [1.0, 0.6], "delta_sq": [0.6, 1.0]}},
        ),
    }
    for name, figure in figures.items():
        for text in texts(figure):
            assert equations_outside_parentheses(text) == [], f"{name}: {text!r}"
    propagation = figures["propagation"]
    assert "unstable at the start" in propagation.axes[0].get_title()  # the static tanh's note
    assert "(E19, E22)" in propagation.axes[0].get_title()
    record = {"step": np.arange(3), "weight_grad_var": np.ones((3, 2))}
    heatmap = plots.plot_gradient_heatmap(record, "weight_grad_var").axes[0].get_title()
    assert heatmap == "weight-gradient variance (E10) per layer over training"
    forward, backward = (ax.get_title() for ax in figures["plot_signal_propagation"].axes)
    assert "second moment" in forward and "(E8)" in forward
    assert "E[delta^2]" in backward and "(E9)" in backward


def test_the_legend_names_a_theory_line_only_when_one_is_drawn() -> None:
    measured = {"ntanh": {"preact_sq": [1.0, 0.9], "delta_sq": [0.9, 1.0]}}
    adaptive_only = plots.plot_signal_propagation(measured, {})  # propagate --mode adaptive
    assert not any(line.get_linestyle() == "-" for line in adaptive_only.axes[1].get_lines())
    assert [t.get_text() for t in adaptive_only.axes[1].get_legend().get_texts()] == ["ntanh", "measured"]
    with_theory = plots.plot_signal_propagation(measured, measured)
    assert [t.get_text() for t in with_theory.axes[1].get_legend().get_texts()][-1] == "theory"


def paired_results(activations: list[str]) -> dict:
    """What paired_difference_figure reads: one MLP panel, static minus vanilla per activation."""
    rows = [
        {"architecture": "mlp", "activation": act, "form": "static", "diff_mean": 0.01 * i, "ci_low": 0.0,
         "ci_high": 0.02 * i, "p_holm": 0.5}
        for i, act in enumerate(activations)
    ]  # fmt: skip
    preset = {"activations": activations, "architectures": ["mlp"], "forms": ["vanilla", "static"]}
    return {"preset": preset, "paired": rows}


def test_ten_activation_names_are_slanted_so_they_do_not_run_into_each_other() -> None:
    """The full preset's ten names, upright at its panel width, overlapped ("sigmoidswish")."""
    ten = ["relu", "tanh", "sigmoid", "swish", "gelu", "elu", "selu", "mish", "softplus", "softsign"]
    for names, rotation in ((ten, 30.0), (ten[:3], 0.0)):
        figure = paired_difference_figure(paired_results(names))
        FigureCanvasAgg(figure).draw()
        labels = figure.axes[0].get_xticklabels()
        assert [label.get_text() for label in labels] == names
        assert {label.get_rotation() for label in labels} == {rotation}
    upright = [label.get_window_extent() for label in labels]  # the three: side by side, apart
    assert all(left.x1 <= right.x0 for left, right in zip(upright, upright[1:], strict=False))
