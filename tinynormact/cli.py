"""The ``tinynormact`` command (also ``python -m tinynormact``).

Subcommands: ``reproduce`` (the paper's comparisons and a report), ``sweep`` (a grid file, the
same report), ``train`` (one configuration), ``theory`` (the gains table), ``propagate`` (signal
propagation at initialization), ``plot`` (redraw a report's figures) and ``data download``
(fetch a dataset's archive). ``main(argv)`` returns the exit code (EXIT_CODES): 0 on success, 1
when training diverged, 2 for a usage or input error (one line on stderr, no traceback; a run
folder in use by another process included), 3 for an unexpected error (one line on stderr
naming a log file that holds the traceback), 130 after Ctrl-C.

Each subcommand imports what it needs when it runs (or when its options are built, for its
help): ``tinynormact --help`` loads no array library, and only the commands that draw load
Matplotlib, only the sweeps Dask, only ``data download`` the downloader.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import textwrap
import traceback
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import tinynormact

__all__ = ["EXIT_CODES", "build_parser", "main"]

PROG = "tinynormact"
EXIT_CODES = {"ok": 0, "diverged": 1, "usage": 2, "unexpected": 3, "interrupted": 130}
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

# What each train flag means; "{names}" is filled with the valid values where a list is long.
_TRAIN_HELP = {
    "dataset": "dataset",
    "architecture": "network architecture",
    "activation": "activation, one of {names}; n<name> for its normalized form, e.g. nswish",
    "depth": "hidden layers (mlp) or residual blocks (resmlp, resnet1d per stage)",
    "width": "units per hidden layer (channels of resnet1d's first stage)",
    "branch_depth": "activations per residual branch (resmlp)",
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
_OPTION_FLAGS = {"dataset_options": "--dataset-option", "activation_options": "--activation-option"}
_OPTION_HELP = {
    "dataset_options": "an option of the dataset's loader (repeatable), e.g. num_samples=10000 for "
    "mnist1d, n_train=500 for spirals, path=DIR for mnist (default: the loader's)",
    "activation_options": "an option of the activation (repeatable), e.g. beta=2.0 for swish; for "
    "n<name>: mode=static|adaptive, rule=forward|backward|balanced, center=true (default: the "
    "activation's)",
}
_HISTORY_COLUMNS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "train_acc": "train acc",
    "test_loss": "test loss",
    "test_acc": "test acc",
}


class UsageError(Exception):
    """A command-line mistake found after parsing (reported like argparse's own errors)."""


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
    p.set_defaults(handler=_reproduce)


def _sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", type=Path, help="grid file (TOML)")
    _grid_options(p)
    p.set_defaults(handler=_sweep)


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
        if f.name in _OPTION_FLAGS:
            flag_options = dict(dest=f.name, type=_key_value, action="append", metavar="KEY=VALUE")
            p.add_argument(_OPTION_FLAGS[f.name], help=_OPTION_HELP[f.name], **flag_options)
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
    p.set_defaults(handler=_train)


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
    p.set_defaults(handler=_theory)


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
    p.set_defaults(handler=_propagate)


def _plot_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=_path, help="a folder of reproduce, or of train --out with --track-every")
    p.set_defaults(handler=_plot)


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
    p.set_defaults(handler=_data_download)


# name: (one-line help, the function adding its options and handler)
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
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
    for name, (help_text, add_options) in _COMMANDS.items():
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


# ----- the subcommands ------------------------------------------------------------------------------


def _reproduce(args: argparse.Namespace) -> int:
    from tinynormact.experiments.command import run_grid_command

    grid = _reproduction_grid(args)
    return run_grid_command(
        grid, args.out, args.device, args.jobs, args.scheduler, args.force, args.resume, args.yes
    )


def _reproduction_grid(args: argparse.Namespace) -> Any:
    """The grid ``reproduce`` runs: the preset with the --seeds and --dataset-option given."""
    from tinynormact.experiments.presets import PRESETS

    grid = PRESETS[args.preset]
    if args.seeds is not None:
        grid = grid.with_seeds(args.seeds)
    if args.dataset_options:
        options = {**grid.dataset_options, **dict(args.dataset_options)}
        grid = dataclasses.replace(grid, dataset_options=options)
    return grid


def _sweep(args: argparse.Namespace) -> int:
    from tinynormact.experiments.command import run_grid_command
    from tinynormact.experiments.grid import load_grid

    grid = load_grid(args.grid)
    return run_grid_command(
        grid, args.out, args.device, args.jobs, args.scheduler, args.force, args.resume, args.yes
    )


def _train_config(args: argparse.Namespace) -> Any:
    """--config (or, with --resume, the run's saved config.json), then the flags given; the device
    defaults to TINYNORMACT_DEVICE (else cpu), read only when neither names one."""
    from tinynormact.engine import backend
    from tinynormact.train import TrainConfig, saved_config

    values = saved_config(args.out).to_dict() if args.resume else {}
    if args.config:
        values.update(TrainConfig.from_file(args.config).to_dict())
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = {**values.get(f.name, {}), **dict(given)} if f.name in _OPTION_FLAGS else given
    if "device" not in values:
        values["device"] = backend.get_device()
    return TrainConfig.from_dict(values, source="command line")


def _train(args: argparse.Namespace) -> int:
    from tinynormact.train import TrainingInterrupted, train
    from tinynormact.train.context import interrupts_ignored

    if args.resume and args.out is None:
        raise UsageError("--resume needs --out, the folder of the run to continue")
    config = _train_config(args)
    if config.track_every and args.out is None:
        _notice(f"--track-every {config.track_every} without --out: the variance record is not kept")
    try:
        result = train(config, out_dir=args.out, resume=args.resume, announce=print)
    except TrainingInterrupted as exc:
        if exc.checkpoint is None:
            raise KeyboardInterrupt(f"{exc}; nothing was saved to resume from") from None
        hint = f"continue with: {PROG} train --out {args.out} --resume"
        raise KeyboardInterrupt(f"{exc}, saved in {exc.checkpoint}; {hint}") from None
    with interrupts_ignored():  # the run is complete and saved: a Ctrl-C now loses nothing
        _print_history(result.history)
        if config.target_loss is not None:
            print(f"epochs to train loss {config.target_loss}: {result.epochs_to_target or 'not reached'}")
        if args.out is not None:
            written = sorted(
                p.name + "/" * p.is_dir() for p in args.out.iterdir() if not p.name.startswith(".")
            )
            print(f"run folder: {args.out} ({', '.join(written)})")
    return 0


def _print_history(history: dict[str, list[float]]) -> None:
    from tinynormact.experiments.report import format_table

    columns = [history[key] for key in _HISTORY_COLUMNS]
    rows = [
        [_epoch_label(epoch), *(f"{v:.4f}" for v in values)] for epoch, *values in zip(*columns, strict=True)
    ]
    print(format_table(list(_HISTORY_COLUMNS.values()), rows))


def _epoch_label(epoch: int) -> str:
    return f"{epoch} (untrained)" if epoch == 0 else str(epoch)


def _activation_for_theory(name: str, rule: str, q: float, center: bool) -> Any:
    from tinynormact import nn
    from tinynormact.theory import activations

    if nn.factory.normalized_base(name) is None:
        return activations.get(name)
    return nn.activation(name, rule=rule, q=q, center=center).function


def _theory(args: argparse.Namespace) -> int:
    from tinynormact import theory
    from tinynormact.engine.backend import np
    from tinynormact.theory import activations

    names = args.activations or activations.names()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")  # an overflow in the integrals makes the table wrong
        try:
            acts = [_activation_for_theory(name, args.rule, args.q, args.center) for name in names]
            table = theory.gains_table(acts, q=args.q)
        except ZeroDivisionError:  # a moment that underflows to 0 leaves lambda undefined (E12-E14)
            raise UsageError(
                f"--q {args.q} is too small: a Gaussian moment underflows to 0, so lambda is undefined; "
                "use a larger q"
            ) from None
    overflowed = [
        f"{key} of {row['activation']}"
        for row in table
        for key, value in row.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    if overflowed or caught:
        what = ", ".join(overflowed[:3]) or str(caught[0].message)
        raise UsageError(
            f"--q {args.q} is too large: the Gaussian integrals overflow ({what}); use a lower q"
        )
    print(f"gains at q = {args.q} (rho, rho' and kappa: THEORY E5-E7; lambda per rule: E12-E14)")
    print(theory.format_gains_table(table))
    print(
        f"\nstability of the forward map q -> sigma_w^2 m2(q) (E8) with sigma_w^2 = 1, no bias: "
        f"slopes chi_q (E19) and chi (E20) at q = {args.q}, every fixed point (E22; stable: chi_q < 1) "
        "with its depth scale xi_q = 1 / |log chi_q| (E21)"
    )
    print(theory.format_stability_table(theory.activation_stability(acts, q=args.q)))
    return 0


def _propagate(args: argparse.Namespace) -> int:
    from tinynormact import nn
    from tinynormact.experiments.propagation import STATISTICS, measure_network
    from tinynormact.experiments.report import format_table
    from tinynormact.infra.memory import mlp_bytes, require_memory

    if args.out:
        from tinynormact.tracking import plots

        plots.check_figure_path(args.out)  # before the computation, not after it
    estimate = mlp_bytes(args.width, args.width, args.depth - 1, args.width, args.batch, 8)
    require_memory(estimate, f"{args.depth} layers of width {args.width}")
    measured, predicted = {}, {}
    for name in args.activations:
        vanilla = nn.factory.normalized_base(name) is None
        form = "vanilla" if vanilla else args.mode
        options = {} if vanilla else {"mode": args.mode}
        record = measure_network(name, options, args.depth, args.width, args.batch, args.seed)
        measured[name] = record["measured"]
        kinds = ("measured",) if form == "adaptive" else ("measured", "theory")  # adaptive: no E8-E9
        if form != "adaptive":
            predicted[name] = record["theory"]
        note = " (measured only: an adaptive lambda has no closed form)" if form == "adaptive" else ""
        size = f"{args.depth} hidden layers of width {args.width}, batch {args.batch}"
        print(f"\n{name} ({form}), {size}{note}")
        stability = record["stability"]
        if form != "adaptive" and stability["unstable"]:
            fixed = ", ".join(f"{q:.3g}" for q in stability["unstable_fixed_points"]) or "none near q0"
            print(
                f"E8 is unstable at the start (THEORY E19, E22): chi_q(q0) = {stability['chi_q']:.3f}, "
                f"unstable fixed points {fixed}; measured batch means leave the theory at depth"
            )
        header = ["layer", *(f"{s} {kind}" for s in STATISTICS for kind in kinds)]
        layers = range(len(record["measured"][STATISTICS[0]]))
        rows = [[str(l + 1), *(f"{record[k][s][l]:.4g}" for s in STATISTICS for k in kinds)] for l in layers]
        print(format_table(header, rows))
    if args.out:
        plots.plot_signal_propagation(measured, predicted, path=args.out)
        print(f"\nfigure: {args.out}")
    return 0


def _reproduction_figures(run_dir: Path) -> list[str]:
    from tinynormact.experiments import load_results
    from tinynormact.experiments.figures import write_figures

    results = load_results(run_dir)
    try:
        return write_figures(results, run_dir / "figures")
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        what = f"has no entry {exc}" if isinstance(exc, KeyError) else f"has a malformed entry ({exc})"
        where = run_dir / "results.json"
        raise UsageError(f"{where} {what}; it is not a complete record of {PROG} reproduce") from None


def _plot(args: argparse.Namespace) -> int:
    from tinynormact.train.run import TRACKING_FOLDER

    run_dir = args.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} is a file; give the folder written by {PROG} reproduce")
    tracking = run_dir / TRACKING_FOLDER
    if tracking.is_dir():  # a training run's streamed tracker record
        from tinynormact.tracking import plots
        from tinynormact.tracking.records import read_record

        names = plots.write_tracking_figures(read_record(tracking), run_dir / "figures")
    elif (run_dir / "config.json").is_file() and not (run_dir / "results.json").exists():
        raise UsageError(
            f"{run_dir} is a train run recorded without --track-every: it has no tracking record "
            f"({tracking}) to draw. Record one in a new folder with the same configuration: "
            f"{PROG} train --config {run_dir / 'config.json'} --track-every 10 --out {run_dir}-tracked"
        )
    else:
        names = _reproduction_figures(run_dir)
    for name in names:
        print(run_dir / "figures" / name)
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from tinynormact.data.download import download

    path = download(args.dataset, args.root, mirror=args.mirror, md5=args.md5, timeout=args.timeout)
    print(path)
    return 0


# ----- main -------------------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _notice(message: str) -> None:
    print(f"{PROG}: notice: {message}", file=sys.stderr)


def _show_notice(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """warnings.showwarning for the command line: RunNotice as one notice line, others as usual."""
    from tinynormact.infra.files import RunNotice

    if issubclass(category, RunNotice):
        _notice(str(message))
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def _log_unexpected(exc: BaseException) -> str:
    """Write the traceback of ``exc`` to a new log file; return the file's path."""
    handle, path = tempfile.mkstemp(prefix=f"{PROG}-error-", suffix=".log")
    with os.fdopen(handle, "w") as log:
        log.write(f"{PROG} {tinynormact.__version__}, command line: {sys.argv!r}\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=log)
    return path


def _exit_code(exc: Exception) -> str:
    """The EXIT_CODES key of an exception a command ended with. The package's own RuntimeErrors
    are imported here, when one was raised, not at start."""
    if isinstance(exc, UsageError | ValueError | OSError | ImportError):
        return "usage"
    if isinstance(exc, RuntimeError):
        from tinynormact.engine.backend import DeviceError
        from tinynormact.infra.folder_lock import FolderLocked
        from tinynormact.train.health import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            return "diverged"
        if isinstance(exc, DeviceError | FolderLocked):
            return "usage"
    return "unexpected"


def _command_of(argv: Sequence[str]) -> list[str]:
    """The subcommand ``argv`` names, if any: its first word (the main parser's options exit)."""
    return [argv[0]] if argv and argv[0] in _COMMANDS else []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # building the command's options imports what it needs: a Ctrl-C can come here too
        args = build_parser(_command_of(argv)).parse_args(argv)
    except KeyboardInterrupt:
        _error("interrupted while starting; nothing was done")
        return EXIT_CODES["interrupted"]
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        from tinynormact.infra.files import RunNotice

        with warnings.catch_warnings():
            warnings.simplefilter("always", RunNotice)
            warnings.showwarning = _show_notice
            return handler(args)
    except KeyboardInterrupt as exc:
        _error(f"interrupted{': ' + str(exc) if str(exc) else ''}")
        return EXIT_CODES["interrupted"]
    except Exception as exc:
        code = _exit_code(exc)
        if code == "unexpected":  # a bug or an exhausted resource: say so, keep the traceback in a log
            what = (
                "out of memory" if isinstance(exc, MemoryError) else f"unexpected {type(exc).__name__}: {exc}"
            )
            _error(f"{what}; the traceback is in {_log_unexpected(exc)}")
        else:
            _error(str(exc))
        return EXIT_CODES[code]
