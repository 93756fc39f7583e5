"""Solutions to the exercises of tutorial 6 (tracking gradient variance), each one checked.

Run it like a tutorial: ``python tutorials/solutions/06_tracking.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import OUT, fit, plt, show, size  # noqa: E402

from tinynormact import nn, optim, theory, tracking  # noqa: E402
from tinynormact.data import load_dataset  # noqa: E402

splits = load_dataset("mnist1d")
EPOCHS = size(6, 2)
WIDTHS = [40] + [64] * 10 + [10]


def train(activation, optimizer, every=5, epochs=EPOCHS):
    """Tutorial 6's network and loop; the tracker, the epoch losses and the seconds per epoch."""
    model = nn.MLP(WIDTHS, activation, rng=0)
    started = time.perf_counter()
    with tracking.VarianceTracker(model, every=every) as tracker:
        history = fit(model, optimizer(model.parameters()), splits.train, epochs)
    return tracker, history, (time.perf_counter() - started) / epochs, model


def adam(parameters):
    return optim.Adam(parameters, lr=1e-3)


# Exercise 1: tanh and ntanh. E11 still predicts the step-0 spread (the product of kappa(q_l)),
# now a spread *above* 1: tanh's kappa > 1 makes the first layers' gradients the larger ones.
# Both train; normalization keeps q_l near 1 instead of letting it decay.
runs = {name: train(name, adam) for name in ("tanh", "ntanh")}
for name, act in (("tanh", "tanh"), ("ntanh", theory.normalized("tanh"))):
    w = runs[name][0].to_dict()["weight_grad_sq"]
    profile = theory.mlp_profile(act, WIDTHS)
    expected = profile.weight_grad_sq[0] / profile.weight_grad_sq[-2]
    print(
        f"1. {name}: spread {w[0, 0] / w[0, -2]:.3g}, E11 {expected:.3g}; losses {np.round(runs[name][1], 3)}"
    )
    assert 0.5 < (w[0, 0] / w[0, -2]) / expected < 2.0 and expected > 1
    assert runs[name][1][-1] < math.log(10) - 0.2  # it trains

# Exercise 2: the tracker's cost, and that detaching removes every hook. (Times depend on the
# machine and its load; only the hooks are asserted.)
tracked = train("tanh", adam, every=1, epochs=1)
untracked_model = nn.MLP(WIDTHS, "tanh", rng=0)
started = time.perf_counter()
fit(untracked_model, adam(untracked_model.parameters()), splits.train, 1)
print(
    f"2. one epoch: {tracked[2]:.2f} s tracked at every step, {time.perf_counter() - started:.2f} s untracked"
)
model = tracked[3]
assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
assert all(p.graph_node().hooks == () for p in model.parameters())
print("2. after the with block the model carries no hook: the cost is gone")

# Exercise 3: SGD with momentum. Neither sigmoid network trains: both stay at ln 10. The
# vanilla one's first layers get gradients 1e-11 times smaller than its last ones, and even the
# normalized one's 3e-5 is too much spread for a step proportional to the gradient (momentum
# only multiplies it by about 1/(1 - 0.9) = 10). Adam trains both because it rescales each
# parameter's step by its own gradient's size. The tanh network, whose spread is of order 1
# (exercise 1), trains with SGD too.
sgd = {
    name: train(name, lambda p: optim.SGD(p, lr=0.05, momentum=0.9))[1]
    for name in ("sigmoid", "nsigmoid", "tanh")
}
print("3. SGD with momentum:", {name: np.round(h, 3).tolist() for name, h in sgd.items()})
for name in ("sigmoid", "nsigmoid"):
    assert all(abs(value - math.log(10)) < 0.05 for value in sgd[name][1:]), name
assert sgd["tanh"][-1] < math.log(10) - 0.4

# Exercise 4: the noise fraction over training, from a record read back from disk.
runs["tanh"][0].to_json(OUT / "solution_06_tracker_tanh.json")
record = tracking.read_json(OUT / "solution_06_tracker_tanh.json")
fraction = record["weight_grad_var"] / record["weight_grad_sq"]
fig, ax = plt.subplots(figsize=(6, 3.6))
for layer in range(fraction.shape[1]):
    ax.plot(record["step"], fraction[:, layer], color=plt.cm.viridis(layer / fraction.shape[1]), lw=1)
ax.set_xlabel("training step")
ax.set_ylabel("Var / E[g^2]")
ax.set_title("tanh MLP: noise fraction of the per-example weight gradients, per layer")
show(fig, "solution_06_noise_fraction.png")
assert np.all((fraction >= 0) & (fraction <= 1 + 1e-6))  # a variance never exceeds the second moment
print(f"4. noise fraction from {fraction[0].mean():.2f} (step 0) to {fraction[-1].mean():.2f} (last step)")
