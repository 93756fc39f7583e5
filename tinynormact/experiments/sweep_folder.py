"""A sweep folder: the grid it belongs to, one file per finished run, resumable.

Layout::

    OUT/grid.json                  what the runs' numbers depend on: the grid, the device and the
                                   BLAS threads of each run
    OUT/runs/<coordinates>_<hash>.json   one record per finished run, written atomically as it
                                   finishes (RunSpec.file_name: coordinates + config hash)
    OUT/results.json, results.csv, figures/, report.md   the report, rewritten from all runs

``open_sweep_folder`` checks the folder: new, or made by the same grid, whose finished records
it returns (a run recorded as "failed" is run again, and so is a run file that is not the record
of its run: damaged, copied over another's name, or edited; a notice names it). A folder of
another grid or device is refused with the keys that differ (``force`` starts it again), and a
folder that is not a sweep's is refused even with ``force``, naming what it holds. ``force``
removes only what a sweep writes (``REPORT_FILES``, the figures, the run files), grid.json last;
anything else stays. ``reproduce`` holds the folder's lock (``folder_lock``) while it runs, so a
second sweep into the same folder is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinynormact.experiments.grid import RunSpec
from tinynormact.experiments.runner import NUMBERS, coordinates
from tinynormact.infra.files import jsonable, write_json_atomic
from tinynormact.train.run import SWEEP_FILE

__all__ = [
    "FIGURES_FOLDER",
    "GRID_FILE",
    "REPORT_FILES",
    "RUNS_FOLDER",
    "SweepFolder",
    "differences",
    "open_sweep_folder",
    "read_json",
]

GRID_FILE = SWEEP_FILE  # train refuses a folder holding it
RUNS_FOLDER = "runs"
FIGURES_FOLDER = "figures"
REPORT_FILES = ("report.md", "results.json", "results.csv")  # report.md is written last
_IGNORED_KEYS = ("grid.description",)  # wording, not numbers


class SweepFolder:
    """A checked sweep folder: ``create`` makes it (or replaces it, with ``force``) and writes
    grid.json; ``write_run`` stores one finished run at once, atomically."""

    def __init__(self, path: Path, identity: dict[str, Any], replace: bool) -> None:
        self.path, self.identity, self.replace = path, identity, replace

    def create(self) -> None:
        if self.replace and self.path.exists():
            _remove_sweep_files(self.path)
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


def _stored(value: Any) -> Any:
    """``value`` as its JSON file holds it (tuples as lists; NaN and None alike as null), so that
    a grid compares equal to the one it wrote (read_json reads null as NaN, and NaN != NaN)."""
    return json.loads(json.dumps(jsonable(value)))


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
    out: Path,
    identity: dict[str, Any],
    specs: list[RunSpec],
    force: bool = False,
    resume: bool = False,
    notice: Callable[[str], None] = print,
) -> tuple[SweepFolder, dict[str, dict[str, Any]]]:
    """Check the sweep folder ``out`` for the runs ``specs`` of the grid described by ``identity``
    and return it (not yet created: ``SweepFolder.create``) with the finished records by run
    file name. ``resume``: the folder must hold a sweep already; ``force``: start again;
    ``notice`` names each run file that is not the record of its run (it runs again)."""
    out = Path(out)
    identity = json.loads(json.dumps(identity))  # the form it takes in grid.json
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if resume and (force or not (out / GRID_FILE).exists()):
        why = "--force starts again" if force else f"{out} holds no sweep ({GRID_FILE} is missing)"
        raise FileNotFoundError(f"nothing to resume: {why}")
    if not out.exists() or not any(out.iterdir()):
        return SweepFolder(out, identity, replace=False), {}
    if not (out / GRID_FILE).exists():
        raise FileExistsError(
            f"{out} is not a sweep folder ({GRID_FILE} is missing; it holds {_listing(out)}); "
            "choose another --out (--force removes a sweep's own files, never a folder it did not create)"
        )
    if force:
        return SweepFolder(out, identity, replace=True), {}
    found = differences(_stored(read_json(out / GRID_FILE)), _stored(identity))
    if found:
        raise FileExistsError(
            f"{out} holds a sweep of another grid or setting ({'; '.join(found[:6])}"
            f"{'; ...' if len(found) > 6 else ''}); choose another --out, or pass --force to replace it"
        )
    return SweepFolder(out, identity, replace=False), _finished_runs(out, specs, notice)


def _finished_runs(
    out: Path, specs: list[RunSpec], notice: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """The records in ``out/runs`` of runs in ``specs``; failed runs and files that are not the
    record of their run (``notice`` says why) are left out: they run again."""
    records = {}
    for spec in specs:
        path = out / RUNS_FOLDER / spec.file_name
        if not path.exists():
            continue
        try:
            record = read_json(path)
        except ValueError as exc:
            notice(f"{exc}; the run is run again")
            continue
        problem = _not_the_record_of(spec, record)
        if problem is not None:
            notice(f"{path} is not the record of its run ({problem}); the run is run again")
        elif record["status"] != "failed":
            records[spec.file_name] = record
    return records


def _not_the_record_of(spec: RunSpec, record: Any) -> str | None:
    """Why ``record`` (read back by ``read_json``) is not a record of ``spec``'s run, or None."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not a run record"
    expected = _nan_for_null(jsonable(coordinates(spec)))  # the form read_json gives it
    missing = [key for key in (*expected, "status", "history", *NUMBERS) if key not in record]
    if missing:
        return f"it has no {', '.join(map(repr, missing))}"
    if record["config_hash"] != expected["config_hash"]:
        return f"its config hash {str(record['config_hash'])[:12]!r} is that of another run"
    wrong = [key for key, value in expected.items() if record[key] != value]
    if wrong:
        return f"its {', '.join(wrong)} differ from the grid's run of that name"
    if record["status"] not in ("completed", "diverged", "failed"):
        return f"its status {record['status']!r} is not completed, diverged or failed"
    wrong = [key for key in NUMBERS if not _is_number(record[key])]
    history = record["history"]
    losses = history.get("train_loss") if isinstance(history, dict) else None
    trained = isinstance(losses, list) and losses and all(map(_is_number, losses))
    if record["status"] != "failed" and not trained:
        wrong.append("history's train losses")
    return f"its {', '.join(wrong)} are not numbers" if wrong else None


def _is_number(value: Any) -> bool:
    """An int or float, NaN included (a record stores what a run did not reach as NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _listing(folder: Path, shown: int = 5) -> str:
    """'a.txt, sub/ and 3 more': what a folder holds, for a message."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _remove_sweep_files(out: Path) -> None:
    """Delete what a sweep wrote into ``out``: the report, the figures, the run files and their
    temporaries, grid.json last (an interruption leaves a sweep folder that ``force`` can finish
    clearing). Files a sweep does not write stay, and so do the folders holding them."""
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    for folder, pattern in ((FIGURES_FOLDER, "*.png"), (RUNS_FOLDER, "*.json")):
        path = out / folder
        if path.is_dir():
            for file in [*path.glob(pattern), *path.glob(".*.tmp")]:
                file.unlink(missing_ok=True)
            if not any(path.iterdir()):
                path.rmdir()
    (out / GRID_FILE).unlink(missing_ok=True)
