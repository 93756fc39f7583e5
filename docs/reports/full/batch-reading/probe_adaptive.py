"""Which option of the adaptive form (E16) keeps the full preset's 20-layer MLP training?

The full preset's adaptive MLPs all ended at chance. This reruns two of them (swish and tanh,
seeds 0 and 1, the preset's exact configuration) with one option of the layer changed at a
time, on 2 processes (about 5 minutes on 2 cores), and prints the best and the final test
accuracy and the final train loss of each run. Its output of 2026-11-30 is probe_adaptive.txt.

    python docs/reports/full/batch-reading/probe_adaptive.py
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per process, as in sweeps

from tinynormact.experiments.presets import PRESETS  # noqa: E402
from tinynormact.train import train  # noqa: E402

OPTIONS = {
    "default (batch statistics, lambda constant in backward)": {},
    "train_statistics=running": {"train_statistics": "running"},
    "differentiate_lambda=True": {"differentiate_lambda": True},
    "center=True": {"center": True},
    "rule=forward": {"rule": "forward"},
}


def probe(activation: str, option: str, seed: int) -> str:
    spec = next(
        s
        for s in PRESETS["full"].runs("cpu")
        if (s.architecture, s.activation, s.form, s.seed) == ("mlp", activation, "adaptive", seed)
    )
    options = {**spec.config.activation_options, **OPTIONS[option]}
    history = train(dataclasses.replace(spec.config, activation_options=options), progress=False).history
    accuracy = history["test_acc"]
    return (
        f"{activation:5} | {option:55} | seed {seed} | best test acc {max(accuracy):.3f} | "
        f"final test acc {accuracy[-1]:.3f} | final train loss {history['train_loss'][-1]:.4g}"
    )


if __name__ == "__main__":
    jobs = [(a, o, s) for a in ("swish", "tanh") for o in OPTIONS for s in (0, 1)]
    with ProcessPoolExecutor(2) as pool:
        for line in pool.map(probe, *zip(*jobs, strict=True)):
            print(line, flush=True)
