"""Grids with named adaptive readings (Grid.readings): their runs' options, and bad tables refused."""

from __future__ import annotations

import pytest

from tinynormact.experiments import PRESETS, Grid, GridError, load_grid


def test_a_reading_is_a_form_whose_runs_get_its_options(tmp_path) -> None:
    path = tmp_path / "readings.toml"
    path.write_text(
        'name = "r"\nforms = ["vanilla", "adaptive-output"]\narchitectures = ["mlp"]\n'
        'activations = ["tanh"]\nseeds = [0]\ndepths = [3]\nrule = "forward"\n'
        'readings = { adaptive-output = { estimate = "output", lambda_bound = 2.0 } }\n'
    )
    vanilla, output = load_grid(path).runs()
    assert (vanilla.form, vanilla.config.activation, vanilla.config.activation_options) == (
        "vanilla",
        "tanh",
        {},
    )
    assert (output.form, output.config.activation) == ("adaptive-output", "ntanh")
    assert output.config.activation_options == {
        "mode": "adaptive",
        "rule": "forward",
        "center": True,  # the adaptive form's own default, the grid setting none
        "estimate": "output",
        "lambda_bound": 2.0,
    }
    pinned = load_grid(path.write_text(path.read_text() + "center = false\n") and path).runs()[1]
    assert pinned.config.activation_options["center"] is False


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ({"static": {"estimate": "output"}}, "must be a new form name"),
        ({"adaptive-x": {"mode": "static"}}, "without 'mode'"),
        ({"adaptive-x": {"estimate": "raw"}}, r"readings.adaptive-x: unknown estimate 'raw'"),
        ({"adaptive-x": {"lambda_bound": 0.5}}, r"readings.adaptive-x: lambda_bound must be"),
    ],
)
def test_bad_readings_are_named(readings: dict, message: str) -> None:
    with pytest.raises(GridError, match=message):
        Grid(name="bad", forms=("vanilla",), readings=readings)


def test_a_form_must_be_one_of_the_three_or_a_reading() -> None:
    with pytest.raises(
        GridError, match="unknown form.*adaptive-y.*valid forms: vanilla, static, adaptive, adaptive-x"
    ):
        Grid(name="bad", forms=("adaptive-y",), readings={"adaptive-x": {}})


def test_the_study_preset_has_the_full_presets_depths_and_recipe() -> None:
    study, full = PRESETS["anact-study"], PRESETS["full"]
    assert study.depths == full.depths and study.widths == full.widths == (128,)
    assert (study.optimizer, study.lrs, study.dataset_options) == (
        full.optimizer,
        full.lrs,
        full.dataset_options,
    )
    assert {run.config.activation_options.get("estimate") for run in study.runs()} == {
        None,
        "batch",
        "gaussian",
        "output",
    }
    assert len(study.seeds) == 5 and set(study.activations) == {"swish", "tanh", "relu", "gelu"}
