"""The reproduction pipeline: grids and presets, analysis, the sweep folder, interruption.

The executors (local Dask workers, a Dask cluster, killed workers, Ctrl-C) are tested in
test_sweeps.py."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynormact import backend, theory
from tinynormact.experiments import (
    PRESETS,
    Grid,
    GridError,
    analysis,
    executors,
    load_grid,
    load_results,
    summary_text,
)
from tinynormact.experiments import reproduce as reproduce_on
from tinynormact.experiments.grid import RunSpec
from tinynormact.experiments.propagation import stability_at_start


def tiny_grid(**changes: object) -> Grid:
    """A grid that runs in a second or two: 2 activations x 3 forms x 2 architectures x 2 seeds."""
    settings = dict(
        name="tiny",
        description="test grid",
        activations=("relu", "tanh"),
        dataset="spirals",
        dataset_options={"n_train": 150, "n_test": 60},
        depths={"mlp": (2,), "resmlp": (1,)},
        widths=(8,),
        epochs=2,
        batch_size=50,
        seeds=(0, 1),
        lrs=(0.01,),
        propagation_depth=3,
        propagation_width=16,
        propagation_batch=32,
    )
    return Grid(**{**settings, **changes})


def reproduce(grid: Grid, out: object, **options: object) -> dict:
    """``reproduce`` on the device under test when it runs in this process; runs on other
    processes (``jobs > 1``, a scheduler) stay on the CPU: workers do not know the strict test
    device."""
    in_process = options.get("jobs", 1) == 1 and options.get("scheduler") is None
    options.setdefault("device", backend.get_device() if in_process else "cpu")
    return reproduce_on(grid, out, **options)


def _run(
    arch: str,
    act: str,
    form: str,
    seed: int,
    acc: float,
    speed: float,
    status: str = "completed",
    final_loss: float = 0.5,
) -> dict:
    keys = ("architecture", "activation", "form", "seed", "status", "final_test_acc", "mean_train_loss")
    return {
        **dict(zip(keys, (arch, act, form, seed, status, acc, speed), strict=True)),
        "epochs_to_target": None,
        "final_train_loss": final_loss,
        "history": {"train_loss": [2.3, 1.0, final_loss]},
    }


# ----- presets ---------------------------------------------------------------------------------------


def test_quick_preset_covers_the_required_grid() -> None:
    quick = PRESETS["quick"]
    assert set(quick.activations) >= {"relu", "tanh", "sigmoid", "swish", "gelu", "elu"}
    assert quick.forms == ("vanilla", "static", "adaptive") and quick.architectures == ("mlp", "resmlp")
    assert len(quick.seeds) >= 2 and quick.dataset == "mnist1d"
    full = PRESETS["full"]
    assert len(full.seeds) > len(quick.seeds) and full.epochs > quick.epochs
    assert full.depths_of("mlp")[0] > quick.depths_of("mlp")[0]


def test_grid_forms_map_to_configurations() -> None:
    preset = tiny_grid()
    specs = preset.runs()
    assert len(specs) == 2 * 2 * 3 * 2
    by_form = {spec.form: spec.config for spec in specs if spec.key[:2] == ("mlp", "tanh") and spec.seed == 1}
    assert by_form["vanilla"].activation == "tanh" and by_form["vanilla"].activation_options == {}
    assert (
        by_form["static"].activation == "ntanh" and by_form["static"].activation_options["mode"] == "static"
    )
    assert by_form["adaptive"].activation_options["mode"] == "adaptive"
    assert {c.seed for c in by_form.values()} == {1} and by_form["static"].depth == 2
    with pytest.raises(ValueError, match="seeds"):
        preset.with_seeds(0)
    assert preset.with_seeds(3).seeds == (0, 1, 2)


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


def test_paired_differences_interval_and_p_value_closed_form() -> None:
    """Two pairs: t has 1 degree of freedom (Cauchy), so t_0.975 = tan(0.475 pi) and the
    two-sided p of t = 1.5 is 1 - 2 atan(1.5) / pi; a pair where a run failed to train is left
    out."""
    runs = [
        _run("mlp", "relu", "vanilla", 0, 0.50, 1.0),
        _run("mlp", "relu", "vanilla", 1, 0.60, 1.0),
        _run("mlp", "relu", "vanilla", 2, 0.60, 1.0, final_loss=9.0),
        _run("mlp", "relu", "static", 0, 0.55, 1.0),
        _run("mlp", "relu", "static", 1, 0.61, 1.0),
        _run("mlp", "relu", "static", 2, 0.90, 1.0),
    ]
    (row,) = analysis.paired_differences(runs)
    assert row["pairs"] == 2 and row["diff_mean"] == pytest.approx(0.03)
    sem = math.sqrt(2 * 0.02**2) / math.sqrt(2)  # sample std of 0.05, 0.01 over sqrt(2)
    half = math.tan(0.475 * math.pi) * sem
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    assert row["p_value"] == pytest.approx(1 - 2 * math.atan(1.5) / math.pi, rel=1e-9)
    assert row["p_holm"] == pytest.approx(row["p_value"])  # one test: nothing to correct


def test_holm_correction_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): 4 * 0.01, 3 * 0.03, max(0.09, 2 * 0.04), max(0.09, 0.5)
    corrected = analysis.holm([0.01, 0.04, 0.03, math.nan, 0.5])
    np.testing.assert_allclose(corrected, [0.04, 0.09, 0.09, math.nan, 0.5], rtol=1e-12)
    assert analysis.holm([0.3, 0.6]) == [0.6, 0.6]  # capped by the running maximum, never above 1


def test_outcome_separates_failed_to_train_from_diverged() -> None:
    assert analysis.outcome(_run("mlp", "relu", "static", 0, 0.5, 1.0)) == "trained"
    assert analysis.outcome(_run("mlp", "relu", "static", 0, 0.1, 1.0, final_loss=2.4)) == "failed to train"
    diverged = _run("mlp", "relu", "static", 0, math.nan, math.nan, status="diverged")
    assert analysis.outcome(diverged) == "diverged"


def test_aggregate_counts_diverged_and_failed_runs_and_leaves_them_out_of_means() -> None:
    runs = [
        _run("mlp", "tanh", "static", 0, 0.4, 2.0),
        _run("mlp", "tanh", "static", 1, 0.6, 1.0),
        _run("mlp", "tanh", "static", 2, math.nan, math.nan, status="diverged"),
        _run("mlp", "tanh", "static", 3, 0.1, 80.0, final_loss=160.0),
    ]
    runs[0]["epochs_to_target"], runs[1]["epochs_to_target"] = 3, math.nan  # NaN: read back, not reached
    (row,) = analysis.aggregate(runs)
    assert (row["seeds"], row["diverged"], row["failed"], row["completed"]) == (4, 1, 1, 2)
    assert row["reached_target"] == 1 and row["epochs_to_target_median"] == 3
    assert row["test_acc_mean"] == pytest.approx(0.5)
    assert row["test_acc_std"] == pytest.approx(math.sqrt(0.02))
    assert row["mean_train_loss"] == pytest.approx(1.5)


def test_theory_table_gains_as_used() -> None:
    (relu, tanh) = analysis.theory_table(["relu", "tanh"], rule="balanced", centring={})
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


def test_convergence_correlation_is_tested_within_forms() -> None:
    table = analysis.theory_table(["relu", "tanh", "sigmoid"], rule="balanced", centring={})
    measure = {(r["activation"], f): r[f]["gain_deviation"] for r in table for f in ("vanilla", "static")}
    ranked = sorted(measure, key=measure.get)
    # speeds increasing with the measure: a perfect positive rank correlation in each form
    aggregates = [
        {"architecture": "mlp", "activation": a, "form": f, "mean_train_loss": 1.0 + i}
        for i, (a, f) in enumerate(ranked)
    ]
    by_measure = {c["measure"]: c for c in analysis.convergence_vs_property(aggregates, table)}
    gain = by_measure["gain_deviation"]
    assert gain["within"] == {"vanilla": pytest.approx(1.0), "static": pytest.approx(1.0)}
    assert gain["statistic"] == pytest.approx(1.0) and gain["pooled"] == pytest.approx(1.0)
    assert len(gain["points"]) == 6
    reversed_speed = [dict(row, mean_train_loss=-row["mean_train_loss"]) for row in aggregates]
    by_measure = {c["measure"]: c for c in analysis.convergence_vs_property(reversed_speed, table)}
    assert by_measure["gain_deviation"]["statistic"] == pytest.approx(-1.0)


def test_within_form_permutation_p_value_matches_the_exact_null() -> None:
    """Two forms of 3 points: each Spearman is +-1 (probability 1/6 each) or +-1/2 (2/6 each)
    under the null. Observed +1 and +1/2 (mean 3/4): P(|mean| >= 3/4) = 2 (1/36 + 2 * 2/36) =
    10/36. The estimate from N = 20000 permutations has SE sqrt(p (1 - p) / N) = 0.0032; 5 SE
    (0.016) is 5.7% of p, so a p-value 10% off would fail. Holm over the two measures doubles the
    smaller p, capped by the larger."""
    table = [
        {
            "activation": a,
            "vanilla": {"gain_deviation": x, "log_kappa": x},
            "static": {"gain_deviation": x, "log_kappa": x},
        }
        for a, x in (("a", 1.0), ("b", 2.0), ("c", 3.0))
    ]
    losses = {("a", "vanilla"): 1.0, ("b", "vanilla"): 2.0, ("c", "vanilla"): 3.0}
    losses |= {("a", "static"): 1.0, ("b", "static"): 3.0, ("c", "static"): 2.0}  # Spearman 1/2
    aggregates = [
        {"architecture": "mlp", "activation": a, "form": f, "mean_train_loss": y}
        for (a, f), y in losses.items()
    ]
    entry = analysis.convergence_vs_property(aggregates, table)[0]
    assert entry["statistic"] == pytest.approx(0.75)
    exact, tolerance = 10 / 36, 5 * math.sqrt(10 / 36 * 26 / 36 / analysis.PERMUTATIONS)
    assert abs(entry["p_value"] - exact) <= tolerance < 0.1 * exact
    assert entry["p_holm"] == pytest.approx(min(1.0, 2 * entry["p_value"]), abs=tolerance)


# ----- the whole pipeline ---------------------------------------------------------------------------


def _histories(folder) -> dict[str, dict]:
    """{run file name: history} of a sweep folder's runs."""
    return {path.name: json.loads(path.read_text())["history"] for path in (folder / "runs").iterdir()}


def test_reproduce_writes_the_sweep_folder(tmp_path) -> None:
    out = tmp_path / "run"
    results = reproduce(tiny_grid(), out, progress=False)
    names = ["figures", "grid.json", "report.md", "results.csv", "results.json", "runs"]
    assert sorted(p.name for p in out.iterdir()) == names
    runs = sorted(p.name for p in (out / "runs").iterdir())
    expected = sorted(spec.file_name for spec in tiny_grid().runs(backend.get_device()))
    assert runs == expected and len(runs) == 24
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "signal_propagation.png" in figures and "loss_curves_resmlp.png" in figures
    assert all((out / "figures" / name).stat().st_size > 1000 for name in figures)
    assert not [p for p in out.rglob(".*")]  # no temporary file left

    saved = json.loads((out / "results.json").read_text())
    assert saved["status"] == "completed" and len(saved["runs"]) == 24
    assert saved["settings"]["seeds"] == [0, 1] and "numpy" in saved["versions"]
    assert saved["settings"]["executor"] == "in this process"
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 24 and {r["form"] for r in rows} == {"vanilla", "static", "adaptive"}
    assert {r["width"] for r in rows} == {"8"} and {r["depth"] for r in rows} == {"1", "2"}
    # each run's outcome and its untrained loss, so that a reader can recount the failed runs
    assert [r["outcome"] for r in rows] == [analysis.outcome(run) for run in saved["runs"]]
    initial = [run["history"]["train_loss"][0] for run in saved["runs"]]
    assert [float(r["initial_train_loss"]) for r in rows] == initial

    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    assert "| MLP" in report and "Spearman" in report and "python" in report
    settings = report.partition("## Settings and software")[2].splitlines()
    keys = [line.partition(":")[0] for line in settings if line.startswith("- ") and ":" in line]
    assert "- seeds" in keys and len(keys) == len(set(keys))  # before: seeds was listed twice
    table = summary_text(results)
    assert "relu" in table and "static - vanilla" in table and "over 2 seeds" in table


def test_cnn_quick_preset_and_a_tiny_resnet1d_grid_write_the_same_report(tmp_path) -> None:
    cnn = PRESETS["cnn-quick"]
    assert cnn.architectures == ("resnet1d",) and cnn.dataset == "mnist1d" and len(cnn.seeds) >= 3
    assert cnn.forms == ("vanilla", "static", "adaptive") and "swish" in cnn.activations
    config = cnn.runs()[0].config
    assert (config.architecture, config.depth, config.width) == ("resnet1d", 1, 32)
    out = tmp_path / "run"
    tiny = tiny_grid(
        architectures=("resnet1d",), activations=("swish",), widths=(4,), depths={"resnet1d": (1,)}
    )
    reproduce(tiny, out, progress=False)
    assert "loss_curves_resnet1d.png" in {p.name for p in (out / "figures").iterdir()}
    report = (out / "report.md").read_text()
    assert "| 1-D ResNet" in report and "static - vanilla" in report


def test_a_folder_that_is_not_a_sweep_is_refused_even_with_force(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="not a sweep folder.*old.txt"):
            reproduce(tiny_grid(seeds=(0,)), out, force=force, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_a_folder_of_another_grid_is_refused_naming_what_differs(tmp_path) -> None:
    out = tmp_path / "run"
    grid = tiny_grid(activations=("tanh",), architectures=("mlp",), depths=(2,), seeds=(0,))
    reproduce(grid, out, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(FileExistsError) as caught:
        reproduce(dataclasses.replace(grid, epochs=3, seeds=(0, 1)), out, progress=False)
    message = str(caught.value)
    assert "grid.epochs: 2 there, 3 here" in message and "grid.seeds: [0] there, [0, 1] here" in message
    with pytest.raises(FileExistsError, match=f"device: '{backend.get_device()}' there, 'cuda' here"):
        reproduce(grid, out, device="cuda", progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        reproduce(grid, tmp_path / "elsewhere", resume=True, progress=False)


def _counting_runs(monkeypatch) -> list[RunSpec]:
    """Make the executors record every run they start; returns the list they append to."""
    started: list[RunSpec] = []
    original = executors.run_one

    def counting(spec: RunSpec) -> dict:
        started.append(spec)
        return original(spec)

    monkeypatch.setattr(executors, "run_one", counting)
    return started


def test_a_rerun_runs_only_the_missing_runs(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    grid = tiny_grid(activations=("tanh",))
    first = reproduce(grid, out, progress=False)
    complete = _histories(out)
    missing = sorted(complete)[::4]  # 3 of the 12 runs
    for name in missing:
        (out / "runs" / name).unlink()
    started = _counting_runs(monkeypatch)
    notices: list[str] = []
    again = reproduce(grid, out, progress=False, notice=notices.append)
    assert sorted(spec.file_name for spec in started) == missing
    assert notices[0] == f"resuming {out}: 9 of 12 runs already finished, 3 to run"
    assert len(notices) == 2 and notices[1].startswith("estimated time: about ")  # then the runs
    assert _histories(out) == complete
    assert [r["final_test_acc"] for r in again["runs"]] == [r["final_test_acc"] for r in first["runs"]]
    started.clear()
    reproduce(grid, out, resume=True, progress=False)  # every run finished: nothing starts
    assert started == []


def test_in_a_log_a_resumed_sweep_reports_each_further_tenth_of_its_runs(tmp_path, monkeypatch) -> None:
    """Before: with standard error not a terminal (nohup, a cluster job's log) a sweep of hours
    printed nothing until its report."""
    out = tmp_path / "run"
    grid = tiny_grid(activations=("tanh",))  # 12 runs
    reproduce(grid, out, progress=False)
    for name in sorted(p.name for p in (out / "runs").iterdir())[1:]:  # keep one
        (out / "runs" / name).unlink()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    notices: list[str] = []
    reproduce(grid, out, notice=notices.append)  # progress=None: a bar on a terminal, else lines
    assert notices[0] == f"resuming {out}: 1 of 12 runs already finished, 11 to run"
    assert notices[1].startswith("estimated time: about "), notices  # said before the first run
    progress = notices[2:]
    tenths_reached_at = {math.ceil(k * 12 / 10) for k in range(1, 11)}  # 2, 3, 4, 5, 6, 8, ... 12
    assert [int(line.split()[0]) for line in progress] == sorted(tenths_reached_at - {1}), notices
    line = re.compile(r"\d+ of 12 runs finished; \d+ s so far, about \d+ s left")
    assert all(line.fullmatch(notice) for notice in progress[:-1]), notices
    assert re.fullmatch(r"12 of 12 runs finished; \d+ s so far", notices[-1]), notices


def test_diverged_runs_are_recorded_not_fatal(tmp_path) -> None:
    preset = tiny_grid(optimizer="sgd", lrs=(1e12,), seeds=(0,), activations=("relu",))
    # vanilla and static only: the default adaptive reading holds each layer's output at a fixed
    # second moment (THEORY E25), so even this step size leaves its forward pass finite
    preset = dataclasses.replace(preset, architectures=("mlp",), depths=(2,), forms=("vanilla", "static"))
    results = reproduce(preset, tmp_path / "run", progress=False)
    assert {r["status"] for r in results["runs"]} == {"diverged"}
    assert all("step" in r["message"] and "layer" in r["message"] for r in results["runs"])
    assert "diverged" in (tmp_path / "run" / "report.md").read_text()


def test_a_run_that_raises_is_recorded_as_failed_and_retried_by_a_rerun(tmp_path, monkeypatch) -> None:
    grid = tiny_grid(activations=("tanh",), forms=("vanilla", "static"), seeds=(0,))
    victim = grid.runs(backend.get_device())[1]
    original = executors.run_one

    def failing(spec: RunSpec) -> dict:
        if spec == victim:
            raise MemoryError("out of memory (simulated)")
        return original(spec)

    monkeypatch.setattr(executors, "run_one", failing)
    results = reproduce(grid, tmp_path / "run", progress=False)
    (failed,) = [r for r in results["runs"] if r["status"] == "failed"]
    assert failed["message"] == "MemoryError: out of memory (simulated)"
    assert (failed["architecture"], failed["form"]) == (victim.setting, victim.form)
    assert results["settings"]["failed"] == 1
    assert "out of memory" in (tmp_path / "run" / "report.md").read_text()
    monkeypatch.setattr(executors, "run_one", original)
    started = _counting_runs(monkeypatch)
    results = reproduce(grid, tmp_path / "run", progress=False)
    assert started == [victim] and results["settings"]["failed"] == 0


def test_interrupted_reproduction_keeps_and_reports_the_finished_runs(tmp_path, monkeypatch) -> None:
    finished = []
    original = executors.run_one

    def run_then_interrupt(spec: RunSpec) -> dict:
        if len(finished) == 5:
            raise KeyboardInterrupt
        finished.append(spec.key)
        return original(spec)

    monkeypatch.setattr(executors, "run_one", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny_grid(), tmp_path / "run", progress=False)
    results = load_results(tmp_path / "run")
    assert results["status"] == "interrupted" and len(results["runs"]) == 5
    assert len(list((tmp_path / "run" / "runs").iterdir())) == 5
    assert "interrupted" in (tmp_path / "run" / "report.md").read_text()


def test_load_results_turns_null_back_into_nan(tmp_path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"a": [1.0, None], "b": {"c": None}}))
    loaded = load_results(tmp_path)
    assert loaded["a"][0] == 1.0 and math.isnan(loaded["a"][1]) and math.isnan(loaded["b"]["c"])
    with pytest.raises(ValueError, match="does not exist"):
        load_results(tmp_path / "missing")


# ----- grids and grid files --------------------------------------------------------------------


def test_grids_are_plain_data() -> None:
    grid = tiny_grid()
    assert Grid.from_dict(grid.to_dict()) == grid
    assert dataclasses.replace(grid, seeds=(5,)).seeds == (5,)


QUICK_AS_A_FILE = """
name = "quick"
description = "the quick preset, written as a grid file"
architectures = ["mlp", "resmlp"]
activations = ["relu", "tanh", "sigmoid", "swish", "gelu", "elu"]
forms = ["vanilla", "static", "adaptive"]
widths = [64]
depths = {mlp = [10], resmlp = [4]}
lrs = [0.001]
seeds = [0, 1, 2]
dataset = "mnist1d"
epochs = 15
batch_size = 128
optimizer = "adam"
"""


def test_a_preset_is_a_grid_file(tmp_path) -> None:
    path = tmp_path / "quick.toml"
    path.write_text(QUICK_AS_A_FILE)
    loaded = load_grid(path)
    assert [s.config for s in loaded.runs()] == [s.config for s in PRESETS["quick"].runs()]
    assert [s.file_name for s in loaded.runs()] == [s.file_name for s in PRESETS["quick"].runs()]


def test_a_varying_width_and_lr_name_the_settings() -> None:
    grid = tiny_grid(architectures=("mlp",), depths=(2,), widths=(4, 8), lrs=(0.01, 0.1), seeds=(0,))
    assert grid.settings() == ["mlp w4 lr0.01", "mlp w4 lr0.1", "mlp w8 lr0.01", "mlp w8 lr0.1"]
    specs = grid.runs()
    assert len(specs) == 4 * 2 * 3 and len({s.file_name for s in specs}) == len(specs)
    first = specs[0]
    assert (first.config.width, first.config.lr, first.setting) == (4, 0.01, "mlp w4 lr0.01")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('name = "g"\nactivation = ["relu"]', ["unknown key", "'activation'", "activations"]),
        ('name = "g"\nseeds = []', ["'seeds'", "empty"]),
        ('name = "g"\nwidths = 64', ["'widths' must be a list", "64"]),
        ('name = "g"\nforms = ["vanilla", "scaled"]', ["'scaled'", "static"]),
        ('name = "g"\nseeds = [1, 1]', ["'seeds'", "repeats 1"]),
        ('name = "g"\ndepths = {mlp = [3]}', ["depths", "missing ['resmlp']"]),
        ('name = "g"\nactivations = ["nope"]', ["activation", "nope"]),
        ('name = "g"\nwidths = [0]', ["width", "0"]),
        ("description = 'no name'", ["needs a name"]),
        ('name = "g"\nseeds = [0', ["not valid TOML"]),
    ],
)
def test_bad_grid_files_are_refused_by_name(tmp_path, text: str, words: list[str]) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(GridError) as caught:
        load_grid(path).runs()
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_propagation_marks_a_form_whose_e8_map_is_unstable_at_the_start() -> None:
    nswish = stability_at_start(theory.normalized("swish"), 1.0)  # slope 1.136, q* = 1.202 unstable
    assert nswish["unstable"] and nswish["chi_q"] == pytest.approx(1.136, abs=1e-3)
    assert nswish["unstable_fixed_points"] == [pytest.approx(1.2021, abs=1e-4)]
    ntanh = stability_at_start(theory.normalized("tanh"), 1.0)  # stable q* = 0.861, slope 0.43
    assert not ntanh["unstable"] and ntanh["unstable_fixed_points"] == []


def test_the_sweeps_page_grid_file_is_a_valid_grid(tmp_path) -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "guide" / "sweeps.md"
    (block,) = re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.DOTALL)
    (tmp_path / "widths.toml").write_text(block)
    grid = load_grid(tmp_path / "widths.toml")
    assert len(grid.runs()) == 2 * 2 * 3 * 2 * 3  # architectures x activations x forms x widths x seeds
    assert grid.settings() == ["mlp w16", "mlp w64", "resmlp w16", "resmlp w64"]


def test_a_grid_with_options_left_out_reopens_its_own_folder(tmp_path) -> None:
    """grid.json stores None (an option left to each form, as ``center``) and NaN alike as null,
    which reads back as NaN: the check compares both sides as stored, so the folder the grid
    wrote is its own, and a real change is still named."""
    from tinynormact.experiments.sweep_folder import open_sweep_folder

    identity = {"grid": {"name": "g", "center": None, "target_loss": math.nan, "seeds": (0, 1)}}
    folder, _ = open_sweep_folder(tmp_path / "sweep", identity, [])
    folder.create()
    (tmp_path / "sweep" / "runs").mkdir()
    assert open_sweep_folder(tmp_path / "sweep", identity, [])[1] == {}
    changed = {"grid": {**identity["grid"], "center": True}}
    with pytest.raises(FileExistsError, match=r"grid.center: None there, True here"):
        open_sweep_folder(tmp_path / "sweep", changed, [])
