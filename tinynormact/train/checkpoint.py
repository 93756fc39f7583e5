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
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinynormact.engine import backend
from tinynormact.infra.files import RunNotice, jsonable, remove_stale_temporaries, save_npz_atomic
from tinynormact.infra.validation import check_integer
from tinynormact.nn import Module, optim
from tinynormact.train.config import ConfigError, TrainConfig, resume_conflicts
from tinynormact.train.health import all_finite, first_nonfinite_parameter
from tinynormact.train.result import HISTORY_KEYS

__all__ = [
    "PROGRESS_KEYS",
    "CheckpointError",
    "load_checkpoint",
    "previous_path",
    "read_for_resume",
    "remove_stale_files",
    "resume_from",
    "save_checkpoint",
]


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


# ----- reading a checkpoint to resume a run: every field checked ---------------------------------


def resume_from(
    path: Path, read: Callable[[Path], tuple[dict[str, Any], dict[str, Any] | None]]
) -> tuple[Path, dict[str, Any], dict[str, Any] | None]:
    """(the file used, progress, tracker record): ``read(path)``, or, with a RunNotice, ``read`` of
    the previous generation when ``path`` cannot be loaded (the damaged file is kept aside as
    ``<name>.damaged``). CheckpointError, saying how to start over, when neither can be loaded."""
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            problems.append(f"{candidate} does not exist")
            continue
        try:
            progress, record = read(candidate)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            warnings.warn(
                f"{problems[0]}; continuing from the previous checkpoint {candidate} "
                f"(epoch {progress['epoch']}, step {progress['step']})",
                RunNotice,
                stacklevel=3,
            )
            damaged = path.with_name(path.name + ".damaged")
            if path.exists():  # keep it for inspection, out of the way of the next save
                path.replace(damaged)
        return candidate, progress, record
    raise CheckpointError(
        f"cannot resume from {path.parent}: {'; '.join(problems)}. To start over, delete the "
        "folder or choose another one, and run without --resume"
    )


def read_for_resume(
    path: Path,
    model: Module,
    optimizer: optim.Optimizer,
    schedule: optim.LRSchedule | None,
    config: TrainConfig,
    n_batches: int,
    fresh_hyperparameters: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Load ``path`` into the model, optimizer and schedule of a run of ``config`` and return
    (progress, tracker record), once every field is checked: the saved configuration may differ
    from ``config`` only in RESUMABLE_FIELDS, the progress fields agree with each other, the
    optimizer's hyperparameters are those the configuration gives and its state is finite."""

    def check(progress: dict[str, Any]) -> None:
        missing = [key for key in PROGRESS_KEYS if key not in progress]
        if missing:
            raise CheckpointError(f"checkpoint {path}: its progress lacks {', '.join(missing)}")
        try:
            saved = TrainConfig.from_dict(progress["config"], source=f"checkpoint {path}")
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {exc}") from exc
        conflicts = resume_conflicts(saved, config)
        if conflicts:
            raise ConfigError(
                f"the run in {path.parent} has a different configuration ({'; '.join(conflicts)}); "
                "only epochs, checkpoint_every and target_loss may change on resume"
            )
        _check_progress(path, progress, saved, n_batches)
        if progress["epoch"] > config.epochs:
            raise ConfigError(
                f"the run in {path.parent} has completed {progress['epoch']} epochs; "
                f"epochs={config.epochs} cannot shorten it"
            )

    progress, record = load_checkpoint(path, model, optimizer, check)
    expected = dict(fresh_hyperparameters)
    if schedule is not None:
        schedule.last_step = progress["schedule_step"]
        expected["lr"] = schedule.get_lr()
    _check_hyperparameters(path, optimizer, expected)
    _check_optimizer_state(path, optimizer, progress["step"])
    name = first_nonfinite_parameter(model)
    if name is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: parameter {name!r} is not finite")
    return progress, record


PROGRESS_KEYS = ("config", "epoch", "batch", "step", "history", "step_losses", "schedule_step")


def _check_progress(path: Path, progress: dict[str, Any], config: TrainConfig, n_batches: int) -> None:
    """Check every progress field of a checkpoint with the integer rule (``check_integer``) and
    against each other (step = epoch * batches per epoch + batch); CheckpointError naming it."""
    try:
        epoch = check_integer("epoch", progress["epoch"], 0, config.epochs)
        batch = check_integer("batch", progress["batch"], 0, n_batches - 1 if epoch < config.epochs else 0)
        step = check_integer("step", progress["step"], 0)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: {exc}") from exc
    if step != epoch * n_batches + batch:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: step {step} does not match epoch {epoch} and batch {batch} "
            f"({n_batches} batches per epoch give step {epoch * n_batches + batch})"
        )
    history, losses = progress["history"], progress["step_losses"]
    if not isinstance(history, dict) or sorted(history) != sorted(HISTORY_KEYS):
        raise CheckpointError(f"checkpoint {path} is corrupt: history must hold {', '.join(HISTORY_KEYS)}")
    for key, values in [*history.items(), ("step_losses", losses)]:
        length = step if key == "step_losses" else epoch + 1
        if not (isinstance(values, list) and len(values) == length and all(map(_is_number_or_null, values))):
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {key} must be a list of {length} numbers, got {values!r:.80}"
            )
    if history["epoch"] != list(range(epoch + 1)):
        raise CheckpointError(f"checkpoint {path} is corrupt: history epochs {history['epoch']!r:.80}")
    expected_schedule = None if config.schedule == "constant" else step
    if progress["schedule_step"] != expected_schedule:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: schedule_step is {progress['schedule_step']!r}, "
            f"expected {expected_schedule!r}"
        )


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_hyperparameters(path: Path, optimizer: Any, expected: dict[str, Any]) -> None:
    """The optimizer hyperparameters read from a checkpoint must be those its configuration
    gives (the learning rate: the schedule's at the saved step)."""
    loaded = jsonable(optimizer.state_dict()["hyperparameters"])
    for name, value in expected.items():
        if loaded.get(name) != value:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: optimizer {name} is {loaded.get(name)!r} but the "
                f"configuration gives {value!r}"
            )


def _check_optimizer_state(path: Path, optimizer: Any, step: int) -> None:
    """Per-parameter optimizer state from a checkpoint: step counts in [0, step], finite arrays."""
    for i, state in enumerate(optimizer.state):
        for key, value in state.items():
            if hasattr(value, "shape"):
                if not all_finite(value):
                    raise CheckpointError(
                        f"checkpoint {path} is corrupt: optimizer state {key!r} of "
                        f"parameter {i} is not finite"
                    )
                continue
            try:
                check_integer(f"optimizer state {key!r} of parameter {i}", value, 0, step)
            except ValueError as exc:
                raise CheckpointError(f"checkpoint {path} is corrupt: {exc}") from exc
