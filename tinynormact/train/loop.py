"""The training loop: ``fit`` runs the epochs of a ``Trainer``, whose ``train_step`` is one
optimizer step. ``train(config)`` (``train.run``) drives them for a whole run.

- Deterministic: the weights come from ``config.seed`` and the batch order (and, for the image
  ResNets, the random crops and flips) of epoch k from ``(config.seed, k)``, so the same config
  gives the same numbers, bit for bit, on a CPU.
- After every step the loss, the gradients and the updated parameters are checked; NaN or Inf
  raises ``TrainingDiverged`` naming the step and the first layer that went non-finite, so a
  checkpoint never holds non-finite weights.
- Ctrl-C during ``fit`` finishes the current step, then stops (``context.deferred_interrupt``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynormact.data import DataLoader, DataSplits, ImageTransform
from tinynormact.engine import autograd, backend
from tinynormact.infra.files import RunNotice, jsonable, set_aside
from tinynormact.nn.losses import softmax_cross_entropy
from tinynormact.nn.optim import clip_grad_norm
from tinynormact.train.adaptive_health import AdaptiveHealth
from tinynormact.train.build import build_model_in_memory, build_optimizer
from tinynormact.train.checkpoint import read_for_resume, resume_from, save_checkpoint
from tinynormact.train.config import IMAGE_ARCHITECTURES, TrainConfig
from tinynormact.train.context import deferred_interrupt
from tinynormact.train.health import (
    TrainingDiverged,
    first_nonfinite_parameter,
    locate_nonfinite,
    loss_and_arrays_finite,
)
from tinynormact.train.result import HISTORY_KEYS, StepInfo, TrainResult

__all__ = ["Trainer", "fit"]

_EVAL_BATCH = 1024
_IMAGE_EVAL_BATCH = 256  # a ResNet's feature maps of 1024 images would take gigabytes
# the CIFAR training augmentation (He et al. 2016, section 4.2): 4-pixel padding, random crop, flip
_CROP_PADDING = 4


def fit(
    trainer: Trainer,
    checkpoint: Path | None,
    progress: bool | None,
    callback: Callable[[StepInfo], None] | None,
) -> None:
    """The epochs left of ``trainer``'s run, one ``train_step`` per batch, a progress bar, the
    untrained network's epoch 0 recorded first, a checkpoint every ``checkpoint_every`` epochs
    when ``checkpoint`` is a path. ``callback(StepInfo)`` runs after every step."""
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
    with bar, deferred_interrupt() as interrupted, backend.np.errstate(all="ignore"):
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
            if checkpoint is not None and cfg.checkpoint_every and trainer.epoch % cfg.checkpoint_every == 0:
                trainer.save(checkpoint)
            if interrupted():
                raise KeyboardInterrupt


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
        self.model = build_model_in_memory(cfg, train_set.example_shape, train_set.n_classes)
        self.optimizer, self.schedule = build_optimizer(cfg, self.model, cfg.epochs * len(self.loader))
        self.tracker = _make_tracker(self.model, cfg.track_every)
        self.health = AdaptiveHealth.watch(self.model, len(self.loader))
        self.previous_record: dict[str, Any] | None = None  # tracker record before a resume

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

    def finish_epoch(self, seconds: float) -> None:
        """Count the epoch as done and record it."""
        self.busy = True
        self.epoch += 1
        self.batch = 0
        self.record_epoch(seconds)

    def batches(self) -> Iterator[tuple[Any, Any]]:
        """The batches left in the current epoch (all of them unless resuming mid-epoch)."""
        self.loader.set_epoch(self.epoch)
        return itertools.islice(iter(self.loader), self.batch, None)

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

    @property
    def epochs_to_target(self) -> int | None:
        """The first epoch whose train loss is at most the target (None if none or no target)."""
        target = self.config.target_loss
        if target is None:
            return None
        pairs = zip(self.history["epoch"], self.history["train_loss"], strict=True)
        return next((epoch for epoch, loss in pairs if loss <= target), None)

    def describe(self) -> str:
        """Two lines naming the data and the model this trainer built."""
        cfg, train_set = self.config, self.splits.train
        n_params = sum(p.size for p in self.model.parameters())
        shape = "x".join(map(str, train_set.example_shape))
        blocks = "hidden layers" if cfg.architecture in ("mlp", "mlp-bn") else "residual blocks"
        size = f", {cfg.depth} {blocks} of width {cfg.width}"
        size = "" if cfg.architecture in IMAGE_ARCHITECTURES else size  # the name fixes the size
        return (
            f"data: {cfg.dataset}, {len(train_set)} train and {len(self.splits.test)} test examples "
            f"of shape {shape}, {train_set.n_classes} classes\n"
            f"model: {cfg.architecture}{size}, activation "
            f"{cfg.activation}, {n_params} parameters ({cfg.dtype} on {cfg.device}); "
            f"{len(self.loader)} steps per epoch"
        )

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
        how to start over, when neither can be loaded (``checkpoint.resume_from``)."""
        fresh = jsonable(self.optimizer.state_dict()["hyperparameters"])  # what the config gives

        def read(candidate: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
            args = (self.model, self.optimizer, self.schedule, self.config, len(self.loader), fresh)
            return read_for_resume(candidate, *args)

        used, progress, record = resume_from(path, read)
        self.epoch, self.batch, self.step = progress["epoch"], progress["batch"], progress["step"]
        self.saved_step = self.step
        self.history = {key: [_number(v) for v in values] for key, values in progress["history"].items()}
        self.step_losses = [_number(v) for v in progress["step_losses"]]
        if self.tracker is not None:  # number the new tracker's steps from the global step
            self.tracker.detach()
            self.tracker = _make_tracker(self.model, self.tracker.every, start_step=self.step)
        self.previous_record = record
        return used

    def stream_tracking(self, folder: Path, resume: bool = False) -> None:
        """Record the tracked steps into ``folder`` from now on: a new record, or with ``resume``
        the record there continued from the current step (rows from it on are cut). A record
        that cannot be continued (missing, damaged) does not block the resume: it is moved aside
        (``<folder>.damaged``) with a RunNotice and a new record starts at the current step."""
        if self.tracker is None:
            return
        self.tracker.detach()
        every = self.tracker.every
        try:
            self.tracker = _make_tracker(self.model, every, self.step, folder, resume)
        except ValueError as exc:
            if not resume:
                raise
            kept = set_aside(folder)
            where = f"the old one is kept in {kept}" if kept else "there was none"
            warnings.warn(
                f"{exc}; the tracking record starts anew at step {self.step} ({where})",
                RunNotice,
                stacklevel=2,
            )
            self.tracker = _make_tracker(self.model, every, self.step, folder, resume=False)

    def result(self, status: str, message: str = "") -> TrainResult:
        record = self.tracker_record()
        flags = self.health.flags() if self.health is not None else []
        return TrainResult(
            self.config, status, self.history, self.step_losses, self.epochs_to_target, record, message, flags
        )


def _number(value: Any) -> float:
    """A history entry read back from JSON (where NaN was stored as null)."""
    return math.nan if value is None else value


def _make_tracker(
    model: Any, every: int, start_step: int = 0, path: Path | None = None, resume: bool = False
) -> Any:
    if not every:
        return None
    from tinynormact.tracking.tracker import VarianceTracker

    tracker = VarianceTracker(model, every=every, start_step=start_step, path=path, resume=resume)
    tracker.attach()
    return tracker
