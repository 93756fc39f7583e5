"""Grids of runs: the axes of a sweep and the settings its runs share, from a preset or a TOML file.

A ``Grid`` expands into one ``RunSpec`` per point of its axes, in a fixed order:
architecture x activation x form x width x depth x learning rate x seed. The form of an
activation is "vanilla" (phi), "static" (n<phi> with lambda from the Gaussian moments, THEORY
E15) or "adaptive" (n<phi> with lambda from batch statistics, E16); a grid's ``readings`` add
adaptive forms of its own, each a name and the options of ``NormalizedActivation`` it sets
(``readings = { adaptive-output = { estimate = "output" } }``). ``depths`` is either one list
for every architecture or a table ``{architecture = [depths]}`` (hidden layers for "mlp",
residual blocks for "resmlp"), so architectures of different kinds sit in one grid.

A grid file is TOML whose keys are the fields of ``Grid``; every key is optional except
``name``, and an unknown key or an empty axis is refused by name::

    name = "widths"
    description = "does normalization help more in narrow networks?"
    architectures = ["mlp"]
    activations = ["tanh", "swish"]
    forms = ["vanilla", "static"]
    widths = [16, 64]
    depths = [10]
    lrs = [0.001]
    seeds = [0, 1, 2]
    epochs = 5
    dataset = "mnist1d"
    dataset_options = { num_samples = 4000 }

The report groups runs by *setting*: the architecture, followed by the width, depth and
learning rate where the grid has more than one of them ("mlp w16", "resmlp d4 lr0.01").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynormact import theory
from tinynormact.infra.validation import check_integer
from tinynormact.nn.normalized import check_normalization_options, normalization_options, resolve_center
from tinynormact.train import ConfigError, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["AXES", "FORMS", "Grid", "GridError", "RunSpec", "config_hash", "load_grid"]

FORMS = ("vanilla", "static", "adaptive")
_NAME = re.compile(r"[^\W_][\w .-]*", re.ASCII)  # no separator, no leading dot: never a path
AXES = ("architectures", "activations", "forms", "widths", "depths", "lrs", "seeds")


class GridError(ValueError):
    """A grid (or grid file) is invalid; the message names the key and what is valid."""


def number_label(value: float) -> str:
    """``value`` as ``%g`` when that names it exactly (0.001, 1e-05), else its shortest exact form
    (0.0010000001): two settings never share a label."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def config_hash(config: TrainConfig) -> str:
    """SHA-256 of the configuration's canonical JSON: the identity of a run's numbers."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its coordinates, the setting it is reported under, its configuration."""

    architecture: str
    activation: str
    form: str
    width: int
    depth: int
    lr: float
    seed: int
    setting: str
    config: TrainConfig

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(setting, activation, form, seed): how the report and the run records name a run."""
        return (self.setting, self.activation, self.form, self.seed)

    @property
    def file_name(self) -> str:
        """The run's file in a sweep folder: its coordinates and the hash of its configuration."""
        coordinates = f"{self.architecture}_{self.activation}_{self.form}_w{self.width}_d{self.depth}"
        return f"{coordinates}_lr{number_label(self.lr)}_s{self.seed}_{config_hash(self.config)[:12]}.json"


@dataclass(frozen=True)
class Grid:
    """A named grid of runs. Axes (tuples, each non-empty): ``architectures``, ``activations``,
    ``forms``, ``widths``, ``depths`` (a tuple, or a dict architecture -> tuple), ``lrs``,
    ``seeds`` (the image ResNets "resnet20", "resnet50", ... read neither width nor depth: their
    name fixes the network). Shared settings: the dataset, ``epochs``, ``batch_size``,
    ``optimizer``, ``momentum`` (SGD), ``weight_decay``, ``schedule``, ``init``; ``rule``
    and ``center`` are the normalization options of the static and adaptive forms (``center``
    left out: each form's default, off for static and on for adaptive);
    ``readings`` name further adaptive forms (a form name -> the layer options it adds to
    mode="adaptive", THEORY E23-E29);
    ``target_loss`` is the train loss whose first crossing counts as "converged";
    ``propagation_*`` size the signal-propagation measurement at initialization."""

    name: str
    description: str = ""
    architectures: tuple[str, ...] = ("mlp", "resmlp")
    activations: tuple[str, ...] = ("relu", "tanh", "sigmoid", "swish", "gelu", "elu")
    forms: tuple[str, ...] = FORMS
    widths: tuple[int, ...] = (64,)
    depths: tuple[int, ...] | dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {"mlp": (10,), "resmlp": (4,)}
    )
    lrs: tuple[float, ...] = (1e-3,)
    seeds: tuple[int, ...] = (0, 1, 2)
    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    init: str = "lecun_normal"
    rule: str = "balanced"
    center: bool | None = None
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_loss: float = 1.0
    propagation_depth: int = 20
    propagation_width: int = 256
    propagation_batch: int = 256

    def __post_init__(self) -> None:
        for axis in AXES:  # lists are accepted and kept as tuples
            values = getattr(self, axis)
            if axis == "depths" and isinstance(values, dict):
                values = {arch: tuple(v) if isinstance(v, list) else v for arch, v in values.items()}
                object.__setattr__(self, axis, values)
                self._check_depth_table(values)
                continue
            if isinstance(values, list):
                values = tuple(values)
                object.__setattr__(self, axis, values)
            _check_axis(axis, values)
        self._check_readings()
        valid = (*FORMS, *self.readings)
        bad_forms = [f for f in self.forms if f not in valid]
        if bad_forms:
            raise GridError(f"forms: unknown form(s) {bad_forms}; valid forms: {', '.join(valid)}")
        _check_name(self.name)
        self._check_settings()

    def _check_settings(self) -> None:
        """The keys no run's configuration checks (a vanilla-only grid passes rule and center to
        none; the propagation measurement runs after every run): refused before the first run."""
        if not isinstance(self.description, str):
            raise GridError(f"description must be a string, got {self.description!r}")
        if self.rule not in theory.RULES:
            raise GridError(f"rule {self.rule!r} is unknown; valid: {', '.join(theory.RULES)}")
        if self.center is not None and not isinstance(self.center, bool):
            raise GridError(f"center must be true or false, got {self.center!r} (left out: each form's own)")
        for key in ("propagation_depth", "propagation_width", "propagation_batch"):
            try:
                check_integer(key, getattr(self, key), 1)
            except ConfigError as exc:
                raise GridError(str(exc)) from None

    def _check_depth_table(self, table: dict[str, Any]) -> None:
        missing = [a for a in self.architectures if a not in table]
        extra = [a for a in table if a not in self.architectures]
        if missing or extra:
            raise GridError(
                f"depths: the table must give the depths of each architecture {list(self.architectures)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; not in architectures: {extra}" if extra else "")
            )
        for arch, values in table.items():
            _check_axis(f"depths.{arch}", values)

    def _check_readings(self) -> None:
        if not isinstance(self.readings, dict):
            raise GridError(f"readings must be a table of form name -> options, got {self.readings!r}")
        for name, options in self.readings.items():
            if name in FORMS or not isinstance(options, dict) or "mode" in options:
                raise GridError(
                    f"readings: {name!r} must be a new form name (not {', '.join(FORMS)}) whose value "
                    f"is a table of adaptive options without 'mode', got {options!r}"
                )
            try:
                check_normalization_options(mode="adaptive", **options)
            except (TypeError, ValueError) as exc:
                raise GridError(f"readings.{name}: {exc}") from None

    def form_options(self, form: str) -> dict[str, Any]:
        """The ``NormalizedActivation`` options of a form ({} for "vanilla")."""
        if form == "vanilla":
            return {}
        mode = "static" if form == "static" else "adaptive"
        shared = {"rule": self.rule, "center": resolve_center(self.center, mode)}
        if form == "static":
            return {"mode": form, **shared}
        # the reading of E16 is part of a run's identity (its config hash), so a change of the
        # default reading makes old adaptive runs other runs, not the same ones resumed
        reading = {"estimate": normalization_options()["estimate"], **self.readings.get(form, {})}
        return {"mode": "adaptive", **shared, **reading}

    def centring(self) -> dict[str, bool]:
        """Whether each form of the grid centres (False for "vanilla")."""
        return {form: bool(self.form_options(form).get("center", False)) for form in self.forms}

    def depths_of(self, architecture: str) -> tuple[int, ...]:
        return tuple(self.depths[architecture] if isinstance(self.depths, dict) else self.depths)

    def with_seeds(self, seeds: int) -> Grid:
        """A copy with ``seeds`` seeds (0, 1, ..., seeds - 1)."""
        check_integer("seeds", seeds, 1, error=GridError)
        return dataclasses.replace(self, seeds=tuple(range(seeds)))

    def config(
        self,
        architecture: str,
        activation: str,
        form: str,
        width: int,
        depth: int,
        lr: float,
        seed: int,
        device: str = "cpu",
    ) -> TrainConfig:
        """The training configuration of one point of the grid."""
        return TrainConfig(
            dataset=self.dataset,
            dataset_options=dict(self.dataset_options),
            architecture=architecture,
            activation=activation if form == "vanilla" else "n" + activation,
            activation_options=self.form_options(form),
            depth=depth,
            width=width,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            init=self.init,
            seed=seed,
            device=device,
            target_loss=self.target_loss,
        )

    @property
    def size(self) -> int:
        """How many runs the grid has (counted without building them)."""
        per_point = len(self.activations) * len(self.forms) * len(self.seeds)
        return per_point * sum(
            len(self.widths) * len(self.depths_of(arch)) * len(self.lrs) for arch in self.architectures
        )

    def settings(self) -> list[str]:
        """The report's setting labels, one per (architecture, width, depth, lr) in grid order."""
        return list(dict.fromkeys(self._setting(*point) for point in self._points()))

    def _points(self) -> list[tuple[str, int, int, float]]:
        return [
            (arch, width, depth, lr)
            for arch in self.architectures
            for width in self.widths
            for depth in self.depths_of(arch)
            for lr in self.lrs
        ]

    def _setting(self, arch: str, width: int, depth: int, lr: float) -> str:
        varying = [
            f"w{width}" if len(self.widths) > 1 else "",
            f"d{depth}" if any(len(self.depths_of(a)) > 1 for a in self.architectures) else "",
            f"lr{number_label(lr)}" if len(self.lrs) > 1 else "",
        ]
        return " ".join([arch, *(part for part in varying if part)])

    def runs(self, device: str = "cpu") -> list[RunSpec]:
        """Every run of the grid, in a fixed order; a bad setting raises GridError naming it."""
        specs = []
        for arch, width, depth, lr in self._points():
            for act in self.activations:
                for form in self.forms:
                    for seed in self.seeds:
                        try:
                            config = self.config(arch, act, form, width, depth, lr, seed, device)
                        except ConfigError as exc:
                            raise GridError(f"grid {self.name!r}: {exc}") from None
                        setting = self._setting(arch, width, depth, lr)
                        specs.append(RunSpec(arch, act, form, width, depth, lr, seed, setting, config))
        return specs

    def to_dict(self) -> dict[str, Any]:
        """The grid as JSON-ready data (lists for tuples); ``Grid.from_dict`` rebuilds it."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "grid") -> Grid:
        """Build from a dict (a parsed grid file), refusing unknown keys and bad types by name."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise GridError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(known)}"
            )
        if "name" not in values:
            raise GridError(f'{source}: the grid needs a name (name = "...")')
        try:
            return cls(**values)
        except GridError as exc:
            raise GridError(f"{source}: {exc}") from None


def load_grid(path: str | Path) -> Grid:
    """Read a grid file (TOML); raise GridError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"cannot read grid file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{path}: not valid TOML: {exc}") from None
    return Grid.from_dict(values, source=str(path))


def _check_name(name: Any) -> None:
    """A grid's name is a label (it names the default folder runs/<name>), never a path."""
    if not isinstance(name, str) or not name.strip():
        raise GridError(f"name must be a non-empty string, got {name!r}")
    if not _NAME.fullmatch(name):
        raise GridError(
            f"name {name!r} is not a label: a grid's name may hold letters, digits, spaces and "
            "'.', '_', '-', starting with a letter or digit (it is not a path; choose the folder with --out)"
        )


def _check_axis(axis: str, values: Any) -> None:
    if not isinstance(values, tuple):
        raise GridError(f"axis {axis!r} must be a list of values, got {values!r}")
    if not values:
        raise GridError(f"axis {axis!r} is empty; give at least one value")
    nested = [v for v in values if isinstance(v, (list, dict))]
    if nested:
        raise GridError(f"axis {axis!r} holds {nested[0]!r}; its values are numbers or names")
    repeated = sorted(repr(v) for v, n in Counter(values).items() if n > 1)  # linear: axes can be long
    if repeated:
        raise GridError(f"axis {axis!r} repeats {', '.join(repeated)}")
