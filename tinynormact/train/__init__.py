"""Training: ``TrainConfig`` describes a run, ``train(config)`` runs it and returns a ``TrainResult``.

- ``config``: the validated configuration, loadable from TOML or JSON;
- ``build``: the network and optimizer a config describes;
- ``loop``: ``Trainer.train_step`` and ``fit``, the epoch loop; evaluation;
- ``run``: ``train()``, a run's folder (lock, config.json, result.json, resume), Ctrl-C;
- ``result``: ``TrainResult``, ``StepInfo``, ``TrainingInterrupted``;
- ``checkpoint``: atomic ``.npz`` checkpoints, every field checked when resuming;
- ``context``: Ctrl-C deferred or ignored, the current device;
- ``health``: NaN/Inf detection and ``TrainingDiverged``.
"""

from tinynormact.train.build import build_model, build_optimizer
from tinynormact.train.checkpoint import CheckpointError
from tinynormact.train.config import (
    ARCHITECTURES,
    IMAGE_ARCHITECTURES,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
)
from tinynormact.train.context import using_device
from tinynormact.train.health import TrainingDiverged
from tinynormact.train.loop import Trainer
from tinynormact.train.result import StepInfo, TrainingInterrupted, TrainResult
from tinynormact.train.run import load_data, saved_config, train

__all__ = [
    "ARCHITECTURES",
    "IMAGE_ARCHITECTURES",
    "OPTIMIZERS",
    "SCHEDULES",
    "CheckpointError",
    "ConfigError",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_model",
    "build_optimizer",
    "load_data",
    "saved_config",
    "train",
    "using_device",
]
