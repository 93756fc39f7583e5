"""The subcommands: each handler takes the parsed arguments and returns the exit code. Each
imports what it needs when it runs."""

from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

from tinynormact.cli.common import OPTION_FLAGS, PROG, UsageError, notice

_HISTORY_COLUMNS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "train_acc": "train acc",
    "test_loss": "test loss",
    "test_acc": "test acc",
}


def reproduce_command(args: argparse.Namespace) -> int:
    from tinynormact.experiments.command import run_grid_command

    grid = reproduction_grid(args)
    return run_grid_command(
        grid, args.out, args.device, args.jobs, args.scheduler, args.force, args.resume, args.yes
    )


def reproduction_grid(args: argparse.Namespace) -> Any:
    """The grid ``reproduce`` runs: the preset with the --seeds and --dataset-option given."""
    from tinynormact.experiments.presets import PRESETS

    grid = PRESETS[args.preset]
    if args.seeds is not None:
        grid = grid.with_seeds(args.seeds)
    if args.dataset_options:
        options = {**grid.dataset_options, **dict(args.dataset_options)}
        grid = dataclasses.replace(grid, dataset_options=options)
    return grid


def sweep_command(args: argparse.Namespace) -> int:
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
            values[f.name] = {**values.get(f.name, {}), **dict(given)} if f.name in OPTION_FLAGS else given
    if "device" not in values:
        values["device"] = backend.get_device()
    return TrainConfig.from_dict(values, source="command line")


def train_command(args: argparse.Namespace) -> int:
    from tinynormact.train import TrainingInterrupted, train
    from tinynormact.train.context import interrupts_ignored

    if args.resume and args.out is None:
        raise UsageError("--resume needs --out, the folder of the run to continue")
    config = _train_config(args)
    if config.track_every and args.out is None:
        notice(f"--track-every {config.track_every} without --out: the variance record is not kept")
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


def theory_command(args: argparse.Namespace) -> int:
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


def propagate_command(args: argparse.Namespace) -> int:
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


def plot_command(args: argparse.Namespace) -> int:
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


def data_download_command(args: argparse.Namespace) -> int:
    from tinynormact.data.download import download

    path = download(args.dataset, args.root, mirror=args.mirror, md5=args.md5, timeout=args.timeout)
    print(path)
    return 0
