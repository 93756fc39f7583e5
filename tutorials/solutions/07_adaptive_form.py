"""Solutions to the exercises of tutorial 7 (the adaptive form), each one checked.

Run it like a tutorial: ``python tutorials/solutions/07_adaptive_form.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import numpy as np  # noqa: E402 (after the path)
from _common import size  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import nn, theory  # noqa: E402
from tinynormact.theory import adaptive as adaptive_theory  # noqa: E402
from tinynormact.train import TrainConfig, TrainingDiverged, train  # noqa: E402

EPOCHS = size(10, 8)


def run(options: dict) -> object:
    """Tutorial 7's section 3: a 20-layer ntanh MLP of width 32 on the spirals, adaptive."""
    config = TrainConfig(
        dataset="spirals", dataset_options={"n_train": 1000, "n_test": 500}, activation="ntanh",
        activation_options={"mode": "adaptive", **options}, depth=20, width=32, epochs=EPOCHS,
        optimizer="adam", lr=2e-3, batch_size=64, seed=0,
    )  # fmt: skip
    try:
        return train(config, progress=False)
    except TrainingDiverged as exc:
        return exc.result


# Exercise 1: under the backward rule lambda^2 = 1 / d2(q) (E23), so F(q) = m2(q) / d2(q) (E26).
# tanh saturates: m2 -> 1 while d2(q) ~ (4/3) / sqrt(2 pi q) falls as 1/sqrt(q) (the integral of
# sech^4 is 4/3), so at large q F grows only as sqrt(q) and its slope falls as 1/sqrt(q): a q
# twice too large comes back about 1.4x too large, and less so layer after layer.
# The oracle is independent of the library's quadrature: a trapezoid sum over z on a fine grid
# and a central difference in q.
z = np.linspace(-12.0, 12.0, 400_001)
weight = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)


def backward_map(q: float) -> float:
    t = np.tanh(np.sqrt(q) * z)
    return np.trapezoid(t * t * weight, z) / np.trapezoid((1 - t * t) ** 2 * weight, z)


slopes = {}
for q in (1.0, 10.0, 100.0):
    library = float(adaptive_theory.adaptive_q_map_slope("tanh", q, rule="backward", estimate="batch"))
    oracle = (backward_map(q * 1.001) - backward_map(q / 1.001)) / (q * 1.001 - q / 1.001)
    assert abs(library - oracle) <= 1e-3 * oracle < abs(1.1 * library - oracle), (q, library, oracle)
    slopes[q] = library
print("1. backward-rule slope of ntanh's adaptive q-map:", {q: round(s, 3) for q, s in slopes.items()})
assert 1 > slopes[1.0] > slopes[10.0] > slopes[100.0] > 0
t = np.tanh(10.0 * z)  # q = 100: d2 against its large-q form
assert abs(np.trapezoid((1 - t * t) ** 2 * weight, z) * np.sqrt(2 * np.pi * 100) / (4 / 3) - 1) < 0.02
assert abs(slopes[10.0] / slopes[100.0] / np.sqrt(10) - 1) < 0.05, "the slope falls as 1/sqrt(q)"

# Exercise 2: the bound holds lambda at 2 lambda_static (the ceiling the monitor reads is the
# bound's, not 1/sqrt(eps)); the top layers reach it first, where E29 says q grows most, and
# the run still collapses (it learns to about 80% test accuracy, then loses most of it): outside
# the band the layer is a static form with 4x the weight variance (E28), which does not undo the
# growth of q under it.
bounded = run({"estimate": "batch", "lambda_bound": 2.0, "center": False})
ceiling = 2.0 * float(theory.normalization("tanh", "balanced", 1.0).lambda_)
at_ceiling = [f for f in bounded.flags if f["what"].startswith("lambda at its ceiling")]
first = min(at_ceiling, key=lambda f: (f["step"], f["layer"]))
print(f"2. {len(at_ceiling)} at ceiling {ceiling:.4g}; first layer {first['layer']}, step {first['step']}")
print(f"   final test accuracy {bounded.history['test_acc'][-1]:.2f}")
assert all(f"{ceiling:.4g}" in f["what"] for f in at_ceiling)
assert first["layer"] > 10, "the top half of the 20 layers reaches the bound first"
accuracy = bounded.history["test_acc"]
assert max(accuracy) > 0.7 and max(accuracy) - accuracy[-1] > 0.25, "the bound does not save the old reading"

# Exercise 3: both runs train; which ends higher changes with the number of epochs (compare the
# fast mode's 8 with the normal 10): the swing of one seed's last epoch, so one seed does not
# order them. Under the output estimate y = lambda_b phi(h) has mean(y^2) = lambda_s^2 m2(q_n) for
# every batch (E25): the layer's output cannot move along y itself (its own scale). With
# differentiate_lambda=True backward knows that, so an upstream gradient along y is removed
# entirely: the loss sum(y^2) / 2 is a constant of h, and its gradient is 0; with lambda held
# constant in backward (the default) the same loss has a gradient of order 1 per entry.
constant, through = run({}), run({"differentiate_lambda": True})
accuracies = [r.history["test_acc"][-1] for r in (constant, through)]
print(f"3. final test accuracy: lambda constant {accuracies[0]:.2f}, through lambda {accuracies[1]:.2f}")
assert min(accuracies) > 0.5

h = 1.7 * np.random.default_rng(0).standard_normal((64, 48))
norms = {}
for differentiate in (False, True):
    layer = nn.NormalizedActivation("tanh", mode="adaptive", differentiate_lambda=differentiate)
    x = tn.Tensor(h, requires_grad=True)
    y = layer(x)
    (y * y).sum().backward()
    norms[differentiate] = float(np.linalg.norm(x.grad))
print(f"   |d sum(y^2)/2 / dh|: lambda constant {norms[False] / 2:.3g}, through lambda {norms[True] / 2:.3g}")
assert norms[True] <= 1e-9 * norms[False] and norms[False] > 1.0
