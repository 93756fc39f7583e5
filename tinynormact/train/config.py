"""``TrainConfig``: everything that defines one training run, validated, loadable from TOML or JSON.

Every field has a default, so ``TrainConfig(activation="nswish")`` is a complete run. A bad value
raises ``ConfigError`` (a ValueError) naming the field, the value and what would be valid;
``TrainConfig.from_file`` also rejects unknown keys by name.

The field rules are ``infra.validation``'s (``check_integer``, ``check_real``, ``check_positive``,
``check_choice``), the one schema of the package's run files: checkpoints validate the numbers
they read (epoch, step, batch) with the same functions.
``resume_conflicts`` says which fields of a saved run may not change when it is resumed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynormact.data import DATASETS, IMAGE_DATASETS
from tinynormact.engine import backend
from tinynormact.infra.validation import (
    check_choice,
    check_integer,
    check_positive,
    check_real,
    is_finite_real,
)
from tinynormact.nn import Parameter
from tinynormact.nn import init as nn_init
from tinynormact.nn.factory import check_activation, normalized_base
from tinynormact.nn.normalized import normalization_options
from tinynormact.theory import activations

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ARCHITECTURES",
    "IMAGE_ARCHITECTURES",
    "OPTIMIZERS",
    "RESUMABLE_FIELDS",
    "SCHEDULES",
    "ConfigError",
    "TrainConfig",
    "resume_conflicts",
]

# the CIFAR ResNets of nn.resnet, trained on images (not flattened), with augmentation
IMAGE_ARCHITECTURES = ("resnet20", "resnet32", "resnet56", "resnet50")
# "mlp-bn", "resmlp-bn": the MLPs with batch norm before every activation (``batch_norm=True``)
BATCH_NORM_MLPS = ("mlp-bn", "resmlp-bn")
ARCHITECTURES = ("mlp", "resmlp", *BATCH_NORM_MLPS, "resnet1d", *IMAGE_ARCHITECTURES)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
DTYPES = ("float32", "float64")
# fields a resumed run may change: they do not alter the steps already taken
RESUMABLE_FIELDS = ("epochs", "checkpoint_every", "target_loss")


class ConfigError(ValueError):
    """A configuration value (or file) is invalid; the message names the field and what is valid."""


@dataclass
class TrainConfig:
    """One training run: data, network, optimizer, seed and bookkeeping.

    - ``dataset`` is a name of ``tinynormact.data.DATASETS``; ``dataset_options`` go to its loader
      (e.g. ``{"num_samples": 2000}`` for mnist1d).
    - ``architecture`` "mlp": ``depth`` hidden layers of ``width`` units, each a Linear followed by
      the activation, then a Linear to the classes. "resmlp": a Linear to ``width``, ``depth``
      residual blocks x + alpha * F(x) (F = ``branch_depth`` Linear-activation pairs and a
      Linear), then a Linear to the classes. "mlp-bn" and "resmlp-bn": the same networks with a
      batch norm between every hidden Linear and its activation. "resnet1d": the 1-D residual
      CNN ``nn.resnet1d`` (each example, e.g. MNIST-1D's 40 features, read as one channel):
      3 stages of ``depth`` residual blocks x + F(x) (F = conv, activation, conv) at ``width``,
      2 ``width`` and 4 ``width`` channels, global average pooling, a Linear to the classes.
      "resnet20", "resnet32", "resnet56" (``nn.resnet_cifar``, He et al. 2016) and "resnet50"
      (bottleneck, 3x3 stride-1 stem for 32x32 inputs): the standard networks with batch norm,
      trained on an image dataset (``IMAGE_DATASETS``) kept as uint8 images; each training batch
      gets a random crop (4-pixel padding) and flip, every batch the per-channel normalization of
      the training set (``ImageTransform``). ``depth``, ``width`` and ``branch_depth`` are not
      used by them (the name fixes the network); ``alpha`` scales their residual branches.
    - ``activation`` is any activation name, "n<name>" for a normalized one;
      ``activation_options`` are its options (``{"mode": "adaptive", "rule": "balanced"}``, or
      ``{"beta": 2.0}`` for swish). ``init`` is an ``nn.init`` scheme (LeCun by default: the
      sigma_w^2 = 1 under which the normalization rules of THEORY E12-E14 are stated).
    - The optimizer is "sgd" (with ``momentum``), "adam" or "adamw"; ``schedule`` "constant" or
      "cosine" (per step, down to 0); ``grad_clip`` > 0 clips the global gradient norm.
    - ``track_every`` > 0 records per-layer variance statistics every that many steps.
    - ``target_loss``: the train loss whose first crossing gives ``epochs_to_target``.
    - ``checkpoint_every``: write a checkpoint every that many epochs (0: only at the end and
      on Ctrl-C); used only when ``train`` gets an output folder.
    """

    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    architecture: str = "mlp"
    activation: str = "relu"
    activation_options: dict[str, Any] = field(default_factory=dict)
    depth: int = 10
    width: int = 64
    branch_depth: int = 1
    alpha: float = 1.0
    init: str = "lecun_normal"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    track_every: int = 0
    target_loss: float | None = None
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        self.validate()

    # ----- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError on the first invalid field."""
        check_choice("dataset", self.dataset, tuple(DATASETS), ConfigError)
        check_choice("architecture", self.architecture, ARCHITECTURES, ConfigError)
        if self.architecture in IMAGE_ARCHITECTURES and self.dataset not in IMAGE_DATASETS:
            raise ConfigError(
                f"architecture {self.architecture!r} needs an image dataset "
                f"({', '.join(IMAGE_DATASETS)}), got dataset {self.dataset!r}"
            )
        check_choice("optimizer", self.optimizer, OPTIMIZERS, ConfigError)
        check_choice("schedule", self.schedule, SCHEDULES, ConfigError)
        check_choice("device", self.device, backend.devices(), ConfigError)
        check_choice("dtype", self.dtype, DTYPES, ConfigError)
        for name in ("dataset_options", "activation_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a table of options, got {getattr(self, name)!r}")
        for name, low in (("depth", 1), ("width", 1), ("branch_depth", 1), ("epochs", 1), ("batch_size", 1)):
            check_integer(name, getattr(self, name), low, error=ConfigError)
        for name in ("seed", "track_every", "checkpoint_every"):
            check_integer(name, getattr(self, name), 0, error=ConfigError)
        check_positive("lr", self.lr, ConfigError)
        check_real("alpha", self.alpha, 0, error=ConfigError)
        for name in ("weight_decay", "grad_clip"):
            check_real(name, getattr(self, name), 0, error=ConfigError)
        if not (is_finite_real(self.momentum) and 0.0 <= self.momentum < 1.0):
            raise ConfigError(f"momentum must be a number in [0, 1), got {self.momentum!r}")
        if self.target_loss is not None:
            check_positive("target_loss", self.target_loss, ConfigError)
        self._check_activation()
        self._check_init()

    def _check_activation(self) -> None:
        """Check the option names (listing all valid ones, a normalized activation's included),
        then their values (``nn.check_activation``, which builds no layer)."""
        if not isinstance(self.activation, str):
            raise ConfigError(f"activation must be a name, got {self.activation!r}")
        _check_activation_options(self.activation, self.activation_options)
        try:
            check_activation(self.activation, **self.activation_options)
        except (ValueError, TypeError) as exc:
            message = str(exc)
            prefix = (
                ""
                if message.startswith(("activation", "unknown activation"))
                else f"activation {self.activation!r}: "
            )
            raise ConfigError(prefix + message) from exc

    def _check_init(self) -> None:
        """Initialize a 1x1 weight with the scheme: ``nn.init`` names the valid schemes."""
        if not isinstance(self.init, str):
            raise ConfigError(f"init must be the name of an nn.init scheme, got {self.init!r}")
        try:
            # on the host: a name check must not depend on the current device (nor on TINYNORMACT_DEVICE)
            nn_init.initialize(Parameter(backend.np.zeros((1, 1)), device="cpu"), self.init, rng=0)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    # ----- conversion ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``TrainConfig(**d)`` rebuilds it)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "configuration") -> TrainConfig:
        """Build from a dict, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            names, valid = ", ".join(map(repr, unknown)), ", ".join(sorted(known))
            raise ConfigError(f"{source}: unknown key(s) {names}; valid keys are {valid}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` or ``.json`` file of TrainConfig fields."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from exc
        try:
            if path.suffix == ".toml":
                values = tomllib.loads(text.decode("utf-8"))
            elif path.suffix == ".json":
                values = json.loads(text)
            else:
                raise ConfigError(f"{path}: configuration files must end in .toml or .json")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a table of TrainConfig fields at the top level")
        return cls.from_dict(values, source=str(path))


def _check_activation_options(name: str, options: dict[str, Any]) -> None:
    """ConfigError naming the unknown keys of ``options`` and every valid one: the base
    activation's parameters and, for a normalized name "n<base>", NormalizedActivation's own."""
    base = normalized_base(name)
    try:
        parameters = list(activations.get(base or name).params)
    except ValueError:
        return  # an unknown name: building the activation names the valid ones
    own = list(normalization_options()) if base is not None else []
    unknown = sorted(set(options) - set(parameters) - set(own))
    if unknown:
        kinds = [f"{', '.join(own)} (normalization)"] if own else []
        kinds.append(
            f"{', '.join(parameters)} (of {base or name})"
            if parameters
            else f"none ({base or name} has no parameters)"
        )
        names = ", ".join(map(repr, unknown))
        raise ConfigError(f"activation {name!r} has no option {names}; valid options: {'; '.join(kinds)}")


def resume_conflicts(saved: TrainConfig, given: TrainConfig) -> list[str]:
    """One line per field that differs between the saved run and ``given`` and may not change
    on resume (every field but RESUMABLE_FIELDS; epochs too under the cosine schedule, whose
    length it sets). Empty when ``given`` may continue ``saved``."""
    conflicts = []
    for f in dataclasses.fields(TrainConfig):
        old, new = getattr(saved, f.name), getattr(given, f.name)
        if old == new:
            continue
        if f.name not in RESUMABLE_FIELDS:
            conflicts.append(f"{f.name}: the run has {old!r}, now {new!r}")
        elif f.name == "epochs" and saved.schedule == "cosine":
            conflicts.append(
                f"epochs: the run has {old!r}, now {new!r} (the cosine schedule is set by epochs)"
            )
    return conflicts
