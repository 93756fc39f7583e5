"""The ``tinynormact`` command (also ``python -m tinynormact``).

Subcommands: ``reproduce`` (the paper's comparisons and a report), ``sweep`` (a grid file, the
same report), ``train`` (one
configuration), ``theory`` (the gains table), ``propagate`` (signal propagation at
initialization), ``plot`` (redraw a report's figures) and ``data download`` (fetch a dataset's
archive). ``main(argv)`` returns the exit code (EXIT_CODES): 0 on success, 1 when training
diverged, 2 for a usage or input error (one line on stderr, no traceback; a run folder in use by
another process included), 3 for an unexpected error (one line on stderr naming a log file that
holds the traceback), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tinynormact
from tinynormact import nn, theory
from tinynormact.data import download
from tinynormact.data.cache import DATA_ROOT_VARIABLE
from tinynormact.data.download import ARCHIVES
from tinynormact.engine import backend
from tinynormact.engine.backend import np
from tinynormact.experiments import PRESETS, load_grid, load_results
from tinynormact.experiments.command import run_grid_command
from tinynormact.experiments.figures import write_figures
from tinynormact.experiments.propagation import STATISTICS, measure_network
from tinynormact.experiments.report import format_table
from tinynormact.infra.files import RunNotice
from tinynormact.infra.folder_lock import FolderLocked
from tinynormact.infra.memory import mlp_bytes, require_memory
from tinynormact.theory import activations
from tinynormact.tracking import plots
from tinynormact.tracking.records import read_record
from tinynormact.train import (
    ARCHITECTURES,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    saved_config,
    train,
)
from tinynormact.train.loop import TRACKING_FOLDER

__all__ = ["EXIT_CODES", "build_parser", "main"]

PROG = "tinynormact"
EXIT_CODES = {"ok": 0, "diverged": 1, "usage": 2, "unexpected": 3, "interrupted": 130}
_EXAMPLES = {
    "main": """examples:
  tinynormact reproduce                      # quick preset, report in runs/quick
  tinynormact sweep my_grid.toml --jobs 4    # a grid of your own, the same report
  tinynormact train --activation nswish --activation-option mode=adaptive --epochs 5
  tinynormact theory --activations relu tanh nswish
  tinynormact propagate --activations tanh ntanh --depth 30 --width 256
  tinynormact plot runs/quick
  tinynormact data download cifar10""",
    "reproduce": """examples:
  tinynormact reproduce                          # quick preset (about 1 minute on 2 CPU cores)
  tinynormact reproduce --out runs/demo --force  # start again in an existing folder
  tinynormact reproduce --preset full --scheduler tcp://10.0.0.5:8786   # on a Dask cluster
  tinynormact reproduce --preset full --device cuda --seeds 5 --out runs/full
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
    "train": """Flags override the values of --config; unset fields keep TrainConfig's defaults.

examples:
  tinynormact train --activation relu --depth 20 --epochs 5
  tinynormact train --activation nswish --activation-option mode=adaptive --activation-option rule=backward
  tinynormact train --dataset spirals --dataset-option n_train=500 --architecture resmlp --out runs/one
  tinynormact train --out runs/one --resume               # continue after Ctrl-C (saved config)
  tinynormact train --out runs/one --resume --epochs 20   # extend a finished run""",
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
    "data": f"""The archive goes to --root, else ${DATA_ROOT_VARIABLE}, else ~/.cache/tinynormact/data
(where the CIFAR loaders look); an interrupted download resumes when run again.

examples:
  tinynormact data download cifar10
  tinynormact data download cifar100 --root /data/cifar
  tinynormact data download cifar10 --mirror https://example.org/datasets --md5 HEX""",
}

_TRAIN_HELP = {
    "dataset": "dataset name",
    "architecture": "network architecture",
    "activation": "activation name; n<name> for a normalized one (nswish)",
    "depth": "hidden layers (mlp) or residual blocks (resmlp)",
    "width": "units per hidden layer",
    "branch_depth": "activations per residual branch",
    "alpha": "residual branch scale",
    "init": "weight initializer (lecun_normal, xavier_normal, kaiming_normal, orthogonal, ...)",
    "epochs": "passes over the training set",
    "batch_size": "examples per step",
    "optimizer": "optimizer",
    "lr": "learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "learning-rate schedule",
    "grad_clip": "clip the global gradient norm to this (0: off)",
    "seed": "random seed of weights and batch order",
    "device": "cpu or cuda (default: TINYNORMACT_DEVICE, else cpu)",
    "dtype": "float32 or float64",
    "track_every": "record per-layer variances every N steps (0: off; with --out, to OUT/tracking)",
    "target_loss": "train loss that counts as converged",
    "checkpoint_every": "write a checkpoint every N epochs (with --out)",
}
_OPTION_FLAGS = {"dataset_options": "--dataset-option", "activation_options": "--activation-option"}
_HISTORY_COLUMNS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "train_acc": "train acc",
    "test_loss": "test loss",
    "test_acc": "test acc",
}
_CHOICES = {
    "architecture": ARCHITECTURES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "dtype": ("float32", "float64"),
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


def _subparser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _grid_options(p: argparse.ArgumentParser) -> None:
    """The options of the subcommands that run a grid."""
    p.add_argument(
        "--device", choices=backend.devices(), help="where to train (default: TINYNORMACT_DEVICE, else cpu)"
    )
    p.add_argument("--out", type=_path, help="sweep folder (default: runs/<grid name>)")
    p.add_argument("--jobs", type=_positive_int, help="local workers (default: CPU cores; 1 on cuda)")
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on this Dask cluster (default: $TINYNORMACT_SCHEDULER unless --jobs is given)",
    )
    p.add_argument("--resume", action="store_true", help="require an existing sweep folder to finish")
    p.add_argument("--force", action="store_true", help="delete the folder's runs and start again")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Normalized activation functions (arXiv 2208.13315): theory, training, reproduction.",
        epilog=_EXAMPLES["main"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {tinynormact.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _subparser(subparsers, "reproduce", "run the paper's comparisons and write a report")
    p.add_argument("--preset", choices=list(PRESETS), default="quick", help="grid of runs (default: quick)")
    p.add_argument("--seeds", type=_positive_int, help="number of seeds (default: the preset's)")
    _grid_options(p)
    p.add_argument(
        "--dataset-option",
        dest="dataset_options",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="change one of the preset's dataset options (repeatable), e.g. n_train=2000 or path=DIR",
    )
    p.set_defaults(handler=_reproduce)

    p = _subparser(subparsers, "sweep", "run a grid of runs from a TOML file and write a report")
    p.add_argument("grid", type=Path, help="grid file (TOML)")
    _grid_options(p)
    p.set_defaults(handler=_sweep)

    p = _subparser(subparsers, "train", "train one configuration")
    p.add_argument("--config", type=_path, help="TOML or JSON file of TrainConfig fields")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in _OPTION_FLAGS:
            help_text = f"one entry of {f.name} (repeatable)"
            flag_options = dict(dest=f.name, type=_key_value, action="append", metavar="KEY=VALUE")
            p.add_argument(_OPTION_FLAGS[f.name], help=help_text, **flag_options)
            continue
        kind = _positive_float if f.name == "target_loss" else type(f.default)
        choices = backend.devices() if f.name == "device" else _CHOICES.get(f.name)
        p.add_argument(flag, type=kind, choices=choices, help=_TRAIN_HELP[f.name])
    p.add_argument("--out", type=_path, help="folder for config.json, checkpoint.npz, result.json, tracking/")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out with its saved configuration (flags may change only "
        "epochs, checkpoint-every and target-loss)",
    )
    p.set_defaults(handler=_train)

    p = _subparser(subparsers, "theory", "print the gains (THEORY E5-E7, E12-E14) and stability (E19-E22)")
    p.add_argument("--activations", nargs="+", metavar="NAME", help="activations, n<name> for normalized")
    p.add_argument("--q", type=_positive_float, default=1.0, help="input second moment (default: 1)")
    p.add_argument("--rule", choices=theory.RULES, default="balanced", help="rule of n<name> activations")
    p.add_argument("--center", action="store_true", help="centre n<name> activations")
    p.set_defaults(handler=_theory)

    p = _subparser(subparsers, "propagate", "signal propagation at initialization, measured vs theory")
    p.add_argument("--activations", nargs="+", metavar="NAME", required=True, help="activation names")
    p.add_argument("--depth", type=_positive_int, default=20, help="hidden layers (default: 20)")
    p.add_argument("--width", type=_positive_int, default=256, help="units per layer (default: 256)")
    p.add_argument("--batch", type=_positive_int, default=256, help="inputs (default: 256)")
    p.add_argument("--mode", choices=("static", "adaptive"), default="static", help="mode of n<name>")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", type=_path, help="also draw the figure to this file (.png, .svg, .pdf)")
    p.set_defaults(handler=_propagate)

    p = _subparser(subparsers, "plot", "redraw the figures of a reproduction or of a run's tracking record")
    p.add_argument("run_dir", type=_path, help="a folder of reproduce, or of train --out with --track-every")
    p.set_defaults(handler=_plot)

    p = subparsers.add_parser("data", help="dataset files", description="dataset files")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "download",
        help="download a dataset's archive, verified",
        description="download a dataset's official archive, verify its published MD5",
        epilog=_EXAMPLES["data"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", choices=list(ARCHIVES), help="dataset")
    p.add_argument("--root", type=Path, help=f"folder for the archive (default: ${DATA_ROOT_VARIABLE})")
    p.add_argument("--mirror", metavar="URL", help="base URL serving the archive under its official name")
    p.add_argument("--md5", metavar="HEX", help="the MD5 to expect instead of the published one")
    p.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds to wait on the server")
    p.set_defaults(handler=_data_download)
    return parser


# ----- the subcommands ------------------------------------------------------------------------------


def _reproduce(args: argparse.Namespace) -> int:
    grid = PRESETS[args.preset]
    if args.seeds is not None:
        grid = grid.with_seeds(args.seeds)
    if args.dataset_options:
        options = {**grid.dataset_options, **dict(args.dataset_options)}
        grid = dataclasses.replace(grid, dataset_options=options)
    return run_grid_command(grid, args.out, args.device, args.jobs, args.scheduler, args.force, args.resume)


def _sweep(args: argparse.Namespace) -> int:
    grid = load_grid(args.grid)
    return run_grid_command(grid, args.out, args.device, args.jobs, args.scheduler, args.force, args.resume)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """--config (or, with --resume, the run's saved config.json), then the flags given; the device
    defaults to TINYNORMACT_DEVICE (else cpu)."""
    values = saved_config(args.out).to_dict() if args.resume else {"device": backend.get_device()}
    if args.config:
        values.update(TrainConfig.from_file(args.config).to_dict())
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = {**values.get(f.name, {}), **dict(given)} if f.name in _OPTION_FLAGS else given
    return TrainConfig.from_dict(values, source="command line")


def _train(args: argparse.Namespace) -> int:
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
    with _interrupts_ignored():  # the run is complete and saved: a Ctrl-C now loses nothing
        columns = [result.history[key] for key in _HISTORY_COLUMNS]
        rows = [
            [_epoch_label(epoch), *(f"{v:.4f}" for v in values)]
            for epoch, *values in zip(*columns, strict=True)
        ]
        print(format_table(list(_HISTORY_COLUMNS.values()), rows))
        if config.target_loss is not None:
            print(f"epochs to train loss {config.target_loss}: {result.epochs_to_target or 'not reached'}")
    return 0


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C within the block (main thread only: elsewhere Python delivers no signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _epoch_label(epoch: int) -> str:
    return f"{epoch} (untrained)" if epoch == 0 else str(epoch)


def _activation_for_theory(name: str, rule: str, q: float, center: bool) -> activations.ActivationFunction:
    if nn.factory.normalized_base(name) is None:
        return activations.get(name)
    return nn.activation(name, rule=rule, q=q, center=center).function


def _theory(args: argparse.Namespace) -> int:
    names = args.activations or activations.names()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")  # an overflow in the integrals makes the table wrong
        acts = [_activation_for_theory(name, args.rule, args.q, args.center) for name in names]
        table = theory.gains_table(acts, q=args.q)
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
    if args.out:
        plots.check_figure_path(args.out)  # before the computation, not after it
    widths = [args.width] * (args.depth + 1)
    require_memory(mlp_bytes(widths, args.batch, 8), f"{args.depth} layers of width {args.width}")
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
    results = load_results(run_dir)
    try:
        return write_figures(results, run_dir / "figures")
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        what = f"has no entry {exc}" if isinstance(exc, KeyError) else f"has a malformed entry ({exc})"
        where = run_dir / "results.json"
        raise UsageError(f"{where} {what}; it is not a complete record of {PROG} reproduce") from None


def _plot(args: argparse.Namespace) -> int:
    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir} is a file; give the folder written by {PROG} reproduce")
    tracking = args.run_dir / TRACKING_FOLDER
    if tracking.is_dir():  # a training run's streamed tracker record
        names = plots.write_tracking_figures(read_record(tracking), args.run_dir / "figures")
    else:
        names = _reproduction_figures(args.run_dir)
    for name in names:
        print(args.run_dir / "figures" / name)
    return 0


def _data_download(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]) and return the exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RunNotice)
            warnings.showwarning = _show_notice
            return handler(args)
    except KeyboardInterrupt as exc:
        _error(f"interrupted{': ' + str(exc) if str(exc) else ''}")
        return EXIT_CODES["interrupted"]
    except TrainingDiverged as exc:
        _error(str(exc))
        return EXIT_CODES["diverged"]
    except (UsageError, ValueError, OSError, ImportError, backend.DeviceError, FolderLocked) as exc:
        _error(str(exc))
        return EXIT_CODES["usage"]
    except Exception as exc:  # a bug or an exhausted resource: say so, keep the traceback in a log
        what = "out of memory" if isinstance(exc, MemoryError) else f"unexpected {type(exc).__name__}: {exc}"
        _error(f"{what}; the traceback is in {_log_unexpected(exc)}")
        return EXIT_CODES["unexpected"]
