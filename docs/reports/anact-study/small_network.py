"""The suite's small network at two learning rates: the old reading, and the output estimate
uncentred and centred (the default).

The regression test's configuration (tests/test_adaptive_health.py and tutorial 7's section 3:
a 20-layer ntanh MLP of width 32 on the spirals, 1000 examples, Adam, batch 64, 10 epochs) at
lr 2e-3 (the test's) and 3e-3, seeds 0-3. Prints one line per run: final test accuracy, final
train loss and the number of health flags. Its output is small_network.txt.

    nice -n 10 python docs/reports/anact-study/small_network.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tinynormact.train import TrainConfig, TrainingDiverged, train  # noqa: E402

READINGS = {
    "old (estimate=batch)": {"estimate": "batch", "center": False},
    "output, uncentred": {"center": False},
    "output, centred (default)": {},
}


def run(lr: float, seed: int, options: dict) -> str:
    config = TrainConfig(
        dataset="spirals", dataset_options={"n_train": 1000, "n_test": 500}, activation="ntanh",
        activation_options={"mode": "adaptive", **options}, depth=20, width=32, epochs=10,
        optimizer="adam", lr=lr, batch_size=64, seed=seed,
    )  # fmt: skip
    try:
        result = train(config, progress=False)
    except TrainingDiverged as exc:
        result = exc.result
    accuracy, loss = result.history["test_acc"][-1], result.history["train_loss"][-1]
    return f"test accuracy {accuracy:.3f}, train loss {loss:.3f}, flags {len(result.flags)}"


def main() -> None:
    for lr in (2e-3, 3e-3):
        for seed in range(4):
            for name, options in READINGS.items():
                print(f"lr {lr:g} | seed {seed} | {name:26s} | {run(lr, seed, options)}", flush=True)


if __name__ == "__main__":
    main()
