"""Solutions to the exercises of tutorial 10 (the same code on a GPU), each one checked.

Run it like a tutorial: ``python tutorials/solutions/10_gpu.py``. Everything here runs on a CPU;
exercise 1 adds the GPU curve where CuPy and a GPU are present.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import numpy as np  # noqa: E402 (after the path)
import scipy.special  # noqa: E402
from _common import plt, show, size, strict_device  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import backend, losses, nn, optim  # noqa: E402
from tinynormact.data import DataLoader, teacher  # noqa: E402

splits = teacher(n_train=512, n_test=128, n_features=20, n_classes=10, seed=0)
strict = strict_device()


def training(device, dtype, steps):
    """The losses of ``steps`` SGD steps of tutorial 10's seeded model on ``device``."""
    previous = tn.get_device()
    tn.set_device(device)
    try:
        net = nn.MLP([20, 256, 256, 10], "ntanh", {"mode": "adaptive"}, dtype=dtype, rng=1)
        sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        loader, history = DataLoader(splits.train, batch_size=128, seed=0, device=device, dtype=dtype), []
        while len(history) < steps:
            for x, y in loader:
                loss = losses.softmax_cross_entropy(net(x), y)
                sgd.zero_grad()
                loss.backward()
                sgd.step()
                history.append(loss.item())
        return np.array(history[:steps]), net.state_dict()
    finally:
        tn.set_device(previous)


# Exercise 1: float32 against float64 over 100 steps. The curves lie on top of each other at
# first; the difference starts at float32's rounding (1e-7 relative) and grows slowly, because
# each step's rounding changes the weights a little and training amplifies small differences.
STEPS = size(100, 30)
curves = {dtype: training("cpu", dtype, STEPS)[0] for dtype in ("float64", "float32")}
gap = np.abs(curves["float32"] - curves["float64"]) / curves["float64"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for dtype, losses_ in curves.items():
    ax.plot(losses_, label=dtype)
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend()
show(fig, "solution_10_float32_vs_float64.png")
print(f"1. relative loss gap: step 0 {gap[0]:.1e}, last step {gap[-1]:.1e}")
assert gap[0] < 1e-5 and gap[-1] > gap[0]

# Exercise 2: after one step the weights differ between float32 and float64 by much less,
# relative to their size, than the gradients: the update changes each weight by lr * gradient,
# a small part of the weight, so the gradient's relative error reaches the weight scaled down by
# roughly |lr * gradient| / |weight|, plus float32's rounding of the weight itself (6e-8).
_, state64 = training("cpu", "float64", 1)
_, state32 = training("cpu", "float32", 1)
weights = [name for name in state64 if name.endswith("weight")]
worst = max(np.max(np.abs(state32[n] - state64[n])) / np.max(np.abs(state64[n])) for n in weights)
print(f"2. largest relative difference of the updated weights: {worst:.1e}")
assert worst < 1e-6

# Exercise 3: printing the loss copies its value to the host: one synchronisation (a
# 'transfer') per print.
previous = tn.get_device()
tn.set_device("strict")
net = nn.MLP([20, 64, 10], "tanh", rng=0)
sgd = optim.SGD(net.parameters(), lr=0.1)
batches = DataLoader(splits.train, batch_size=32, seed=0, device="strict")


def steps(print_every):
    with strict.count_syncs() as syncs:
        for step, (x, y) in zip(range(10), batches, strict=False):
            loss = losses.softmax_cross_entropy(net(x), y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            if step % print_every == 0:
                print(f"   step {step}: loss {loss}")
    return syncs


every_step, every_fifth = steps(1), steps(5)
tn.set_device(previous)
print(f"3. ten steps printing every step: {dict(every_step)}; every fifth: {dict(every_fifth)}")
assert sum(every_step.values()) == 10 and sum(every_fifth.values()) == 2

# Exercise 4: NumPy's np.add.at (an unbuffered in-place add where repeated indices accumulate)
# and scipy.special.erf have no CuPy twins of the same name: CuPy spells them
# cupyx.scatter_add and cupyx.scipy.special.erf. So the backend asks each device for its own
# (backend.register_device), and the strict device brings NumPy-backed versions of both.
target = np.zeros(5)
index, values = np.array([0, 2, 2, 4]), np.array([1.0, 2.0, 3.0, 4.0])
on_strict = tn.Tensor(np.zeros(5), device="strict").data
backend.scatter_add(
    on_strict, tn.Tensor(index, device="strict").data, tn.Tensor(values, device="strict").data
)
np.add.at(target, index, values)
np.testing.assert_array_equal(backend.to_numpy(on_strict), target)  # [1, 0, 5, 0, 4]: 2 + 3 at index 2
z = np.linspace(-3, 3, 13)
np.testing.assert_allclose(
    backend.to_numpy(backend.erf(tn.Tensor(z, device="strict").data)), scipy.special.erf(z)
)
print("4. scatter_add and erf on the strict device agree with np.add.at and scipy.special.erf")
