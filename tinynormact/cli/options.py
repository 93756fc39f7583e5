"""The argument parser: every subcommand's options, their help (defaults and valid names
shown) and examples. A subcommand's options are built, with the imports they need, only when it
is the command given (or for its help)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import textwrap
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import tinynormact
from tinynormact.cli import handlers
from tinynormact.cli.common import OPTION_FLAGS, PROG

TIMINGS = "docs/timings.md"  # where every time the project states is measured, once

_EXAMPLES = {
    "main": """examples:
  tinynormact reproduce                      # quick preset, report in runs/quick
  tinynormact sweep my_grid.toml --jobs 4    # a grid of your own, the same report
  tinynormact train --activation nswish --activation-option mode=adaptive --epochs 5
  tinynormact theory --activations relu tanh nswish
  tinynormact propagate --activations tanh ntanh --depth 30 --width 256
  tinynormact plot runs/quick
  tinynormact data download cifar10

Each subcommand's --help lists its options with their defaults and valid values.""",
    "reproduce": f"""examples:
  tinynormact reproduce                          # quick preset, 108 runs (its time: {TIMINGS})
  tinynormact reproduce --out runs/demo --force  # delete the folder's runs and start again
  tinynormact reproduce --preset full --scheduler tcp://10.0.0.5:8786   # on a Dask cluster
  tinynormact reproduce --preset full --device cuda --seeds 5 --out runs/full
  tinynormact reproduce --dataset-option num_samples=10000 --out runs/quick-10k   # 8000 train / 2000 test
  tinynormact reproduce --preset cifar10-quick      # needs: tinynormact data download cifar10
  tinynormact reproduce --preset cifar100-resnet --device cuda --dataset-option n_train=10000

Every finished run is written to the folder at once; the same command on the same folder
runs only the missing runs (after Ctrl-C, a crash or a lost worker).""",
    "sweep": """A grid file is TOML: axes (architectures, activations, forms, widths, depths, lrs, seeds)
and shared settings (dataset, dataset_options, epochs, batch_size, optimizer, rule, center,
target_loss, ...); see tinynormact.experiments.grid for every key.

examples:
  tinynormact sweep widths.toml                      # report in runs/<name of the grid>
  tinynormact sweep widths.toml --jobs 8 --out runs/widths
  TINYNORMACT_SCHEDULER=tcp://10.0.0.5:8786 tinynormact sweep widths.toml --device cuda
  tinynormact sweep widths.toml --resume             # finish a sweep that stopped""",
    "train": """Flags override the values of --config; unset fields keep the defaults shown above.

examples:
  tinynormact train --activation relu --depth 20 --epochs 5
  tinynormact train --activation nswish --activation-option mode=adaptive --activation-option rule=backward
  tinynormact train --dataset spirals --dataset-option n_train=500 --architecture resmlp --out runs/one
  tinynormact train --out runs/one --resume               # continue after Ctrl-C (saved config)
  tinynormact train --out runs/one --resume --epochs 20   # extend a finished run
  tinynormact train --dataset mnist --dataset-option path=/data/mnist    # the folder of MNIST's idx files""",
    "theory": """examples:
  tinynormact theory                                   # every registered activation at q = 1
  tinynormact theory --activations relu tanh nswish --q 2.0
  tinynormact theory --activations nsigmoid --rule backward --center""",
    "propagate": """examples:
  tinynormact propagate --activations tanh ntanh --depth 30 --width 256
  tinynormact propagate --activations relu nrelu nswish --mode adaptive --out propagation.png""",
    "plot": """examples:
  tinynormact plot runs/quick          # rewrites runs/quick/figures/*.png from results.json
  tinynormact plot runs/one            # a train --out folder: figures/tracking_*.png from tracking/""",
    "data": """The archive goes to --root, else ${variable}, else ~/.cache/tinynormact/data
(where the CIFAR loaders look); an interrupted download resumes when run again.

examples:
  tinynormact data download cifar10
  tinynormact data download cifar100 --root /data/cifar
  tinynormact data download cifar10 --mirror https://example.org/datasets --md5 HEX""",
}
_TRAIN_HELP = {
    "dataset": "dataset",
    "architecture": "network architecture",
    "activation": "activation, one of {names}; n<name> for its normalized form, e.g. nswish",
    "depth": "hidden layers (mlp, mlp-bn) or residual blocks (resmlp, resmlp-bn, resnet1d per stage)",
    "width": "units per hidden layer (channels of resnet1d's first stage)",
    "branch_depth": "activations per residual branch (resmlp, resmlp-bn)",
    "alpha": "residual branch scale",
    "init": "weight initializer, one of {names}",
    "epochs": "passes over the training set",
    "batch_size": "examples per step",
    "optimizer": "optimizer",
    "lr": "learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "learning-rate schedule",
    "grad_clip": "clip the global gradient norm to this, 0 for off",
    "seed": "random seed of weights and batch order",
    "device": "where to train",
    "dtype": "floating-point type",
    "track_every": "record per-layer variances every N steps, 0 for off; kept in OUT/tracking with --out",
    "target_loss": "train loss that counts as converged",
    "checkpoint_every": "with --out, write a checkpoint every N epochs, 0 for only at the end",
}
_OPTION_HELP = {
    "dataset_options": "an option of the dataset's loader (repeatable), e.g. num_samples=10000 for "
    "mnist1d, n_train=500 for spirals, path=DIR for mnist (default: the loader's)",
    "activation_options": "an option of the activation (repeatable), e.g. beta=2.0 for swish; for "
    "n<name>: mode=static|adaptive, rule=forward|backward|balanced, center=true (default: the "
    "activation's)",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _path(text: str) -> Path:
    """A file or folder name; an empty one (which Path reads as the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file or folder name, got {text!r}")
    return Path(text)


def _key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as JSON when it parses (2, 0.5, true) and as a string otherwise."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _grid_options(p: argparse.ArgumentParser) -> None:
    """The options of the subcommands that run a grid."""
    from tinynormact.engine.backend import devices
    from tinynormact.experiments.sweep import MAX_RUNS_UNASKED

    p.add_argument(
        "--device", choices=devices(), help="where to train (default: $TINYNORMACT_DEVICE, else cpu)"
    )
    p.add_argument("--out", type=_path, help="sweep folder (default: runs/<grid name>)")
    p.add_argument("--jobs", type=_positive_int, help="local workers (default: the CPU cores; 1 on cuda)")
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on this Dask cluster (default: $TINYNORMACT_SCHEDULER unless --jobs is given, "
        "else local workers)",
    )
    p.add_argument("--resume", action="store_true", help="require an existing sweep folder to finish")
    p.add_argument("--force", action="store_true", help="delete the sweep's runs and report and start again")
    p.add_argument("--yes", action="store_true", help=f"run a grid of more than {MAX_RUNS_UNASKED} runs")


def _reproduce_options(p: argparse.ArgumentParser) -> None:
    from tinynormact.experiments.presets import PRESETS

    presets = [
        textwrap.fill(g.description, 100, initial_indent=f"  {name}: ", subsequent_indent="    ")
        for name, g in PRESETS.items()
    ]
    p.epilog = "presets:\n" + "\n".join(presets) + "\n\n" + _EXAMPLES["reproduce"]
    p.add_argument("--preset", choices=list(PRESETS), default="quick", help="grid of runs (default: quick)")
    p.add_argument("--seeds", type=_positive_int, help="number of seeds, 0 to N-1 (default: the preset's)")
    _grid_options(p)
    p.add_argument(
        "--dataset-option",
        dest="dataset_options",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="change one of the preset's dataset options (repeatable): num_samples=N for mnist1d "
        "(quick, full, cnn-quick), n_train=N, n_test=N or path=DIR for cifar10 and cifar100 "
        "(default: the preset's)",
    )
    p.set_defaults(handler=handlers.reproduce_command)


def _sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", type=Path, help="grid file (TOML)")
    _grid_options(p)
    p.set_defaults(handler=handlers.sweep_command)


def _train_flag_help(name: str, default: Any) -> str:
    """The help of one TrainConfig flag: what it means, its valid names where they are many,
    and its default."""
    from tinynormact.nn.init import INITIALIZERS
    from tinynormact.theory import activations

    names = {"activation": activations.names(), "init": list(INITIALIZERS)}.get(name, [])
    shown = "$TINYNORMACT_DEVICE, else cpu" if name == "device" else "none" if default is None else default
    return _TRAIN_HELP[name].format(names=", ".join(names)) + f" (default: {shown})"


def _train_options(p: argparse.ArgumentParser) -> None:
    from tinynormact.data import DATASETS
    from tinynormact.engine import backend
    from tinynormact.train.config import ARCHITECTURES, DTYPES, OPTIMIZERS, SCHEDULES, TrainConfig

    choices = {
        "dataset": list(DATASETS),
        "architecture": ARCHITECTURES,
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "device": backend.devices(),
        "dtype": DTYPES,
    }
    p.add_argument("--config", type=_path, help="TOML or JSON file of TrainConfig fields (default: none)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in OPTION_FLAGS:
            flag_options = dict(dest=f.name, type=_key_value, action="append", metavar="KEY=VALUE")
            p.add_argument(OPTION_FLAGS[f.name], help=_OPTION_HELP[f.name], **flag_options)
            continue
        kind = _positive_float if f.name == "target_loss" else type(f.default)
        help_text = _train_flag_help(f.name, f.default)
        p.add_argument(flag, type=kind, choices=choices.get(f.name), help=help_text)
    p.add_argument(
        "--out",
        type=_path,
        help="folder for config.json, checkpoint.npz, result.json, tracking/ (default: none)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out with its saved configuration (flags may change only "
        "epochs, checkpoint-every and target-loss)",
    )
    p.set_defaults(handler=handlers.train_command)


def _activations_option(p: argparse.ArgumentParser, default: str | None) -> None:
    """--activations NAME ...: listing every valid name; required when ``default`` is None."""
    from tinynormact.theory import activations

    names = ", ".join(activations.names())
    p.add_argument(
        "--activations",
        nargs="+",
        metavar="NAME",
        required=default is None,
        help=f"activations among {names}; n<name> for a normalized one ({default or 'required'})",
    )


def _theory_options(p: argparse.ArgumentParser) -> None:
    from tinynormact import theory

    _activations_option(p, default="default: all of them")
    p.add_argument("--q", type=_positive_float, default=1.0, help="input second moment (default: 1)")
    p.add_argument(
        "--rule",
        choices=theory.RULES,
        default="balanced",
        help="rule of n<name> activations (default: balanced)",
    )
    p.add_argument("--center", action="store_true", help="centre n<name> activations")
    p.set_defaults(handler=handlers.theory_command)


def _propagate_options(p: argparse.ArgumentParser) -> None:
    _activations_option(p, default=None)
    p.add_argument("--depth", type=_positive_int, default=20, help="hidden layers (default: 20)")
    p.add_argument("--width", type=_positive_int, default=256, help="units per layer (default: 256)")
    p.add_argument("--batch", type=_positive_int, default=256, help="inputs (default: 256)")
    p.add_argument(
        "--mode", choices=("static", "adaptive"), default="static", help="mode of n<name> (default: static)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--out", type=_path, help="also draw the figure to this file, .png, .svg or .pdf (default: none)"
    )
    p.set_defaults(handler=handlers.propagate_command)


def _plot_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=_path, help="a folder of reproduce, or of train --out with --track-every")
    p.set_defaults(handler=handlers.plot_command)


def _data_options(p: argparse.ArgumentParser) -> None:
    from tinynormact.data.cache import DATA_ROOT_VARIABLE
    from tinynormact.data.download import ARCHIVES

    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    epilog = _EXAMPLES["data"].format(variable=DATA_ROOT_VARIABLE)
    p.epilog = epilog
    p = actions.add_parser(
        "download",
        help="download a dataset's archive, verified",
        description="download a dataset's official archive, verify its published MD5",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", choices=list(ARCHIVES), help="dataset")
    p.add_argument(
        "--root",
        type=Path,
        help=f"folder for the archive (default: ${DATA_ROOT_VARIABLE}, else ~/.cache/tinynormact/data)",
    )
    p.add_argument(
        "--mirror",
        metavar="URL",
        help="base URL serving the archive under its official name (default: the official server)",
    )
    p.add_argument("--md5", metavar="HEX", help="the MD5 to expect (default: the published one)")
    p.add_argument(
        "--timeout", type=_positive_float, default=30.0, help="seconds to wait on the server (default: 30)"
    )
    p.set_defaults(handler=handlers.data_download_command)


# name: (one-line help, the function adding its options and handler)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "reproduce": ("run the paper's comparisons and write a report", _reproduce_options),
    "sweep": ("run a grid of runs from a TOML file and write a report", _sweep_options),
    "train": ("train one configuration", _train_options),
    "theory": ("print the gains (THEORY E5-E7, E12-E14) and stability (E19-E22)", _theory_options),
    "propagate": ("signal propagation at initialization, measured vs theory", _propagate_options),
    "plot": ("redraw the figures of a reproduction or of a run's tracking record", _plot_options),
    "data": ("dataset files", _data_options),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. Every subcommand is named in it; those in ``commands`` (default:
    every one) get their options, built with the imports they need, so that ``tinynormact
    --help`` (no command) loads no array library."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Normalized activation functions (arXiv 2208.13315): theory, training, reproduction.",
        epilog=_EXAMPLES["main"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {tinynormact.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_options) in COMMANDS.items():
        p = subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if commands is None or name in commands:
            add_options(p)
    return parser
