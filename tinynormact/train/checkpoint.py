"""Checkpoints: one ``.npz`` file holding everything needed to continue a run bit for bit.

Layout (no pickles; ``numpy.load(path)`` reads it):

- ``model/<name>``: every parameter and buffer of the model (``state_dict``);
- ``optimizer/<i>/<key>``: the array state of the optimizer's parameter ``i`` (momentum buffers,
  Adam moments);
- ``tracker/<key>``: the variance tracker's record so far, when it is kept in memory (a run
  folder's record streams to its ``tracking/`` folder instead);
- ``meta``: a JSON string with the progress (epoch, batch within the epoch, step, history,
  per-step losses), the optimizer's hyperparameters and scalar state, and the run's config.

The file is written to a temporary name, synced and renamed, so a crash never leaves half a
checkpoint. Two generations are kept: before a new checkpoint replaces ``checkpoint.npz``, the
old one becomes ``checkpoint.previous.npz`` (``previous_path``), so a damaged latest file still
leaves one to continue from (the training loop falls back to it with a notice).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinynormact.engine import backend
from tinynormact.infra.files import jsonable, remove_stale_temporaries, save_npz_atomic
from tinynormact.nn import Module, optim

__all__ = ["CheckpointError", "load_checkpoint", "previous_path", "remove_stale_files", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the run."""


def save_checkpoint(
    path: Path,
    model: Module,
    optimizer: optim.Optimizer,
    progress: dict[str, Any],
    tracker: dict[str, Any] | None = None,
) -> None:
    """Write the model, the optimizer, the tracker record and ``progress`` (JSON-ready) to ``path``;
    an existing ``path`` becomes ``previous_path(path)`` first. The caller checks that the state
    is worth keeping (finite) before calling."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars = []
    for i, state in enumerate(opt["state"]):
        scalars.append({k: v for k, v in state.items() if not hasattr(v, "shape")})
        arrays.update({f"optimizer/{i}/{k}": v for k, v in state.items() if hasattr(v, "shape")})
    for key, value in (tracker or {}).items():
        arrays[f"tracker/{key}"] = backend.to_numpy(value)
    optimizer_meta = {"hyperparameters": opt["hyperparameters"], "scalars": scalars}
    meta = {"progress": progress, "optimizer": optimizer_meta}
    arrays["meta"] = backend.np.array(json.dumps(jsonable(meta)))
    if path.exists():
        os.replace(path, previous_path(path))
    save_npz_atomic(path, **arrays)


def previous_path(path: Path) -> Path:
    """Where the generation before ``path`` is kept: ``checkpoint.npz`` -> ``checkpoint.previous.npz``."""
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def remove_stale_files(path: Path) -> list[Path]:
    """Delete the temporary files of checkpoints (both generations) left by a killed process."""
    return remove_stale_temporaries(path) + remove_stale_temporaries(previous_path(path))


def _meta_section(path: Path, parent: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``parent[key]``, which must exist and be a ``kind``; CheckpointError naming it otherwise."""
    if key not in parent:
        raise CheckpointError(f"checkpoint {path} is corrupt: {where} has no {key!r} entry")
    value = parent[key]
    if not isinstance(value, kind):
        raise CheckpointError(
            f"checkpoint {path} is corrupt: {where}[{key!r}] must be a {kind.__name__}, "
            f"got {type(value).__name__}"
        )
    return value


def _read_meta(path: Path, raw: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(progress, optimizer hyperparameters, optimizer scalars per parameter) from ``meta``."""
    try:
        meta = json.loads(str(raw))
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: its meta is not JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: meta must be a JSON object, got {meta!r:.60}")
    progress = _meta_section(path, meta, "progress", dict, "meta")
    optimizer_meta = _meta_section(path, meta, "optimizer", dict, "meta")
    hyper = _meta_section(path, optimizer_meta, "hyperparameters", dict, "meta['optimizer']")
    scalars = _meta_section(path, optimizer_meta, "scalars", list, "meta['optimizer']")
    for i, entry in enumerate(scalars):
        if not isinstance(entry, dict):
            raise CheckpointError(
                f"checkpoint {path} is corrupt: meta['optimizer']['scalars'][{i}] must be an object, "
                f"got {entry!r:.60}"
            )
    return progress, hyper, [dict(entry) for entry in scalars]


def load_checkpoint(
    path: Path,
    model: Module,
    optimizer: optim.Optimizer,
    check_progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Restore the model and optimizer from ``path``; return (progress, tracker record or None).

    ``check_progress(progress)`` runs before anything is restored, so that a checkpoint of
    another configuration is named as such rather than by a shape mismatch.

    Raises CheckpointError, naming ``path`` and the offending key or index, when the file cannot
    be read, lacks an entry, holds an array outside model/, optimizer/<i>/ and tracker/, or
    does not fit ``model`` and ``optimizer``.
    """
    try:
        with backend.np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc})") from exc
    if "meta" not in arrays:
        raise CheckpointError(f"checkpoint {path} is corrupt: it has no 'meta' entry")
    progress, hyper, states = _read_meta(path, arrays.pop("meta"))
    if check_progress is not None:
        check_progress(progress)

    groups: dict[str, dict[str, Any]] = {"model": {}, "optimizer": {}, "tracker": {}}
    for key, value in arrays.items():
        group, _, rest = key.partition("/")
        if group not in groups or not rest:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: unknown entry {key!r}; entries are 'meta', "
                "'model/<name>', 'optimizer/<index>/<name>' and 'tracker/<name>'"
            )
        groups[group][rest] = value
    for key, value in groups["optimizer"].items():
        index, _, name = key.partition("/")
        if not (index.isascii() and index.isdigit() and int(index) < len(states)) or not name:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: entry 'optimizer/{key}' has a bad parameter index "
                f"{index!r}; valid indices are 0 to {len(states) - 1} (one per parameter in meta)"
            )
        states[int(index)][name] = value
    unknown = sorted(set(hyper) - set(optimizer.hyperparameter_names))
    if unknown:
        raise CheckpointError(
            f"checkpoint {path} does not fit the {type(optimizer).__name__} optimizer: unknown "
            f"hyperparameter {', '.join(map(repr, unknown))}; valid are "
            f"{', '.join(optimizer.hyperparameter_names)}"
        )
    try:
        model.load_state_dict(groups["model"])
        optimizer.load_state_dict({"hyperparameters": hyper, "state": states})
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the run ({exc})") from exc
    return progress, (groups["tracker"] or None)
