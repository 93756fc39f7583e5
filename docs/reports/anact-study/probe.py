"""Which reading of E16 keeps the full preset's 20-layer MLP training? (a fast probe, seed 0)

The full preset's 20-layer MLP (width 128, MNIST-1D 8000/2000, Adam 1e-3, batch 128) with
nswish and ntanh, 30 epochs, seed 0, one reading of the adaptive layer at a time (THEORY
E23-E29), beside vanilla. Prints the best and final test accuracy and the final train loss.
Its full output (9 readings x 2 activations, 30 epochs) has not been committed: it did not fit
the time left on the shared machine; the study (report.md) and the done-when check below are
the committed measurements.

    nice -n 10 python docs/reports/anact-study/probe.py [--epochs 30] [--seeds 0] [reading ...]

The done-when check of issue 21 (the default reading, seeds 0 and 1, 30 epochs, against vanilla)
is the grid done-when/grid.toml, run with ``tinynormact sweep``; its report is done-when/.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per process, as in sweeps

from tinynormact.experiments.presets import PRESETS  # noqa: E402
from tinynormact.train import train  # noqa: E402

READINGS = {
    "vanilla": None,
    "default": {},
    "batch (old default)": {"estimate": "batch"},
    "batch, lambda_bound=2": {"estimate": "batch", "lambda_bound": 2.0},
    "batch, running, momentum 0.99": {"estimate": "batch", "train_statistics": "running", "momentum": 0.99},
    "gaussian": {"estimate": "gaussian"},
    "gaussian, centred": {"estimate": "gaussian", "center": True},
    "output": {"estimate": "output"},
    "output, centred": {"estimate": "output", "center": True},
}


def probe(activation: str, reading: str, seed: int, epochs: int) -> str:
    form = "vanilla" if READINGS[reading] is None else "adaptive"
    spec = next(
        s
        for s in PRESETS["full"].runs("cpu")
        if (s.architecture, s.activation, s.form, s.seed) == ("mlp", activation, form, seed)
    )
    # center=False: the readings as probed, before the adaptive form centred by default
    options = {**spec.config.activation_options, "center": False, **(READINGS[reading] or {})}
    config = dataclasses.replace(spec.config, activation_options=options, epochs=epochs)
    try:
        history = train(config, progress=False).history
    except Exception as exc:  # a diverged run is a result here
        return f"{activation:5} | {reading:30} | seed {seed} | failed: {exc}"
    accuracy = history["test_acc"]
    return (
        f"{activation:5} | {reading:30} | seed {seed} | best test acc {max(accuracy):.3f} | "
        f"final test acc {accuracy[-1]:.3f} | final train loss {history['train_loss'][-1]:.4g}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("readings", nargs="*", help=f"some of: {', '.join(READINGS)} (default: all)")
    args = parser.parse_args()
    unknown = [r for r in args.readings if r not in READINGS]
    if unknown:
        parser.error(f"unknown reading(s) {unknown}; valid: {', '.join(READINGS)}")
    readings, seeds = args.readings or list(READINGS), [int(s) for s in args.seeds.split(",")]
    jobs = [(a, r, s, args.epochs) for r in readings for s in seeds for a in ("swish", "tanh")]
    with ProcessPoolExecutor(2) as pool:
        for line in pool.map(probe, *zip(*jobs, strict=True)):
            print(line, flush=True)
