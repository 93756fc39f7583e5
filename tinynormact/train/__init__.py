"""Training: ``TrainConfig`` describes a run, ``train(config)`` runs it and returns a ``TrainResult``.

- ``config``: the validated configuration, loadable from TOML or JSON;
- ``model``: the network and optimizer a config describes;
- ``loop``: the training loop, evaluation, Ctrl-C handling, resuming;
- ``checkpoint``: atomic ``.npz`` checkpoints;
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
from tinynormact.train.health import TrainingDiverged
from tinynormact.train.loop import (
    StepInfo,
    Trainer,
    TrainingInterrupted,
    TrainResult,
    load_data,
    saved_config,
    train,
    using_device,
)

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
