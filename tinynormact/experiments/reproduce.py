"""``reproduce``: run a grid into its sweep folder (``sweep``), analyse every run, write the report.

Each run is written into the sweep folder the moment it finishes, so a sweep that stops
(Ctrl-C, a crash, a lost machine) keeps every finished run: running the same command on the
same folder runs only the others, then reports all of them. The report (results.json with every
run's history, results.csv with one line per run, figures/*.png, report.md) is rewritten from
the folder's runs at the end, each file atomically, report.md last. After Ctrl-C the report of
the runs that finished is written (status "interrupted"; none when no run had finished) and
KeyboardInterrupt re-raised. The
folder is locked for the whole reproduction (``folder_lock``), and the place it goes is
test-written before the first run, so a wrong ``out`` fails at once, not after all the training.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

import tinynormact
from tinynormact.experiments.analysis import (
    aggregate,
    convergence_vs_property,
    paired_differences,
    theory_table,
)
from tinynormact.experiments.grid import Grid
from tinynormact.experiments.propagation import signal_propagation
from tinynormact.experiments.report import markdown_report, runs_csv
from tinynormact.experiments.sweep import run_sweep
from tinynormact.experiments.sweep_folder import FIGURES_FOLDER, read_json
from tinynormact.infra.files import check_writable, write_json_atomic, write_text_atomic
from tinynormact.infra.folder_lock import folder_lock
from tinynormact.train import load_data, using_device

__all__ = ["analyse", "load_results", "reproduce", "software_versions", "write_report"]


def software_versions(device: str) -> dict[str, str]:
    """Versions of Python, the libraries used, and the machine."""
    versions = {"python": platform.python_version(), "tinynormact": tinynormact.__version__}
    packages = ("numpy", "scipy", "matplotlib", "mnist1d", "distributed")
    for package in packages + (("cupy",) if device == "cuda" else ()):
        try:
            versions[package] = importlib.metadata.version(package if package != "cupy" else "cupy-cuda12x")
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["machine"] = f"{platform.platform()}, {os.cpu_count()} CPUs"
    return versions


def analyse(results: dict[str, Any]) -> None:
    """Fill in the aggregates, paired differences and correlations from ``results["runs"]``."""
    results["aggregates"] = aggregate(results["runs"])
    results["paired"] = paired_differences(results["runs"])
    forms = results["preset"]["forms"]
    if "static" in forms and len(set(forms) - {"vanilla", "static"}) > 1:  # several adaptive readings
        results["paired_static"] = paired_differences(results["runs"], baseline="static")
    results["correlation"] = convergence_vs_property(results["aggregates"], results["theory"])


def write_report(results: dict[str, Any], out: Path) -> None:
    """Write results.json, results.csv, figures/ and report.md into the folder ``out``, each file
    atomically and report.md last. Matplotlib loads here, when the figures are drawn."""
    from tinynormact.experiments.figures import write_figures

    out = Path(out)
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.csv", runs_csv(results))
    figures = write_figures(results, out / FIGURES_FOLDER)
    write_text_atomic(out / "report.md", markdown_report(results, figures))


def load_results(folder: str | Path) -> dict[str, Any]:
    """The results.json of a sweep folder, with JSON's nulls turned back into NaN, ready for the
    figures. Raises ValueError when it is missing or broken."""
    path = Path(folder) / "results.json"
    if not path.exists():
        raise ValueError(f"{path} does not exist; give a folder written by tinynormact reproduce or sweep")
    return read_json(path)


def reproduce(
    grid: Grid,
    out: str | Path,
    device: str = "cpu",
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``sweep.run_sweep`` (same arguments; ``options``: its ``notice``), then the analysis and
    the report of every run in the folder ``out``. Returns the results dict (the content of
    results.json); re-raises KeyboardInterrupt after reporting an interrupted sweep."""
    out = Path(out)
    if str(out) in ("", "."):
        raise ValueError(f"the output folder must be a new folder's name, got {str(out)!r}")
    check_writable(out.parent)  # fail before spending minutes, not when writing the report
    with folder_lock(out):
        return _reproduce(grid, out, device, jobs, scheduler, force, resume, progress, **options)


def _reproduce(
    grid: Grid,
    out: Path,
    device: str,
    jobs: int,
    scheduler: str | None,
    force: bool,
    resume: bool,
    progress: bool | None,
    **options: Any,
) -> dict[str, Any]:
    start = time.perf_counter()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    outcome = run_sweep(grid, out, device, jobs, scheduler, force, resume, progress, **options)
    if outcome.status == "interrupted" and not outcome.runs:
        raise KeyboardInterrupt  # stopped before any run finished: there is nothing to report
    with using_device(device):
        splits = load_data(grid.runs(device)[0].config)  # image datasets as images
        propagation = signal_propagation(
            grid.activations,
            {form: grid.form_options(form) for form in grid.forms},
            grid.propagation_depth,
            grid.propagation_width,
            grid.propagation_batch,
        )
    runs = outcome.runs
    preset = grid.to_dict()
    preset["architectures"] = grid.settings()  # the report's groups (RunSpec.setting)
    results: dict[str, Any] = {
        "status": outcome.status,
        "started": started,
        "preset": preset,
        "settings": {
            "device": device,
            "executor": outcome.executor,
            "seeds": list(grid.seeds),
            "runs": len(grid.runs(device)),
            "runs_this_session": outcome.ran,
            "failed": sum(r["status"] == "failed" for r in runs),
            "train_examples": len(splits.train),
            "test_examples": len(splits.test),
            "example_shape": list(splits.train.example_shape),
            "classes": splits.train.n_classes,
        },
        "versions": software_versions(device),
        "theory": theory_table(grid.activations, grid.rule, grid.centring(), grid.forms),
        "propagation": propagation,
        "runs": runs,
    }
    analyse(results)
    results["settings"]["run_seconds_total"] = sum(r["seconds"] for r in runs if r["status"] != "failed")
    results["wall_time_s"] = time.perf_counter() - start
    write_report(results, out)
    if outcome.status == "interrupted":
        raise KeyboardInterrupt
    return results
