"""The estimated time a sweep prints before it starts (issue 26, case 16).

The step times are replaced by fixed numbers, so the arithmetic is checked against a sum written
out here from the grid's sizes, and nothing depends on how fast this machine is.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from test_experiments import tiny_grid

from tinynormact.experiments import estimate, sweep
from tinynormact.train import Trainer, load_data

# two network shapes (mlp depth 2, resmlp depth 1), 150 training examples in batches of 50
GRID = tiny_grid(activations=("tanh",), forms=("vanilla", "static"), seeds=(0, 1, 2), epochs=5)
STEP_SECONDS = {("mlp", 2, 8): 0.25, ("resmlp", 1, 8): 0.125}


@pytest.fixture
def fixed_step_times(monkeypatch):
    """``step_seconds`` at STEP_SECONDS, counting the shapes it was asked to time."""
    timed = []

    def fixed(spec, splits):
        shape = (spec.architecture, spec.depth, spec.width)
        timed.append(shape)
        return STEP_SECONDS[shape], Trainer(spec.config, splits)

    monkeypatch.setattr(estimate, "step_seconds", fixed)
    return timed


def test_the_estimate_sums_each_runs_steps_and_evaluations(fixed_step_times) -> None:
    specs = GRID.runs("cpu")
    splits = load_data(specs[0].config)
    # per run: 5 epochs x (150/50 = 3 training steps + (150 + 60) / 50 / 3 = 1.4 steps' worth of
    # evaluation), 6 runs of each shape (1 activation x 2 forms x 3 seeds)
    per_run = {shape: 5 * (3 + 1.4) * seconds for shape, seconds in STEP_SECONDS.items()}
    expected = 6 * (per_run[("mlp", 2, 8)] + per_run[("resmlp", 1, 8)])
    assert math.isclose(estimate.estimate_seconds(specs, splits, workers=1), expected, rel_tol=1e-12)
    assert math.isclose(estimate.estimate_seconds(specs, splits, workers=3), expected / 3, rel_tol=1e-12)
    # each shape timed once per estimate, not once per run
    assert sorted(fixed_step_times) == sorted(list(STEP_SECONDS) * 2)


def test_step_seconds_takes_a_warm_up_and_the_timed_steps_even_in_a_set_of_fewer_batches(monkeypatch) -> None:
    spec = GRID.runs("cpu")[0]
    splits = load_data(spec.config)  # 3 batches, fewer than the 1 + TIMED_STEPS steps
    calls = []
    original = Trainer.train_step
    counted = lambda self, x, y: calls.append(len(x)) or original(self, x, y)  # noqa: E731
    monkeypatch.setattr(Trainer, "train_step", counted)
    seconds, trainer = estimate.step_seconds(spec, splits)
    assert calls == [50] * (estimate.TIMED_STEPS + 1) and trainer.step == estimate.TIMED_STEPS + 1
    assert seconds > 0


def test_the_sweep_says_its_estimate_before_its_first_run(tmp_path, fixed_step_times) -> None:
    out, said = tmp_path / "sweep", []

    def notice(line: str) -> None:
        said.append((line, out.exists() and any((out / "runs").glob("*.json"))))

    sweep.run_sweep(GRID, out, progress=False, notice=notice)
    lines = [line for line, _ in said]
    assert lines[0] == f"{out}: 12 runs to run"
    # 6 x 5 x 4.4 x (0.25 + 0.125) = 49.5 s on the one worker of an in-process sweep
    assert lines[1].startswith("estimated time: about 50 s on 1 worker")
    assert not any(written for _, written in said[:2])


def test_a_finished_sweep_times_nothing(tmp_path, fixed_step_times) -> None:
    sweep.run_sweep(GRID, tmp_path / "s", progress=False, notice=lambda line: None)
    fixed_step_times.clear()
    said = []
    sweep.run_sweep(GRID, tmp_path / "s", progress=False, notice=said.append)
    assert fixed_step_times == [] and not any(line.startswith("estimated") for line in said)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(49.5, "50 s"), (119.0, "119 s"), (150.0, "2.5 min"), (7199.0, "120.0 min"), (9000.0, "2.5 h")],
)
def test_durations_read_in_the_unit_a_person_would_use(seconds, label) -> None:
    assert sweep._duration(seconds) == label


def test_a_run_that_diverges_within_the_timed_steps_is_timed_on_the_steps_it_took() -> None:
    """Before: the estimate's own steps raised TrainingDiverged and stopped the sweep before its
    first run (a learning rate of 1e12 overflows at the third step)."""
    grid = tiny_grid(optimizer="sgd", lrs=(1e12,), seeds=(0,), activations=("relu",), forms=("vanilla",))
    (spec,) = dataclasses.replace(grid, architectures=("mlp",), depths=(2,)).runs("cpu")
    seconds, trainer = estimate.step_seconds(spec, load_data(spec.config))
    assert 0 < seconds < float("inf") and trainer.step < estimate.TIMED_STEPS + 1


def test_an_estimate_that_fails_is_said_and_the_sweep_goes_on(tmp_path, monkeypatch) -> None:
    def broken(spec, splits):
        raise MemoryError("out of memory (simulated)")

    monkeypatch.setattr(estimate, "step_seconds", broken)
    said = []
    outcome = sweep.run_sweep(GRID, tmp_path / "s", progress=False, notice=said.append)
    why = "a timed step raised MemoryError: out of memory (simulated)"
    assert said[1] == f"estimated time: not available ({why})"
    assert outcome.status == "completed" and len(outcome.runs) == 12
