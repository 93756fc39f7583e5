"""A run and its folder: ``train(config, out_dir)`` runs one configuration and returns its
``TrainResult``.

With an output folder (docs/guide/runs.md): the folder is locked for the whole run
(``folder_lock``: a second writer is refused at once); ``config.json``, ``checkpoint.npz``
(every ``checkpoint_every`` epochs, at the end and on Ctrl-C, the state after the last completed
step; the generation before it is kept as ``checkpoint.previous.npz``) and ``result.json`` are
written atomically. When tracking, the tracker's record is written once, streamed to
``tracking/`` (``records.TrackRecord``: rows.npy and meta.json) as the run goes, up to date
before every checkpoint and at the end; a resumed run continues it from the checkpoint's step,
so the checkpoint does not carry it (``records.read_record`` reads it; ``write_json`` or
``write_csv`` export it).
``resume=True`` continues from the checkpoint (from the previous one, with a notice, when the
latest cannot be loaded) and gives the same result as an uninterrupted run. The config given for
a resume must equal the saved one except in ``RESUMABLE_FIELDS`` (more epochs extend a finished
run). Ctrl-C finishes the current step, saves, and raises ``TrainingInterrupted`` (a
KeyboardInterrupt) telling whether there is a checkpoint to resume from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from tinynormact.data import DataSplits, load_dataset, load_images
from tinynormact.infra.allocator import keep_freed_memory
from tinynormact.infra.files import RunNotice, check_writable, write_json_atomic
from tinynormact.infra.folder_lock import folder_lock
from tinynormact.train.checkpoint import CheckpointError, previous_path, remove_stale_files
from tinynormact.train.config import IMAGE_ARCHITECTURES, ConfigError, TrainConfig
from tinynormact.train.context import deferred_interrupt, using_device
from tinynormact.train.health import TrainingDiverged
from tinynormact.train.loop import Trainer, fit
from tinynormact.train.result import StepInfo, TrainingInterrupted, TrainResult

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "RESULT_FILE",
    "SWEEP_FILE",
    "TRACKING_FOLDER",
    "load_data",
    "saved_config",
    "train",
]

CHECKPOINT_FILE = "checkpoint.npz"
TRACKING_FOLDER = "tracking"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
SWEEP_FILE = "grid.json"  # what marks a sweep folder (experiments.sweep_folder writes it): no run goes there


def load_data(config: TrainConfig) -> DataSplits:
    """The data of ``config``: uint8 images for the image ResNets (``load_images``), flattened
    and standardized examples for the other architectures (``load_dataset``)."""
    if config.architecture in IMAGE_ARCHITECTURES:
        return load_images(config.dataset, **config.dataset_options)
    return load_dataset(config.dataset, **config.dataset_options)


def _check_folder(out: Path, resume: bool) -> None:
    """A new run needs a folder without a checkpoint of either generation; a resumed one needs one."""
    if (out / SWEEP_FILE).exists():
        raise FileExistsError(
            f"{out} is a sweep folder (it holds {SWEEP_FILE}); a run of train needs a folder of its own"
        )
    checkpoint = out / CHECKPOINT_FILE
    held = [path.name for path in (checkpoint, previous_path(checkpoint)) if path.exists()]
    if resume and not held:
        raise CheckpointError(f"cannot resume: {checkpoint} does not exist")
    if not resume and held:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(held)}); resume it, or choose another folder"
        )


def saved_config(out_dir: str | Path) -> TrainConfig:
    """The configuration of the run saved in ``out_dir`` (its config.json), to resume it."""
    path = Path(out_dir) / CONFIG_FILE
    try:
        return TrainConfig.from_file(path)
    except ConfigError as exc:
        raise ConfigError(f"cannot resume the run in {out_dir}: {exc}") from exc


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    splits: DataSplits | None = None,
    announce: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the network of ``config`` and return its record.

    ``out_dir``: folder for config.json, checkpoint.npz, result.json and, when tracking, the
    tracker's record (tracking/); nothing is written without it; locked for the
    run. ``resume``: continue from the checkpoint in ``out_dir``
    (``config`` must equal the saved one but for RESUMABLE_FIELDS; ``saved_config`` reads it).
    ``progress``: show a progress bar (None: only on a terminal). ``callback(StepInfo)`` runs
    after every step; it may raise KeyboardInterrupt to stop the run as Ctrl-C would.
    ``splits``: data to use instead of loading ``config.dataset`` (it must be the same for a
    resumed run). ``announce(text)`` receives ``Trainer.describe()`` once the model is built.

    Raises TrainingDiverged (with ``.result`` set) on NaN/Inf, TrainingInterrupted (after
    saving) on Ctrl-C, FolderLocked when another process writes ``out_dir``. The process keeps
    the memory the steps free, for the next steps (``infra.allocator.keep_freed_memory``).
    """
    if out_dir is None:
        return _train(config, None, resume, progress, callback, splits, announce)
    if str(out_dir) == "":
        raise ValueError("the output folder is an empty path; give a folder name (or . for this one)")
    out = Path(out_dir)
    check_writable(out.parent)  # the folder itself only under its lock: a refused writer leaves it as it is
    with folder_lock(out):
        _check_folder(out, resume)  # before anything is written into it
        check_writable(out)
        remove_stale_files(out / CHECKPOINT_FILE)
        return _train(config, out, resume, progress, callback, splits, announce)


def _train(
    config: TrainConfig,
    out: Path | None,
    resume: bool,
    progress: bool | None,
    callback: Callable[[StepInfo], None] | None,
    splits: DataSplits | None,
    announce: Callable[[str], None] | None,
) -> TrainResult:
    keep_freed_memory()  # each step reuses the pages the last one freed (infra.allocator)
    with using_device(config.device, config.dtype):
        try:
            trainer = _prepare(config, out, resume, splits, announce)
        except KeyboardInterrupt:  # before the first step: nothing to save
            raise _interrupted(out, 0) from None
        return _run(trainer, out, progress, callback)


def _prepare(
    config: TrainConfig,
    out: Path | None,
    resume: bool,
    splits: DataSplits | None,
    announce: Callable[[str], None] | None,
) -> Trainer:
    """The trainer of ``config``, restored from the folder's checkpoint with ``resume``, and the
    folder's config.json written."""
    if splits is not None:
        splits.check_finite()
    trainer = Trainer(config, splits if splits is not None else load_data(config))
    if announce is not None:
        announce(trainer.describe())
    if resume:
        trainer.restore(out / CHECKPOINT_FILE)
    if out is not None and trainer.previous_record is None:  # else a checkpoint from before streaming
        trainer.stream_tracking(out / TRACKING_FOLDER, resume)
    if out is not None:
        write_json_atomic(out / CONFIG_FILE, config.to_dict())
    return trainer


def _run(
    trainer: Trainer, out: Path | None, progress: bool | None, callback: Callable[[StepInfo], None] | None
) -> TrainResult:
    """Fit and finish; a divergence or a Ctrl-C writes the result so far (and, between steps,
    the checkpoint) before it propagates."""
    try:
        fit(trainer, out / CHECKPOINT_FILE if out is not None else None, progress, callback)
        return _finish(trainer, out)
    except TrainingDiverged as exc:
        exc.result = trainer.result("diverged", str(exc))
        _write_result(out, exc.result)
        raise
    except KeyboardInterrupt:
        if out is not None and not trainer.busy:  # between steps: the state is consistent
            trainer.save_if_new(out / CHECKPOINT_FILE)
        _write_result(out, trainer.result("interrupted", f"interrupted after step {trainer.step}"))
        raise _interrupted(out, trainer.step) from None


def _interrupted(out: Path | None, step: int) -> TrainingInterrupted:
    """The exception for a Ctrl-C after ``step`` steps, naming the checkpoint left to resume from."""
    checkpoint = None if out is None else out / CHECKPOINT_FILE
    if checkpoint is not None and not (checkpoint.exists() or previous_path(checkpoint).exists()):
        checkpoint = None
    return TrainingInterrupted(f"training stopped after step {step}", checkpoint)


def _finish(trainer: Trainer, out: Path | None) -> TrainResult:
    """Check the last update, save the checkpoint and write the completed result. A Ctrl-C in
    this window interrupts nothing worth keeping apart: it is noted, the run completes and is
    saved, and a notice says so (the caller's exit code stays that of a completed run)."""
    with deferred_interrupt() as interrupted:
        trainer.check_parameters()  # the last update's weights, before calling them a result
        result = trainer.result("completed")
        if out is not None:
            trainer.save_if_new(out / CHECKPOINT_FILE)
        _write_result(out, result)
    if interrupted():
        where = "" if out is None else f"; it is saved in {out}"
        warnings.warn(f"Ctrl-C came as the run finished: the run completed{where}", RunNotice, stacklevel=2)
    return result


def _write_result(out: Path | None, result: TrainResult) -> None:
    """result.json (the tracker's record is already in tracking/, streamed)."""
    if out is not None:
        write_json_atomic(out / RESULT_FILE, result.to_dict())
