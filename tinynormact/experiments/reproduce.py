"""``reproduce``: run a preset's grid, analyse it and write the run folder.

The folder holds results.json (everything, including every run's history), results.csv (one
line per run), figures/*.png and report.md. It is assembled in a temporary folder next to the
target and renamed into place at the end, so a reader never sees half a report; an existing
folder is replaced only with ``force=True``. Ctrl-C stops the runs, writes the report of the
runs that finished (status "interrupted") and re-raises KeyboardInterrupt. The folder is locked
for the whole reproduction (``folder_lock``), and the place it is written to is created and
test-written before the first run, so a wrong ``out`` fails at once, not after all the training.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

import tinynormact
from tinynormact.data import load_dataset
from tinynormact.experiments.analysis import (
    aggregate,
    convergence_vs_property,
    paired_differences,
    theory_table,
)
from tinynormact.experiments.figures import write_figures
from tinynormact.experiments.presets import Preset
from tinynormact.experiments.propagation import signal_propagation
from tinynormact.experiments.report import markdown_report, runs_csv
from tinynormact.experiments.runner import run_all
from tinynormact.files import check_writable, write_json_atomic, write_text_atomic
from tinynormact.folder_lock import folder_lock
from tinynormact.train import using_device

__all__ = ["analyse", "load_results", "reproduce", "software_versions", "write_run_folder"]


def software_versions(device: str) -> dict[str, str]:
    """Versions of Python, the libraries used, and the machine."""
    versions = {"python": platform.python_version(), "tinynormact": tinynormact.__version__}
    for package in ("numpy", "scipy", "matplotlib", "mnist1d") + (("cupy",) if device == "cuda" else ()):
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
    results["correlation"] = convergence_vs_property(results["aggregates"], results["theory"])


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not (force and out.is_dir()):
        hint = "; pass --force to replace it" if out.is_dir() else " and is not a folder"
        raise FileExistsError(f"output folder {out} already exists{hint}")


def write_run_folder(results: dict[str, Any], out: Path, force: bool = False) -> None:
    """Write results.json, results.csv, figures/ and report.md into ``out``, atomically."""
    out = Path(out)
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    umask = os.umask(0)  # mkdtemp makes the folder private; give it the usual permissions
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        write_json_atomic(staging / "results.json", results)
        write_text_atomic(staging / "results.csv", runs_csv(results))
        figures = write_figures(results, staging / "figures")
        write_text_atomic(staging / "report.md", markdown_report(results, figures))
        _check_target(out, force)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_results(folder: str | Path) -> dict[str, Any]:
    """The results.json of a run folder, with JSON's nulls turned back into NaN (results.json
    stores NaN as null), ready for the figures. Raises ValueError when it is missing or broken."""
    path = Path(folder) / "results.json"
    try:
        return _nan_for_null(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; give a folder written by tinynormact reproduce") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def _nan_for_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _nan_for_null(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return math.nan if value is None else value


def reproduce(
    preset: Preset,
    out: str | Path,
    device: str = "cpu",
    jobs: int = 1,
    force: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run ``preset`` on ``device`` with ``jobs`` processes and write the run folder ``out``.

    Returns the results dict (the content of results.json). ``progress``: a progress bar over
    the runs (None: only on a terminal).
    """
    out = Path(out)
    if str(out) in ("", "."):
        raise ValueError(f"the output folder must be a new folder's name, got {str(out)!r}")
    _check_target(out, force)  # fail before spending minutes, and again when writing
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    check_writable(out.parent)  # where the folder is assembled
    with folder_lock(out):
        return _reproduce(preset, out, device, jobs, force, progress)


def _reproduce(
    preset: Preset, out: Path, device: str, jobs: int, force: bool, progress: bool | None
) -> dict[str, Any]:
    start = time.perf_counter()
    with using_device(device):
        splits = load_dataset(preset.dataset, **preset.dataset_options)  # also fills the data cache
        propagation = signal_propagation(
            preset.activations,
            preset.forms,
            preset.propagation_depth,
            preset.propagation_width,
            preset.propagation_batch,
            preset.rule,
            preset.center,
        )
    specs = preset.runs(device)
    results: dict[str, Any] = {
        "status": "completed",
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "preset": preset.to_dict(),
        "settings": {
            "device": device,
            "jobs": jobs,
            "seeds": list(range(preset.seeds)),
            "runs": len(specs),
            "train_examples": len(splits.train),
            "test_examples": len(splits.test),
            "features": int(splits.train.x.shape[1]),
            "classes": splits.train.n_classes,
        },
        "versions": software_versions(device),
        "theory": theory_table(preset.activations, preset.rule, preset.center),
        "propagation": propagation,
        "runs": [],
    }
    order = {spec.key: i for i, spec in enumerate(specs)}
    try:
        for record in tqdm(run_all(specs, jobs), total=len(specs), unit="run", disable=_disabled(progress)):
            results["runs"].append(record)
    except KeyboardInterrupt:
        results["status"] = "interrupted"
    results["runs"].sort(key=lambda r: order[(r["architecture"], r["activation"], r["form"], r["seed"])])
    analyse(results)
    results["wall_time_s"] = time.perf_counter() - start
    write_run_folder(results, out, force)
    if results["status"] == "interrupted":
        raise KeyboardInterrupt(f"the {len(results['runs'])} runs that finished are reported in {out}")
    return results


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None shows the bar only on a terminal."""
    return None if progress is None else not progress
