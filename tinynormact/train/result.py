"""What a run returns and raises: ``TrainResult``, ``StepInfo`` and ``TrainingInterrupted``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynormact.train.config import TrainConfig

__all__ = ["HISTORY_KEYS", "StepInfo", "TrainResult", "TrainingInterrupted"]

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


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
    flags: list[dict[str, Any]] = field(default_factory=list)  # adaptive_health's, THEORY E27-E29

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
            "flags": self.flags,
        }
