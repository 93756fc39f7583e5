"""A sweep folder: the grid it belongs to, one file per finished run, resumable.

Layout::

    OUT/grid.json                  what the runs' numbers depend on: the grid and the device
    OUT/runs/<coordinates>_<hash>.json   one record per finished run, written atomically as it
                                   finishes (RunSpec.file_name: coordinates + config hash)
    OUT/results.json, results.csv, figures/, report.md   the report, rewritten from all runs

``open_sweep_folder`` checks the folder: new, or made by the same grid, whose finished records
it returns (a run recorded as "failed" is run again). A folder of another grid or device is
refused with the keys that differ, a folder that is not a sweep's is refused too, and ``force``
replaces either. ``reproduce`` holds the folder's lock (``folder_lock``) while it runs, so a
second sweep into the same folder is refused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tinynormact.experiments.grid import RunSpec
from tinynormact.infra.files import write_json_atomic

__all__ = ["GRID_FILE", "RUNS_FOLDER", "SweepFolder", "differences", "open_sweep_folder", "read_json"]

GRID_FILE = "grid.json"
RUNS_FOLDER = "runs"
_IGNORED_KEYS = ("grid.description",)  # wording, not numbers


class SweepFolder:
    """A checked sweep folder: ``create`` makes it (or replaces it, with ``force``) and writes
    grid.json; ``write_run`` stores one finished run at once, atomically."""

    def __init__(self, path: Path, identity: dict[str, Any], replace: bool) -> None:
        self.path, self.identity, self.replace = path, identity, replace

    def create(self) -> None:
        if self.replace and self.path.exists():
            _remove_folder(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / GRID_FILE).exists():
            write_json_atomic(self.path / GRID_FILE, self.identity)

    def write_run(self, spec: RunSpec, record: dict[str, Any]) -> None:
        write_json_atomic(self.path / RUNS_FOLDER / spec.file_name, record)


def read_json(path: Path) -> Any:
    """A JSON file of the library, with its nulls turned back into NaN (the writers store NaN as
    null). Raises ValueError naming the file when it is missing or broken."""
    try:
        return _nan_for_null(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def _nan_for_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _nan_for_null(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(v) for v in value]
    return math.nan if value is None else value


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """'key: A there, B here' for every leaf where ``old`` and ``new`` differ (dotted keys)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in dict.fromkeys([*old, *new]):
            name = f"{prefix}{key}"
            if name in _IGNORED_KEYS:
                continue
            if key not in old or key not in new:
                where = "here only" if key not in old else "there only"
                found.append(f"{name} ({where})")
            else:
                found += differences(old[key], new[key], f"{name}.")
        return found
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} there, {new!r} here"]


def open_sweep_folder(
    out: Path, identity: dict[str, Any], specs: list[RunSpec], force: bool = False, resume: bool = False
) -> tuple[SweepFolder, dict[str, dict[str, Any]]]:
    """Check the sweep folder ``out`` for the runs ``specs`` of the grid described by ``identity``
    and return it (not yet created: ``SweepFolder.create``) with the finished records by run
    file name. ``resume``: the folder must hold a sweep already; ``force``: start again."""
    out = Path(out)
    identity = json.loads(json.dumps(identity))  # the form it takes in grid.json
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if resume and (force or not (out / GRID_FILE).exists()):
        why = "--force starts again" if force else f"{out} holds no sweep ({GRID_FILE} is missing)"
        raise FileNotFoundError(f"nothing to resume: {why}")
    if force or not out.exists() or not any(out.iterdir()):
        return SweepFolder(out, identity, replace=force), {}
    if not (out / GRID_FILE).exists():
        raise FileExistsError(
            f"{out} is not a sweep folder ({GRID_FILE} is missing); choose another --out, "
            "or pass --force to replace it"
        )
    found = differences(read_json(out / GRID_FILE), identity)
    if found:
        raise FileExistsError(
            f"{out} holds a sweep of another grid ({'; '.join(found[:6])}"
            f"{'; ...' if len(found) > 6 else ''}); choose another --out, or pass --force to replace it"
        )
    return SweepFolder(out, identity, replace=False), _finished_runs(out, specs)


def _finished_runs(out: Path, specs: list[RunSpec]) -> dict[str, dict[str, Any]]:
    """The records in ``out/runs`` of runs in ``specs`` (failed runs left out: they run again)."""
    records = {}
    for spec in specs:
        path = out / RUNS_FOLDER / spec.file_name
        if path.exists():
            record = read_json(path)
            if record.get("status") != "failed":
                records[spec.file_name] = record
    return records


def _remove_folder(out: Path) -> None:
    """Move ``out`` aside in one step, then delete it: an interruption never leaves half of it."""
    aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.replace(out, aside / out.name)
    shutil.rmtree(aside)
