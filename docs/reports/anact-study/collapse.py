"""What breaks in the old reading (raw batch gains): the full preset's 20-layer MLP, tracked.

nswish and ntanh with ``estimate="batch"`` (the old default), seed 0, the full preset's config
for 16 epochs (swish collapsed in epoch 13 there): per layer over training the batch lambda, the
running lambda, q = E[h^2], the fraction of active units (|phi'| >= 0.1) from
``train.adaptive_health``, and the Frobenius norm of each Linear's weights; the run's flags.
Writes figures/collapse_<activation>.png and prints the flags and the final accuracy; its output
is collapse.txt.

    nice -n 10 python docs/reports/anact-study/collapse.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tinynormact import nn  # noqa: E402
from tinynormact.experiments.presets import PRESETS  # noqa: E402
from tinynormact.train import Trainer, load_data  # noqa: E402

HERE = Path(__file__).resolve().parent
EPOCHS = 16


def tracked_run(activation: str) -> str:
    spec = next(
        s
        for s in PRESETS["full"].runs("cpu")
        if (s.architecture, s.activation, s.form, s.seed) == ("mlp", activation, "adaptive", 0)
    )
    options = {**spec.config.activation_options, "estimate": "batch", "center": False}
    config = dataclasses.replace(spec.config, activation_options=options, epochs=EPOCHS)
    trainer = Trainer(config, load_data(config))
    linears = [m for m in trainer.model.modules() if isinstance(m, nn.Linear)]
    layers = [m for m in trainer.model.modules() if isinstance(m, nn.NormalizedActivation)]
    norms, running = [], []
    trainer.record_epoch(0.0)
    for _ in range(EPOCHS):
        start = time.perf_counter()
        for x, y in trainer.batches():
            trainer.train_step(x, y)
        trainer.finish_epoch(time.perf_counter() - start)
        norms.append([float(np.linalg.norm(m.weight.numpy())) for m in linears])
        running.append([layer.lambda_ for layer in layers])
    record = trainer.health.record()
    figure(activation, record, np.array(norms), np.array(running), len(trainer.loader))
    lines = [f"{activation}: test accuracy per epoch {np.round(trainer.history['test_acc'], 3).tolist()}"]
    flags = trainer.health.flags()
    lines += [f"  flag: layer {f['layer']} step {f['step']} (epoch {f['epoch']}): {f['what']}" for f in flags]
    return "\n".join(lines)


def figure(activation: str, record: dict, norms: np.ndarray, running: np.ndarray, per_epoch: int) -> None:
    fig = Figure(figsize=(14, 7), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    epochs = record["step"] / per_epoch
    panels = [
        ("batch lambda", record["lambda"], epochs, "log"),
        ("q = E[h^2]", record["q"], epochs, "log"),
        ("active fraction (|phi'| >= 0.1)", record["active"], epochs, "linear"),
        ("running lambda (evaluation)", running, np.arange(1, len(running) + 1), "log"),
        ("weight norm |W|_F", norms, np.arange(1, len(norms) + 1), "log"),
    ]
    for ax, (title, values, x, scale) in zip(axes, panels, strict=False):
        for layer in range(0, values.shape[1], 4):
            ax.plot(x, values[:, layer], label=f"layer {layer + 1}")
        ax.set(title=title, xlabel="epoch", yscale=scale)
    axes[0].legend(fontsize="small")
    axes[-1].set_visible(False)
    fig.suptitle(f"n{activation}, old reading (estimate='batch'): the full preset's 20-layer MLP, seed 0")
    (HERE / "figures").mkdir(exist_ok=True)
    fig.savefig(HERE / "figures" / f"collapse_{activation}.png", dpi=100)


if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:
        for text in pool.map(tracked_run, sys.argv[1:] or ["swish", "tanh"]):
            print(text, flush=True)
