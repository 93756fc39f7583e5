"""The training loop: ``train(config)`` runs one configuration and returns a ``TrainResult``.

- Deterministic: the weights come from ``config.seed`` and the batch order of epoch k from
  ``(config.seed, k)``, so the same config gives the same numbers, bit for bit, on a CPU.
- After every step the loss and the gradients are checked; NaN or Inf raises
  ``TrainingDiverged`` naming the step and the first layer that went non-finite.
- With an output folder: ``config.json``, ``checkpoint.npz`` (every ``checkpoint_every``
  epochs, at the end and on Ctrl-C, the state after the last completed step) and
  ``result.json`` are written atomically; ``resume=True`` continues from the checkpoint and
  gives the same result as an uninterrupted run.
- Ctrl-C finishes the current step, saves, and raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tinynormact import autograd, backend
from tinynormact.data import DataLoader, DataSplits, load_dataset
from tinynormact.files import write_json_atomic
from tinynormact.losses import softmax_cross_entropy
from tinynormact.optim import clip_grad_norm
from tinynormact.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinynormact.train.config import TrainConfig
from tinynormact.train.health import TrainingDiverged, locate_nonfinite, loss_and_gradients_finite
from tinynormact.train.model import build_model, build_optimizer

__all__ = ["CHECKPOINT_FILE", "RESULT_FILE", "StepInfo", "TrainResult", "Trainer", "train", "using_device"]

CHECKPOINT_FILE = "checkpoint.npz"
RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")
_EVAL_BATCH = 1024


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

    def __post_init__(self) -> None:
        cfg, train_set = self.config, self.splits.train
        self.loader = DataLoader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, dtype=cfg.dtype)
        self.eval_loaders = {
            name: DataLoader(data, _EVAL_BATCH, shuffle=False, dtype=cfg.dtype)
            for name, data in (("train", train_set), ("test", self.splits.test))
        }
        n_features = int(backend.np.prod(train_set.example_shape))
        self.model = build_model(cfg, n_features, train_set.n_classes)
        self.optimizer, self.schedule = build_optimizer(cfg, self.model, cfg.epochs * len(self.loader))
        self.tracker = _make_tracker(self.model, cfg.track_every)
        self.previous_record: dict[str, Any] | None = None  # tracker record before a resume

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
        grads = [p.grad for p in self.optimizer.params if p.grad is not None]
        value, grads_finite = loss_and_gradients_finite(loss.data, grads)  # the step's one host sync
        if not (math.isfinite(value) and grads_finite):
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
        record = self.tracker.to_dict()
        if self.previous_record is None:
            return record
        return {key: backend.np.concatenate([self.previous_record[key], record[key]]) for key in record}

    def save(self, path: Path) -> None:
        progress = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "history": self.history,
            "step_losses": self.step_losses,
            "schedule_step": None if self.schedule is None else self.schedule.last_step,
        }
        save_checkpoint(path, self.model, self.optimizer, progress, self.tracker_record())

    def restore(self, path: Path) -> None:
        progress, record = load_checkpoint(path, self.model, self.optimizer)
        missing = [key for key in _PROGRESS_KEYS if key not in progress]
        if missing:
            raise CheckpointError(f"checkpoint {path}: its progress lacks {', '.join(missing)}")
        saved = TrainConfig.from_dict(progress["config"], source=str(path))
        if saved != self.config:
            changed = [
                f"{k}: {v!r} saved, {getattr(self.config, k)!r} now"
                for k, v in saved.to_dict().items()
                if v != getattr(self.config, k)
            ]
            raise CheckpointError(
                f"checkpoint {path} belongs to a different configuration ({'; '.join(changed)})"
            )
        self.epoch, self.batch, self.step = progress["epoch"], progress["batch"], progress["step"]
        self.history, self.step_losses = progress["history"], progress["step_losses"]
        if self.schedule is not None:
            self.schedule.last_step = progress["schedule_step"]
        if self.tracker is not None:  # number the new tracker's steps from the global step
            self.tracker.detach()
            self.tracker = _make_tracker(self.model, self.tracker.every, start_step=self.step)
        self.previous_record = record

    def result(self, status: str, message: str = "") -> TrainResult:
        record = self.tracker_record()
        return TrainResult(
            self.config, status, self.history, self.step_losses, self.epochs_to_target, record, message
        )


_PROGRESS_KEYS = ("config", "epoch", "batch", "step", "history", "step_losses", "schedule_step")


def _make_tracker(model: Any, every: int, start_step: int = 0) -> Any:
    if not every:
        return None
    from tinynormact.tracking import VarianceTracker

    tracker = VarianceTracker(model, every=every, start_step=start_step)
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
    if resume and not checkpoint.exists():
        raise CheckpointError(f"cannot resume: {checkpoint} does not exist")
    if not resume and checkpoint.exists():
        raise FileExistsError(f"{out} already holds a run; resume it, or choose another folder")


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    splits: DataSplits | None = None,
) -> TrainResult:
    """Train the network of ``config`` and return its record.

    ``out_dir``: folder for config.json, checkpoint.npz and result.json (nothing is written
    without it). ``resume``: continue from the checkpoint in ``out_dir``. ``progress``: show a
    progress bar (None: only on a terminal). ``callback(StepInfo)`` runs after every step; it
    may raise KeyboardInterrupt to stop the run as Ctrl-C would. ``splits``: data to use instead
    of loading ``config.dataset`` (it must be the same for a resumed run).

    Raises TrainingDiverged (with ``.result`` set) on NaN/Inf, KeyboardInterrupt after saving
    on Ctrl-C.
    """
    out = None if out_dir is None else Path(out_dir)
    with using_device(config.device, config.dtype):
        if out is not None:
            _check_folder(out, resume)
        data = splits if splits is not None else load_dataset(config.dataset, **config.dataset_options)
        trainer = Trainer(config, data)
        if resume:
            trainer.restore(out / CHECKPOINT_FILE)
        if out is not None:
            write_json_atomic(out / CONFIG_FILE, config.to_dict())
        try:
            _fit(trainer, out, progress, callback)
        except TrainingDiverged as exc:
            exc.result = trainer.result("diverged", str(exc))
            _write_result(out, exc.result)
            raise
        except KeyboardInterrupt:
            if out is not None and not trainer.busy:  # between steps: the state is consistent
                trainer.save(out / CHECKPOINT_FILE)
            _write_result(out, trainer.result("interrupted", f"interrupted after step {trainer.step}"))
            raise
        result = trainer.result("completed")
        if out is not None:
            trainer.save(out / CHECKPOINT_FILE)
        _write_result(out, result)
        return result


def _fit(
    trainer: Trainer, out: Path | None, progress: bool | None, callback: Callable[[StepInfo], None] | None
) -> None:
    cfg = trainer.config
    if not trainer.history["epoch"]:
        trainer.record_epoch(0.0)
    total = cfg.epochs * len(trainer.loader)
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


def _write_result(out: Path | None, result: TrainResult) -> None:
    if out is not None:
        write_json_atomic(out / RESULT_FILE, result.to_dict())
