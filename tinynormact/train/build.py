"""Build the network and the optimizer a ``TrainConfig`` describes."""

from __future__ import annotations

import math

from tinynormact.engine.backend import np
from tinynormact.infra.memory import mlp_bytes
from tinynormact.nn import MLP, Module, ResidualMLP, optim, resnet1d, resnet50, resnet_cifar
from tinynormact.train.config import IMAGE_ARCHITECTURES, TrainConfig

__all__ = ["build_model", "build_optimizer", "model_bytes"]

_STATE_COPIES = {"sgd": 3, "adam": 4, "adamw": 4}  # parameter, gradient, optimizer state


def model_bytes(config: TrainConfig, n_features: int, n_classes: int) -> int:
    """A lower bound on the memory a training step of ``config``'s network needs: parameters,
    gradients and optimizer state, and one batch's activations. A convolutional network is
    counted as the residual MLP of its width (a lower bound: its kernels and feature maps hold
    more)."""
    linears = config.depth if config.architecture == "mlp" else 1 + config.depth * (config.branch_depth + 1)
    widths = [n_features] + [config.width] * linears + [n_classes]
    copies = _STATE_COPIES[config.optimizer]
    return mlp_bytes(widths, config.batch_size, np.dtype(config.dtype).itemsize, copies)


def build_model(config: TrainConfig, example_shape: tuple[int, ...], n_classes: int) -> Module:
    """The network of ``config`` for examples of ``example_shape`` (an MLP reads them flattened,
    an image ResNet as (channels, height, width)), its weights drawn from ``config.seed``."""
    n_features = math.prod(example_shape)
    common = dict(
        activation=config.activation,
        activation_options=config.activation_options,
        init=config.init,
        dtype=config.dtype,
        rng=config.seed,
    )
    if config.architecture == "mlp":
        widths = [n_features] + [config.width] * config.depth + [n_classes]
        return MLP(widths, **common)
    if config.architecture in IMAGE_ARCHITECTURES:
        image = dict(num_classes=n_classes, in_channels=example_shape[0], alpha=config.alpha, **common)
        if config.architecture == "resnet50":
            return resnet50(**image)
        return resnet_cifar(int(config.architecture.removeprefix("resnet")), **image)
    if config.architecture == "resnet1d":
        return resnet1d(n_features, n_classes, config.width, (config.depth,) * 3, **common)
    return ResidualMLP(
        n_features,
        config.width,
        config.depth,
        n_classes,
        branch_depth=config.branch_depth,
        alpha=config.alpha,
        **common,
    )


def build_optimizer(
    config: TrainConfig, model: Module, total_steps: int
) -> tuple[optim.Optimizer, optim.LRSchedule | None]:
    """The optimizer of ``config`` over the model's parameters, and its schedule (or None)."""
    params = list(model.parameters())
    if config.optimizer == "sgd":
        optimizer = optim.SGD(params, config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        optimizer = optim.Adam(params, config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = optim.AdamW(params, config.lr, weight_decay=config.weight_decay)
    schedule = optim.CosineLR(optimizer, total_steps) if config.schedule == "cosine" else None
    return optimizer, schedule
