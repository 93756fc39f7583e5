"""The training loop: ``train(config)`` runs one configuration and returns a ``TrainResult``.

- Deterministic: the weights come from ``config.seed`` and the batch order (and, for the image
  ResNets, the random crops and flips) of epoch k from ``(config.seed, k)``, so the same config
  gives the same numbers, bit for bit, on a CPU.
- After every step the loss, the gradients and the updated parameters are checked; NaN or Inf
  raises ``TrainingDiverged`` naming the step and the first layer that went non-finite, so a
  checkpoint never holds non-finite weights.
- With an output folder (README, "Run folders"): the folder is locked for the whole run
  (``folder_lock``: a second writer is refused at once); ``config.json``, ``checkpoint.npz``
  (every ``checkpoint_every`` epochs, at the end and on Ctrl-C, the state after the last
  completed step; the generation before it is kept as ``checkpoint.previous.npz``),
  ``result.json`` and, when tracking, ``tracker.json`` (the variance record as JSON lists) are
  written atomically. The tracker's record also streams to ``tracking/``
  (``records.TrackRecord``: rows.npy and meta.json) as the run goes, written before every
  checkpoint and at the end; a resumed run continues it from the checkpoint's step, so the
  checkpoint does not carry it.
  ``resume=True`` continues from the checkpoint (from the previous one, with a notice, when the
  latest cannot be loaded) and gives the same result as an uninterrupted run. The config given
  for a resume must equal the saved one except in ``RESUMABLE_FIELDS`` (more epochs extend a
  finished run).
- Ctrl-C finishes the current step, saves, and raises ``TrainingInterrupted`` (a
  KeyboardInterrupt) telling whether there is a checkpoint to resume from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynormact.data import DataLoader, DataSplits, ImageTransform, load_dataset, load_images
from tinynormact.engine import autograd, backend
from tinynormact.infra.files import RunNotice, check_writable, jsonable, write_json_atomic
from tinynormact.infra.folder_lock import folder_lock
from tinynormact.infra.memory import require_memory
from tinynormact.nn import Module
from tinynormact.nn.losses import softmax_cross_entropy
from tinynormact.nn.optim import clip_grad_norm
from tinynormact.tracking.costs import step_memory_estimate
from tinynormact.train.build import build_model, build_optimizer, model_bytes
from tinynormact.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    previous_path,
    remove_stale_files,
    save_checkpoint,
)
from tinynormact.train.config import (
    IMAGE_ARCHITECTURES,
    ConfigError,
    TrainConfig,
    check_integer,
    resume_conflicts,
)
from tinynormact.train.health import (
    TrainingDiverged,
    all_finite,
    first_nonfinite_parameter,
    locate_nonfinite,
    loss_and_arrays_finite,
)

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "RESULT_FILE",
    "TRACKING_FOLDER",
    "StepInfo",
    "TrainResult",
    "Trainer",
    "TrainingInterrupted",
    "load_data",
    "saved_config",
    "train",
    "using_device",
]

CHECKPOINT_FILE = "checkpoint.npz"
TRACKING_FOLDER = "tracking"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
TRACKER_FILE = "tracker.json"
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")
_EVAL_BATCH = 1024
_IMAGE_EVAL_BATCH = 256  # a ResNet's feature maps of 1024 images would take gigabytes
# the CIFAR training augmentation (He et al. 2016, section 4.2): 4-pixel padding, random crop, flip
_CROP_PADDING = 4


def load_data(config: TrainConfig) -> DataSplits:
    """The data of ``config``: uint8 images for the image ResNets (``load_images``), flattened
    and standardized examples for the other architectures (``load_dataset``)."""
    if config.architecture in IMAGE_ARCHITECTURES:
        return load_images(config.dataset, **config.dataset_options)
    return load_dataset(config.dataset, **config.dataset_options)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a callback's KeyboardInterrupt) stopped ``train``. ``checkpoint`` is the
    checkpoint a resume would continue from (None when the run saved none)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class StepInfo:
    """What a step callback receives after each optimizer step (``step`` counts from 1)."""

    step: int
    epoch: int
    loss: float


@dataclass
class TrainResult:
    """The record of one run.

    ``history`` holds one entry per epoch, epoch 0 being the untrained network: train and test
    loss and accuracy (evaluation mode, whole splits) and the epoch's wall time in seconds.
    ``step_losses`` is the mini-batch loss of every step. ``epochs_to_target`` is the first
    epoch whose train loss is at most ``config.target_loss`` (None: not reached or no target).
    ``status`` is "completed", "diverged" or "interrupted"; ``message`` says why it stopped early.
    """

    config: TrainConfig
    status: str
    history: dict[str, list[float]]
    step_losses: list[float]
    epochs_to_target: int | None
    tracker: dict[str, Any] | None = None
    message: str = ""

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's entry of every history list."""
        return {key: values[-1] for key, values in self.history.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the tracker record is left out; it is saved separately)."""
        return {
            "config": self.config.to_dict(),
            "status": self.status,
            "message": self.message,
            "epochs_to_target": self.epochs_to_target,
            "history": self.history,
            "step_losses": self.step_losses,
        }


@dataclass
class Trainer:
    """The model, optimizer and data of one config, and the progress made so far.

    ``train`` drives it; it is public so that tutorials can step through a run by hand.
    """

    config: TrainConfig
    splits: DataSplits
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimizer steps completed
    history: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in HISTORY_KEYS})
    step_losses: list[float] = field(default_factory=list)
    busy: bool = False  # True while a step or an epoch's record is half done
    saved_step: int | None = None  # the step of the newest checkpoint on disk

    def __post_init__(self) -> None:
        cfg, train_set = self.config, self.splits.train
        augment = evaluate = None
        eval_batch = _EVAL_BATCH
        if cfg.architecture in IMAGE_ARCHITECTURES:  # statistics of the training set only
            evaluate = ImageTransform.fit(train_set)
            augment = dataclasses.replace(evaluate, padding=_CROP_PADDING, flip=True)
            eval_batch = _IMAGE_EVAL_BATCH
        self.loader = DataLoader(
            train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, dtype=cfg.dtype, transform=augment
        )
        self.eval_loaders = {
            name: DataLoader(data, eval_batch, shuffle=False, dtype=cfg.dtype, transform=evaluate)
            for name, data in (("train", train_set), ("test", self.splits.test))
        }
        self.model = self._build_model()
        self.optimizer, self.schedule = build_optimizer(cfg, self.model, cfg.epochs * len(self.loader))
        self.tracker = _make_tracker(self.model, cfg.track_every)
        self.previous_record: dict[str, Any] | None = None  # tracker record before a resume

    def describe(self) -> str:
        """Two lines naming the data and the model this trainer built."""
        cfg, train_set = self.config, self.splits.train
        n_params = sum(p.size for p in self.model.parameters())
        shape = "x".join(map(str, train_set.example_shape))
        blocks = "hidden layers" if cfg.architecture == "mlp" else "residual blocks"
        size = f", {cfg.depth} {blocks} of width {cfg.width}"
        size = "" if cfg.architecture in IMAGE_ARCHITECTURES else size  # the name fixes the size
        return (
            f"data: {cfg.dataset}, {len(train_set)} train and {len(self.splits.test)} test examples "
            f"of shape {shape}, {train_set.n_classes} classes\n"
            f"model: {cfg.architecture}{size}, activation "
            f"{cfg.activation}, {n_params} parameters ({cfg.dtype} on {cfg.device}); "
            f"{len(self.loader)} steps per epoch"
        )

    def _build_model(self) -> Module:
        """The network, once a training step is known to fit in the memory available: checked
        before building for the MLPs (a mistyped width would not fit at all), after building for
        the image ResNets, whose size their name fixes (``costs.step_memory_estimate``)."""
        cfg, train_set = self.config, self.splits.train
        shape, classes = train_set.example_shape, train_set.n_classes
        if cfg.architecture in IMAGE_ARCHITECTURES:
            model = build_model(cfg, shape, classes)
            slots = 1 if cfg.optimizer == "sgd" else 2  # momentum; Adam's two moments
            estimate = step_memory_estimate(model, shape, cfg.batch_size, slots)
            require_memory(estimate.total, f"a {cfg.architecture} training step at batch {cfg.batch_size}")
            return model
        what = f"the {cfg.architecture} of depth {cfg.depth} and width {cfg.width}"
        require_memory(model_bytes(cfg, math.prod(shape), classes), what)
        return build_model(cfg, shape, classes)

    # ----- evaluation -------------------------------------------------------------------------
    def evaluate(self, split: str) -> tuple[float, float]:
        """(mean loss, accuracy) on the whole ``split`` ("train" or "test"), in evaluation mode."""
        loader = self.eval_loaders[split]
        losses, hits = [], []  # per batch, kept on the device: one transfer for the split below
        self.model.eval()
        with autograd.no_grad():  # the tracker counts and records only forwards with a graph
            for x, y in loader:
                logits = self.model(x)
                losses.append(softmax_cross_entropy(logits, y, reduction="sum").data)
                hits.append((logits.data.argmax(axis=1) == y).sum())
        self.model.train()
        xp = backend.get_array_module(losses[0])
        sums = xp.stack([xp.stack(losses).astype("float64").sum(), xp.stack(hits).sum().astype("float64")])
        total, correct = backend.to_numpy(sums)
        return float(total) / len(loader.dataset), int(correct) / len(loader.dataset)

    def record_epoch(self, seconds: float) -> None:
        """Evaluate both splits and append the epoch ``self.epoch`` to the history."""
        self.busy = True
        (train_loss, train_acc), (test_loss, test_acc) = self.evaluate("train"), self.evaluate("test")
        values = (self.epoch, train_loss, train_acc, test_loss, test_acc, seconds)
        for key, value in zip(HISTORY_KEYS, values, strict=True):
            self.history[key].append(value)
        self.busy = False

    @property
    def epochs_to_target(self) -> int | None:
        """The first epoch whose train loss is at most the target (None if none or no target)."""
        target = self.config.target_loss
        if target is None:
            return None
        pairs = zip(self.history["epoch"], self.history["train_loss"], strict=True)
        return next((epoch for epoch, loss in pairs if loss <= target), None)

    # ----- training ---------------------------------------------------------------------------
    def train_step(self, x: Any, y: Any) -> float:
        """One optimizer step on the batch (x, y); returns its loss. Raises TrainingDiverged."""
        self.busy = True
        loss = softmax_cross_entropy(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        # The step's one host transfer: the loss, and one number for this step's gradients and for
        # the parameters the previous update wrote (checked again before every save and at the end).
        arrays = [p.data for p in self.optimizer.params]
        arrays += [p.grad for p in self.optimizer.params if p.grad is not None]
        value, finite = loss_and_arrays_finite(loss.data, arrays)
        if not (math.isfinite(value) and finite):
            self.check_parameters(x)  # raises when the previous update overflowed
            what = f"the loss is {value}" if not math.isfinite(value) else "a gradient is not finite"
            raise TrainingDiverged(self.step + 1, self.epoch + 1, what, locate_nonfinite(self.model, x))
        if self.config.grad_clip > 0:
            clip_grad_norm(self.optimizer.params, self.config.grad_clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        self.step += 1
        self.batch += 1
        self.step_losses.append(value)
        self.busy = False
        return value

    def check_parameters(self, x: Any = None) -> None:
        """Raise TrainingDiverged, naming the last completed update (step ``self.step``), when a
        parameter is NaN or Inf: weights of an update that overflowed are never saved or reported
        as a good state."""
        name = first_nonfinite_parameter(self.model)
        if name is not None:
            where = locate_nonfinite(self.model, x) if x is not None else f"parameter {name!r}"
            what = f"the update made parameter {name!r} non-finite"
            epoch = self.epoch if self.batch == 0 else self.epoch + 1  # the epoch of that update
            raise TrainingDiverged(self.step, max(epoch, 1), what, where)

    def batches(self) -> Iterator[tuple[Any, Any]]:
        """The batches left in the current epoch (all of them unless resuming mid-epoch)."""
        self.loader.set_epoch(self.epoch)
        return itertools.islice(iter(self.loader), self.batch, None)

    def finish_epoch(self, seconds: float) -> None:
        """Count the epoch as done and record it."""
        self.busy = True
        self.epoch += 1
        self.batch = 0
        self.record_epoch(seconds)

    # ----- saving and restoring ---------------------------------------------------------------
    def tracker_record(self) -> dict[str, Any] | None:
        """The tracker's record ({"step": (S,), statistic: (S, layers)}), including what was
        recorded before a resume."""
        if self.tracker is None:
            return None
        self.tracker.flush()  # a streamed record: on disk up to here
        record = self.tracker.to_dict()
        if self.previous_record is None:
            return record
        return {key: backend.np.concatenate([self.previous_record[key], record[key]]) for key in record}

    def save(self, path: Path) -> None:
        """Write a checkpoint of the state after the last completed step (refused, with
        TrainingDiverged, when a parameter is not finite: the last good checkpoint stays)."""
        self.check_parameters()
        progress = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "history": self.history,
            "step_losses": self.step_losses,
            "schedule_step": None if self.schedule is None else self.schedule.last_step,
        }
        streamed = self.tracker is not None and self.tracker.record.path is not None
        if streamed:  # the record reaches the checkpoint's step before the checkpoint is written
            self.tracker.flush()
        record = None if streamed else self.tracker_record()
        save_checkpoint(path, self.model, self.optimizer, progress, record)
        self.saved_step = self.step

    def save_if_new(self, path: Path) -> None:
        """Save unless the newest checkpoint already holds this step (so the previous generation
        stays a different, older state)."""
        if self.saved_step != self.step:
            self.save(path)

    def restore(self, path: Path) -> Path:
        """Continue from the checkpoint ``path``, or from its previous generation (with a
        RunNotice) when ``path`` cannot be loaded; returns the file used. CheckpointError, saying
        how to start over, when neither can be loaded."""
        problems = []
        fresh = jsonable(self.optimizer.state_dict()["hyperparameters"])  # what the config gives
        for candidate in (path, previous_path(path)):
            if not candidate.exists():
                problems.append(f"{candidate} does not exist")
                continue
            try:
                self._restore_from(candidate, fresh)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if problems:
                warnings.warn(
                    f"{problems[0]}; continuing from the previous checkpoint {candidate} "
                    f"(epoch {self.epoch}, step {self.step})",
                    RunNotice,
                    stacklevel=2,
                )
                damaged = path.with_name(path.name + ".damaged")
                if path.exists():  # keep it for inspection, out of the way of the next save
                    path.replace(damaged)
            return candidate
        raise CheckpointError(
            f"cannot resume from {path.parent}: {'; '.join(problems)}. To start over, delete the "
            "folder or choose another one, and run without --resume"
        )

    def _restore_from(self, path: Path, fresh_hyperparameters: dict[str, Any]) -> None:
        def check(progress: dict[str, Any]) -> None:
            missing = [key for key in _PROGRESS_KEYS if key not in progress]
            if missing:
                raise CheckpointError(f"checkpoint {path}: its progress lacks {', '.join(missing)}")
            try:
                saved = TrainConfig.from_dict(progress["config"], source=f"checkpoint {path}")
            except (ConfigError, TypeError) as exc:
                raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {exc}") from exc
            conflicts = resume_conflicts(saved, self.config)
            if conflicts:
                raise ConfigError(
                    f"the run in {path.parent} has a different configuration ({'; '.join(conflicts)}); "
                    "only epochs, checkpoint_every and target_loss may change on resume"
                )
            _check_progress(path, progress, saved, len(self.loader))
            if progress["epoch"] > self.config.epochs:
                raise ConfigError(
                    f"the run in {path.parent} has completed {progress['epoch']} epochs; "
                    f"epochs={self.config.epochs} cannot shorten it"
                )

        progress, record = load_checkpoint(path, self.model, self.optimizer, check)
        expected = dict(fresh_hyperparameters)
        if self.schedule is not None:
            self.schedule.last_step = progress["schedule_step"]
            expected["lr"] = self.schedule.get_lr()
        _check_hyperparameters(path, self.optimizer, expected)
        _check_optimizer_state(path, self.optimizer, progress["step"])
        name = first_nonfinite_parameter(self.model)
        if name is not None:
            raise CheckpointError(f"checkpoint {path} is corrupt: parameter {name!r} is not finite")
        self.epoch, self.batch, self.step = progress["epoch"], progress["batch"], progress["step"]
        self.saved_step = self.step
        self.history = {key: [_number(v) for v in values] for key, values in progress["history"].items()}
        self.step_losses = [_number(v) for v in progress["step_losses"]]
        if self.tracker is not None:  # number the new tracker's steps from the global step
            self.tracker.detach()
            self.tracker = _make_tracker(self.model, self.tracker.every, start_step=self.step)
        self.previous_record = record

    def stream_tracking(self, folder: Path, resume: bool = False) -> None:
        """Record the tracked steps into ``folder`` from now on: a new record, or with ``resume``
        the record there continued from the current step (rows from it on are cut)."""
        if self.tracker is not None:
            self.tracker.detach()
            self.tracker = _make_tracker(self.model, self.tracker.every, self.step, folder, resume)

    def result(self, status: str, message: str = "") -> TrainResult:
        record = self.tracker_record()
        return TrainResult(
            self.config, status, self.history, self.step_losses, self.epochs_to_target, record, message
        )


_PROGRESS_KEYS = ("config", "epoch", "batch", "step", "history", "step_losses", "schedule_step")


def _number(value: Any) -> float:
    """A history entry read back from JSON (where NaN was stored as null)."""
    return math.nan if value is None else value


def _check_progress(path: Path, progress: dict[str, Any], config: TrainConfig, n_batches: int) -> None:
    """Check every progress field of a checkpoint with the config's rules (``check_integer``) and
    against each other (step = epoch * batches per epoch + batch); CheckpointError naming it."""
    try:
        epoch = check_integer("epoch", progress["epoch"], 0, config.epochs)
        batch = check_integer("batch", progress["batch"], 0, n_batches - 1 if epoch < config.epochs else 0)
        step = check_integer("step", progress["step"], 0)
    except ConfigError as exc:
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
            except ConfigError as exc:
                raise CheckpointError(f"checkpoint {path} is corrupt: {exc}") from exc


def _make_tracker(
    model: Any, every: int, start_step: int = 0, path: Path | None = None, resume: bool = False
) -> Any:
    if not every:
        return None
    from tinynormact.tracking.tracker import VarianceTracker

    tracker = VarianceTracker(model, every=every, start_step=start_step, path=path, resume=resume)
    tracker.attach()
    return tracker


# --------------------------------------------------------------------------------------------------
# Ctrl-C: finish the current step, then stop
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Within the block, the first Ctrl-C only sets a flag (read by the returned function) so the
    loop can stop between steps; a second Ctrl-C interrupts at once. This does nothing outside
    the main thread (where Python delivers no signals) or when Ctrl-C has a handler other than
    Python's default (for example ignored in worker processes)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield lambda: False
        return
    requested = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        requested.append(True)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def using_device(device: str, dtype: str | None = None) -> Iterator[None]:
    """Make ``device`` (and ``dtype``, if given) current within the block; restore them after."""
    old_device, old_dtype = backend.get_device(), backend.get_default_dtype()
    backend.set_device(device)
    backend.set_default_dtype(old_dtype if dtype is None else dtype)
    try:
        yield
    finally:
        backend.set_device(old_device)
        backend.set_default_dtype(old_dtype)


# --------------------------------------------------------------------------------------------------
# train()
# --------------------------------------------------------------------------------------------------


def _check_folder(out: Path, resume: bool) -> None:
    checkpoint = out / CHECKPOINT_FILE
    if resume and not (checkpoint.exists() or previous_path(checkpoint).exists()):
        raise CheckpointError(f"cannot resume: {checkpoint} does not exist")
    if not resume and checkpoint.exists():
        raise FileExistsError(f"{out} already holds a run; resume it, or choose another folder")


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
    tracker's record (tracking/, tracker.json); nothing is written without it; locked for the
    run. ``resume``: continue from the checkpoint in ``out_dir``
    (``config`` must equal the saved one but for RESUMABLE_FIELDS; ``saved_config`` reads it).
    ``progress``: show a progress bar (None: only on a terminal). ``callback(StepInfo)`` runs
    after every step; it may raise KeyboardInterrupt to stop the run as Ctrl-C would.
    ``splits``: data to use instead of loading ``config.dataset`` (it must be the same for a
    resumed run). ``announce(text)`` receives ``Trainer.describe()`` once the model is built.

    Raises TrainingDiverged (with ``.result`` set) on NaN/Inf, TrainingInterrupted (after
    saving) on Ctrl-C, FolderLocked when another process writes ``out_dir``.
    """
    if out_dir is None:
        return _train(config, None, resume, progress, callback, splits, announce)
    if str(out_dir) == "":
        raise ValueError("the output folder is an empty path; give a folder name (or . for this one)")
    out = Path(out_dir)
    check_writable(out)
    with folder_lock(out):
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
    trainer, fitting = None, False
    try:
        with using_device(config.device, config.dtype):
            if out is not None:
                _check_folder(out, resume)
            if splits is not None:
                splits.check_finite()
            data = splits if splits is not None else load_data(config)
            trainer = Trainer(config, data)
            if announce is not None:
                announce(trainer.describe())
            if resume:
                trainer.restore(out / CHECKPOINT_FILE)
            if out is not None and trainer.previous_record is None:  # else a checkpoint from before streaming
                trainer.stream_tracking(out / TRACKING_FOLDER, resume)
            if out is not None:
                write_json_atomic(out / CONFIG_FILE, config.to_dict())
            fitting = True  # from here on, Ctrl-C saves the state between steps
            try:
                _fit(trainer, out, progress, callback)
                return _finish(trainer, out)
            except TrainingDiverged as exc:
                exc.result = trainer.result("diverged", str(exc))
                _write_result(out, exc.result)
                raise
    except KeyboardInterrupt:
        if fitting:
            if out is not None and not trainer.busy:  # between steps: the state is consistent
                trainer.save_if_new(out / CHECKPOINT_FILE)
            _write_result(out, trainer.result("interrupted", f"interrupted after step {trainer.step}"))
        checkpoint = None if out is None else out / CHECKPOINT_FILE
        if checkpoint is not None and not (checkpoint.exists() or previous_path(checkpoint).exists()):
            checkpoint = None
        step = 0 if trainer is None else trainer.step
        raise TrainingInterrupted(f"training stopped after step {step}", checkpoint) from None


def _fit(
    trainer: Trainer, out: Path | None, progress: bool | None, callback: Callable[[StepInfo], None] | None
) -> None:
    cfg = trainer.config
    if not trainer.history["epoch"]:
        trainer.record_epoch(0.0)
    total = cfg.epochs * len(trainer.loader)
    from tqdm import tqdm  # loads when a bar is shown

    bar = tqdm(
        total=total,
        initial=trainer.step,
        disable=None if progress is None else not progress,  # None: quiet unless on a terminal
        unit="step",
        desc=f"{cfg.architecture} {cfg.activation}",
        leave=False,
        dynamic_ncols=True,
    )
    # NaN and Inf are detected and reported after each step: NumPy's own warnings would be noise
    with bar, _deferred_interrupt() as interrupted, backend.np.errstate(all="ignore"):
        while trainer.epoch < cfg.epochs:
            start = time.perf_counter()
            for x, y in trainer.batches():
                if interrupted():
                    raise KeyboardInterrupt
                loss = trainer.train_step(x, y)
                bar.update()
                if callback is not None:
                    callback(StepInfo(trainer.step, trainer.epoch + 1, loss))
            trainer.finish_epoch(time.perf_counter() - start)
            bar.set_postfix(epoch=trainer.epoch, test_acc=f"{trainer.history['test_acc'][-1]:.3f}")
            if out is not None and cfg.checkpoint_every and trainer.epoch % cfg.checkpoint_every == 0:
                trainer.save(out / CHECKPOINT_FILE)
            if interrupted():
                raise KeyboardInterrupt


def _finish(trainer: Trainer, out: Path | None) -> TrainResult:
    """Check the last update, save the checkpoint and write the completed result. A Ctrl-C in
    this window interrupts nothing worth keeping apart: it is noted, the run completes and is
    saved, and a notice says so (the caller's exit code stays that of a completed run)."""
    with _deferred_interrupt() as interrupted:
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
    """result.json, and the tracker's record in readable form (tracker.json) when tracking."""
    if out is not None:
        write_json_atomic(out / RESULT_FILE, result.to_dict())
        if result.tracker is not None:
            write_json_atomic(out / TRACKER_FILE, result.tracker)
