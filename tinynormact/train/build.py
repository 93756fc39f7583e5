"""Build the network and the optimizer a ``TrainConfig`` describes."""

from __future__ import annotations

import math

from tinynormact.engine.backend import np
from tinynormact.infra.memory import mlp_bytes, require_memory
from tinynormact.nn import MLP, Module, ResidualMLP, optim, resnet1d, resnet50, resnet_cifar
from tinynormact.tracking.costs import step_memory_estimate
from tinynormact.train.config import BATCH_NORM_MLPS, IMAGE_ARCHITECTURES, TrainConfig

__all__ = ["build_model", "build_model_in_memory", "build_optimizer", "model_bytes"]

_STATE_COPIES = {"sgd": 3, "adam": 4, "adamw": 4}  # parameter, gradient, optimizer state


def model_bytes(config: TrainConfig, n_features: int, n_classes: int) -> int:
    """A lower bound on the memory a training step of ``config``'s network needs: parameters,
    gradients and optimizer state, and one batch's activations. A convolutional network is
    counted as the residual MLP of its width (a lower bound: its kernels and feature maps hold
    more)."""
    plain = config.architecture in ("mlp", "mlp-bn")
    linears = config.depth if plain else 1 + config.depth * (config.branch_depth + 1)
    itemsize, copies = np.dtype(config.dtype).itemsize, _STATE_COPIES[config.optimizer]
    return mlp_bytes(n_features, config.width, linears, n_classes, config.batch_size, itemsize, copies)


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
    if config.architecture in BATCH_NORM_MLPS:
        common["batch_norm"] = True
    if config.architecture in ("mlp", "mlp-bn"):
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


def build_model_in_memory(config: TrainConfig, example_shape: tuple[int, ...], n_classes: int) -> Module:
    """``build_model``, once a training step is known to fit in the memory available: checked
    before building for the MLPs (a mistyped width would not fit at all), after building for
    the image ResNets, whose size their name fixes (``costs.step_memory_estimate``)."""
    if config.architecture in IMAGE_ARCHITECTURES:
        model = build_model(config, example_shape, n_classes)
        slots = 1 if config.optimizer == "sgd" else 2  # momentum; Adam's two moments
        estimate = step_memory_estimate(model, example_shape, config.batch_size, slots)
        require_memory(estimate.total, f"a {config.architecture} training step at batch {config.batch_size}")
        return model
    what = f"the {config.architecture} of depth {config.depth} and width {config.width}"
    require_memory(model_bytes(config, math.prod(example_shape), n_classes), what)
    return build_model(config, example_shape, n_classes)
