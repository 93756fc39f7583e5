"""Checkpoints: one ``.npz`` file holding everything needed to continue a run bit for bit.

Layout (no pickles; ``numpy.load(path)`` reads it):

- ``model/<name>``: every parameter and buffer of the model (``state_dict``);
- ``optimizer/<i>/<key>``: the array state of the optimizer's parameter ``i`` (momentum buffers,
  Adam moments);
- ``tracker/<key>``: the variance tracker's record so far, when tracking;
- ``meta``: a JSON string with the progress (epoch, batch within the epoch, step, history,
  per-step losses), the optimizer's hyperparameters and scalar state, and the run's config.

The file is written to a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from tinynormact import backend, optim
from tinynormact.files import jsonable, save_npz_atomic
from tinynormact.nn import Module

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the run."""


def save_checkpoint(
    path: Path,
    model: Module,
    optimizer: optim.Optimizer,
    progress: dict[str, Any],
    tracker: dict[str, Any] | None = None,
) -> None:
    """Write the model, the optimizer, the tracker record and ``progress`` (JSON-ready) to ``path``."""
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
    save_npz_atomic(path, **arrays)


def load_checkpoint(
    path: Path, model: Module, optimizer: optim.Optimizer
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Restore the model and optimizer from ``path``; return (progress, tracker record or None)."""
    try:
        with backend.np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc})") from exc
    groups: dict[str, dict[str, Any]] = {"model": {}, "optimizer": {}, "tracker": {}}
    for key, value in arrays.items():
        group, _, rest = key.partition("/")
        groups[group][rest] = value
    model.load_state_dict(groups["model"])
    states = [dict(scalars) for scalars in meta["optimizer"]["scalars"]]
    for key, value in groups["optimizer"].items():
        index, _, name = key.partition("/")
        states[int(index)][name] = value
    optimizer.load_state_dict({"hyperparameters": meta["optimizer"]["hyperparameters"], "state": states})
    return meta["progress"], (groups["tracker"] or None)
