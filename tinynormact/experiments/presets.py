"""The reproduction's settings as data: a ``Preset`` names the grid of runs and their settings.

``quick`` (the default) finishes in about three minutes on two CPU cores; ``full`` runs more
seeds, epochs, depth and width, for a GPU or a long CPU run. A preset expands into one
``RunSpec`` per (architecture, activation, form, seed); the form of an activation is
"vanilla" (phi), "static" (n<phi> with lambda from the Gaussian moments, THEORY E15) or
"adaptive" (n<phi> with lambda from batch statistics, E16).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tinynormact.train import TrainConfig

__all__ = ["FORMS", "PRESETS", "Preset", "RunSpec"]

FORMS = ("vanilla", "static", "adaptive")


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its coordinates and its training configuration."""

    architecture: str
    activation: str
    form: str
    seed: int
    config: TrainConfig

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.architecture, self.activation, self.form, self.seed)


@dataclass(frozen=True)
class Preset:
    """A named grid of runs. ``mlp_depth`` counts hidden layers, ``resmlp_depth`` residual
    blocks, ``cnn_depth`` the residual blocks per stage of the 1-D CNN "resnet1d"; ``rule`` and
    ``center`` are the normalization options of the static and adaptive forms; ``target_loss``
    is the train loss whose first crossing counts as "converged"; ``propagation_*`` size the
    signal-propagation measurement at initialization."""

    name: str
    description: str
    activations: tuple[str, ...] = ("relu", "tanh", "sigmoid", "swish", "gelu", "elu")
    architectures: tuple[str, ...] = ("mlp", "resmlp")
    forms: tuple[str, ...] = FORMS
    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    mlp_depth: int = 10
    resmlp_depth: int = 4
    cnn_depth: int = 1
    width: int = 64
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    seeds: int = 3
    rule: str = "balanced"
    center: bool = False
    target_loss: float = 1.0
    propagation_depth: int = 20
    propagation_width: int = 256
    propagation_batch: int = 256

    def with_seeds(self, seeds: int) -> Preset:
        """A copy with ``seeds`` seeds (0, 1, ..., seeds - 1)."""
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
        return dataclasses.replace(self, seeds=seeds)

    def config(self, architecture: str, activation: str, form: str, seed: int, device: str) -> TrainConfig:
        """The training configuration of one run of the grid."""
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; valid forms: {', '.join(FORMS)}")
        options = {} if form == "vanilla" else {"mode": form, "rule": self.rule, "center": self.center}
        return TrainConfig(
            dataset=self.dataset,
            dataset_options=dict(self.dataset_options),
            architecture=architecture,
            activation=activation if form == "vanilla" else "n" + activation,
            activation_options=options,
            depth=self._depth(architecture),
            width=self.width,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            seed=seed,
            device=device,
            target_loss=self.target_loss,
        )

    def _depth(self, architecture: str) -> int:
        return {"mlp": self.mlp_depth, "resmlp": self.resmlp_depth, "resnet1d": self.cnn_depth}[architecture]

    def runs(self, device: str = "cpu") -> list[RunSpec]:
        """Every run of the grid, in a fixed order."""
        return [
            RunSpec(arch, act, form, seed, self.config(arch, act, form, seed, device))
            for arch in self.architectures
            for act in self.activations
            for form in self.forms
            for seed in range(self.seeds)
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="MNIST-1D (4000 train / 1000 test), MLP of 10 hidden layers and residual MLP of "
        "4 blocks, width 64, 15 epochs of Adam, 3 seeds: about 1 minute on 2 CPU cores (52 s measured)",
    ),
    "cnn-quick": Preset(
        name="cnn-quick",
        description="MNIST-1D (4000 train / 1000 test) as one-channel sequences of length 40, the 1-D "
        "residual CNN resnet1d (3 stages of one block x + F(x), 32/64/128 channels, no batch norm), "
        "relu and swish, 15 epochs of Adam, 3 seeds: 400 CPU-seconds in all, so about 3.5 minutes "
        "with --jobs 2 on 2 idle CPU cores (estimated from the CPU time of a run on a shared machine)",
        activations=("relu", "swish"),
        architectures=("resnet1d",),
        width=32,
    ),
    "full": Preset(
        name="full",
        description="MNIST-1D (8000 train / 2000 test), MLP of 20 hidden layers and residual MLP of "
        "8 blocks, width 128, 60 epochs of Adam, 5 seeds, 10 activations: about 5 CPU-hours "
        "(estimated from 2-epoch runs; --jobs spreads them over cores), or a GPU",
        activations=(
            "relu",
            "tanh",
            "sigmoid",
            "swish",
            "gelu",
            "elu",
            "selu",
            "mish",
            "softplus",
            "softsign",
        ),
        dataset_options={"num_samples": 10000},
        mlp_depth=20,
        resmlp_depth=8,
        width=128,
        epochs=60,
        seeds=5,
        target_loss=0.5,
        propagation_depth=50,
        propagation_width=512,
        propagation_batch=512,
    ),
}
