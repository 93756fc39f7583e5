"""The reproduction pipeline: presets, analysis, the run folder, parallel runs, interruption."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest

from tinynormact.experiments import PRESETS, Preset, analysis, load_results, reproduce, runner, summary_text
from tinynormact.experiments.presets import RunSpec


def tiny_preset(**changes: object) -> Preset:
    """A grid that runs in a second or two: 2 activations x 3 forms x 2 architectures x 2 seeds."""
    settings = dict(
        name="tiny",
        description="test grid",
        activations=("relu", "tanh"),
        dataset="spirals",
        dataset_options={"n_train": 150, "n_test": 60},
        mlp_depth=2,
        resmlp_depth=1,
        width=8,
        epochs=2,
        batch_size=50,
        seeds=2,
        lr=0.01,
        propagation_depth=3,
        propagation_width=16,
        propagation_batch=32,
    )
    return Preset(**{**settings, **changes})


def _run(
    arch: str, act: str, form: str, seed: int, acc: float, speed: float, status: str = "completed"
) -> dict:
    keys = ("architecture", "activation", "form", "seed", "status", "final_test_acc", "mean_train_loss")
    return {
        **dict(zip(keys, (arch, act, form, seed, status, acc, speed), strict=True)),
        "epochs_to_target": None,
    }


# ----- presets ---------------------------------------------------------------------------------------


def test_quick_preset_covers_the_required_grid() -> None:
    quick = PRESETS["quick"]
    assert set(quick.activations) >= {"relu", "tanh", "sigmoid", "swish", "gelu", "elu"}
    assert quick.forms == ("vanilla", "static", "adaptive") and quick.architectures == ("mlp", "resmlp")
    assert quick.seeds >= 2 and quick.dataset == "mnist1d"
    full = PRESETS["full"]
    assert full.seeds > quick.seeds and full.epochs > quick.epochs and full.mlp_depth > quick.mlp_depth


def test_preset_forms_map_to_configurations() -> None:
    preset = tiny_preset()
    specs = preset.runs()
    assert len(specs) == 2 * 2 * 3 * 2
    by_form = {spec.form: spec.config for spec in specs if spec.key[:2] == ("mlp", "tanh") and spec.seed == 1}
    assert by_form["vanilla"].activation == "tanh" and by_form["vanilla"].activation_options == {}
    assert (
        by_form["static"].activation == "ntanh" and by_form["static"].activation_options["mode"] == "static"
    )
    assert by_form["adaptive"].activation_options["mode"] == "adaptive"
    assert {c.seed for c in by_form.values()} == {1} and by_form["static"].depth == preset.mlp_depth
    with pytest.raises(ValueError, match="seeds"):
        preset.with_seeds(0)


# ----- analysis (hand-computed oracles) ----------------------------------------------------------


def test_paired_differences_pair_by_seed() -> None:
    runs = [
        _run("mlp", "relu", "vanilla", 0, 0.50, 1.0),
        _run("mlp", "relu", "vanilla", 1, 0.60, 1.0),
        _run("mlp", "relu", "static", 0, 0.55, 1.0),
        _run("mlp", "relu", "static", 1, 0.61, 1.0),
    ]
    (row,) = analysis.paired_differences(runs)
    assert row["form"] == "static" and row["pairs"] == 2
    assert row["diff_mean"] == pytest.approx(0.03)  # (0.05 + 0.01) / 2
    assert row["diff_std"] == pytest.approx(math.sqrt(2 * 0.02**2))  # sample std of 0.05, 0.01


def test_aggregate_counts_diverged_runs_and_leaves_them_out_of_means() -> None:
    runs = [
        _run("mlp", "tanh", "static", 0, 0.4, 2.0),
        _run("mlp", "tanh", "static", 1, 0.6, 1.0),
        _run("mlp", "tanh", "static", 2, math.nan, math.nan, status="diverged"),
    ]
    (row,) = analysis.aggregate(runs)
    assert (row["seeds"], row["diverged"], row["completed"]) == (3, 1, 2)
    assert row["test_acc_mean"] == pytest.approx(0.5)
    assert row["test_acc_std"] == pytest.approx(math.sqrt(0.02))
    assert row["mean_train_loss"] == pytest.approx(1.5)


def test_theory_table_gains_as_used() -> None:
    (relu, tanh) = analysis.theory_table(["relu", "tanh"], rule="balanced", center=False)
    # ReLU: rho = rho' = 1/2, so lambda^2 = 2 makes both exactly 1 (THEORY E12-E14)
    assert relu["static"]["rho"] == pytest.approx(1.0) and relu["static"]["rho_prime"] == pytest.approx(1.0)
    assert relu["vanilla"]["gain_deviation"] == pytest.approx(1.0)
    # the reference values of THEORY.md for tanh; scaling leaves kappa unchanged
    assert tanh["rho"] == pytest.approx(0.394294, abs=1e-6) and tanh["kappa"] == pytest.approx(
        1.1778, abs=1e-4
    )
    assert (
        tanh["static"]["log_kappa"]
        == pytest.approx(tanh["vanilla"]["log_kappa"])
        == pytest.approx(math.log(1.1778), abs=1e-4)
    )


def test_convergence_correlation_is_spearman_of_measure_and_speed() -> None:
    table = analysis.theory_table(["relu", "tanh", "sigmoid"], rule="balanced", center=False)
    measure = {(r["activation"], f): r[f]["gain_deviation"] for r in table for f in ("vanilla", "static")}
    ranked = sorted(measure, key=measure.get)
    # speeds increasing with the measure: a perfect positive rank correlation
    aggregates = [
        {"architecture": "mlp", "activation": a, "form": f, "mean_train_loss": 1.0 + i}
        for i, (a, f) in enumerate(ranked)
    ]
    by_measure = {c["measure"]: c for c in analysis.convergence_vs_property(aggregates, table)}
    assert by_measure["gain_deviation"]["spearman"] == pytest.approx(1.0)
    assert len(by_measure["gain_deviation"]["points"]) == 6
    reversed_speed = [dict(row, mean_train_loss=-row["mean_train_loss"]) for row in aggregates]
    by_measure = {c["measure"]: c for c in analysis.convergence_vs_property(reversed_speed, table)}
    assert by_measure["gain_deviation"]["spearman"] == pytest.approx(-1.0)


# ----- the whole pipeline ---------------------------------------------------------------------------


def test_reproduce_writes_the_run_folder(tmp_path) -> None:
    out = tmp_path / "run"
    results = reproduce(tiny_preset(), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.md", "results.csv", "results.json"]
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "signal_propagation.png" in figures and "loss_curves_resmlp.png" in figures
    assert all((out / "figures" / name).stat().st_size > 1000 for name in figures)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left

    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "completed" and len(saved["runs"]) == 24
    assert saved["settings"]["seeds"] == [0, 1] and "numpy" in saved["versions"]
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 24 and {r["form"] for r in rows} == {"vanilla", "static", "adaptive"}

    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    assert "| MLP" in report and "Spearman" in report and "python" in report
    table = summary_text(results)
    assert "relu" in table and "static - vanilla" in table


def test_existing_folder_needs_force(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        reproduce(tiny_preset(seeds=1), out, progress=False)
    assert (out / "old.txt").exists()
    reproduce(tiny_preset(seeds=1), out, force=True, progress=False)
    assert not (out / "old.txt").exists() and (out / "report.md").exists()


def test_diverged_runs_are_recorded_not_fatal(tmp_path) -> None:
    preset = tiny_preset(optimizer="sgd", lr=1e12, seeds=1, activations=("relu",), architectures=("mlp",))
    results = reproduce(preset, tmp_path / "run", progress=False)
    assert {r["status"] for r in results["runs"]} == {"diverged"}
    assert all("step" in r["message"] and "layer" in r["message"] for r in results["runs"])
    assert "diverged" in (tmp_path / "run" / "report.md").read_text()


def test_parallel_runs_match_serial_runs() -> None:
    specs = tiny_preset(activations=("tanh",), forms=("vanilla", "adaptive")).runs()
    serial = sorted(runner.run_all(specs, jobs=1), key=lambda r: (r["architecture"], r["form"], r["seed"]))
    parallel = sorted(runner.run_all(specs, jobs=2), key=lambda r: (r["architecture"], r["form"], r["seed"]))
    for a, b in zip(serial, parallel, strict=True):
        assert a["history"] == b["history"]


def test_interrupted_reproduction_reports_the_finished_runs(tmp_path, monkeypatch) -> None:
    finished = []
    original = runner.run_one

    def run_then_interrupt(spec: RunSpec) -> dict:
        if len(finished) == 5:
            raise KeyboardInterrupt
        finished.append(spec.key)
        return original(spec)

    monkeypatch.setattr(runner, "run_one", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny_preset(), tmp_path / "run", progress=False)
    results = load_results(tmp_path / "run")
    assert results["status"] == "interrupted" and len(results["runs"]) == 5
    assert "interrupted" in (tmp_path / "run" / "report.md").read_text()


def test_load_results_turns_null_back_into_nan(tmp_path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"a": [1.0, None], "b": {"c": None}}))
    loaded = load_results(tmp_path)
    assert loaded["a"][0] == 1.0 and math.isnan(loaded["a"][1]) and math.isnan(loaded["b"]["c"])
    with pytest.raises(ValueError, match="does not exist"):
        load_results(tmp_path / "missing")


def test_presets_are_plain_data() -> None:
    preset = tiny_preset()
    assert Preset(**preset.to_dict()) == preset
    assert dataclasses.replace(preset, seeds=5).seeds == 5
