# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 10: The same code on a GPU
#
# Everything in tinynormact runs on an NVIDIA GPU through [CuPy](https://cupy.dev), a library
# with NumPy's interface whose arrays live in GPU memory. Because CuPy mirrors NumPy, the
# library can use *one* code path for both: every operation asks for the array module of its
# inputs (`numpy` or `cupy`) and calls the same function on it. The only module that imports
# NumPy or CuPy as an array provider is `tinynormact/engine/backend.py`; read it first, it is short.
#
# In this tutorial you will learn
#
# - how to switch devices (one flag), and what the flag does;
# - how tensors, models and data move between devices;
# - what changes on a GPU (where arrays live, speed, the last digits of sums) and what does not
#   (the code, the seeds, the initial weights, the theory);
# - why copies to the host ("synchronisations") are what makes GPU code slow, counted on the
#   *strict device*, a stand-in for a GPU that runs on any CPU.
#
# **Without a GPU.** Most of this tutorial runs anywhere. The first cell says once whether this
# machine has CuPy and a GPU; where it has not, the cells that need one do nothing and the
# comparisons a CPU can make run instead: float32 against float64 on the CPU, and the strict
# device's counts of host synchronisations. No GPU has been lent to this project so far, so no
# GPU timing appears in this tutorial or its README; on a GPU machine the cells below measure
# and draw one. To install CuPy: `pip install -e ".[gpu]"` for CUDA 12 (it brings
# `cupy-cuda12x`) or `".[gpu-cuda13]"` for CUDA 13 (`cupy-cuda13x`); `nvidia-smi` prints your
# driver's CUDA version.

# %%
import time

import numpy as np
from _common import plt, show, size, strict_device

import tinynormact as tn
from tinynormact import backend, losses, nn, optim, tracking
from tinynormact.data import DataLoader, teacher

try:
    backend.xp("cuda")  # imports CuPy and looks for a GPU; raises DeviceError saying what is missing
    GPU = True
    print("CuPy and a GPU are available: the GPU cells will run.")
except backend.DeviceError as error:
    GPU = False
    print(f"No GPU here, so the GPU cells do nothing; the CPU comparisons run instead. Why: {error}")

# %% [markdown]
# ## 1. The flag
#
# The current device decides where *new* tensors are created:
#
# - `tn.set_device("cuda")` or `tn.set_device("cpu")` in code, or
# - the environment variable `TINYNORMACT_DEVICE=cuda`, read when the first array is made, so
#   a whole script moves to the GPU without editing it:
#   `TINYNORMACT_DEVICE=cuda python my_script.py`. The command line tool takes `--device cuda`
#   (its default is the variable), and the test suite `pytest --device cuda`.
#
# Asking for `cuda` on a machine without CuPy or without a GPU raises one `DeviceError` that
# says what is missing and how to install it; that is the message printed above when there
# is no GPU. `backend.xp()` is the array module of the current device; each array knows
# its own module through `backend.get_array_module(array)`.

# %%
print("current device:", tn.get_device())
print("array module of the current device:", backend.xp().__name__)
t = tn.Tensor([1.0, 2.0, 3.0])
print("a new tensor lives on:", t.device, "| its data is a", type(t.data).__module__, type(t.data).__name__)

# %% [markdown]
# ## 2. Moving tensors, models and data
#
# - `t.to("cuda")` returns the tensor on the GPU (itself when it is already there); `t.numpy()`
#   always gives a NumPy copy on the host, which is what you print, plot or save.
# - `model.to("cuda")` moves every parameter and buffer *in place*, so an optimizer built
#   before the move keeps working. `model.state_dict()` always returns host NumPy arrays, so a
#   checkpoint saved on a GPU loads on a CPU and vice versa.
# - `DataLoader(dataset, batch_size, device="cuda")` moves the whole dataset to the device once,
#   when it is built, and then yields batches that are already there.
#
# Random numbers are drawn **on the host** with NumPy and then moved (`backend.default_rng`), so
# a seed gives bit-for-bit the same initial weights and the same batch order on every device.
# And `tinynormact.theory` always runs on the host with NumPy and SciPy: it computes a few
# numbers per activation, which a GPU would not speed up.
#
# These cells run on the CPU everywhere; they show the API.

# %%
model = nn.MLP([20, 64, 64, 10], "nswish", rng=0)
model.to("cpu")  # a no-op here: already on the CPU
checkpoint = model.state_dict()
print("state_dict values are", type(next(iter(checkpoint.values()))).__name__, "on the host")

splits = teacher(n_train=512, n_test=128, n_features=20, n_classes=10, seed=0)
loader = DataLoader(splits.train, batch_size=128, seed=0, device="cpu")
x_batch, y_batch = next(iter(loader))
print("a batch:", x_batch.shape, x_batch.dtype, "on", backend.device_of(x_batch))

# %% [markdown]
# ## 3. One training step on both devices, and in both precisions
#
# Here is the check that matters: build the same network from the same seed on both devices,
# take one SGD step on the same batch, and compare the loss, every gradient and every updated
# weight. In float64 the two should agree to about $10^{-12}$ relative: the devices add numbers
# in different orders (different matrix-multiplication kernels), and floating-point addition is
# not associative, so the last few bits differ; nothing else may. We assert a relative
# tolerance of $10^{-9}$ in float64, and of $10^{-4}$ in float32, whose unit roundoff is
# $6 \times 10^{-8}$ and whose sums over hundreds of terms lose a few more digits.
#
# The same $10^{-4}$ is what float32 costs against float64 on *one* device, and that a CPU can
# check: one step in float32 against the same step in float64, both on the CPU. Run the cell
# and you see the difference a GPU run in float32 may show against your CPU reference. The
# network uses an *adaptive* normalized activation, so its running statistics (buffers) are
# compared too.


# %%
def one_step(device, dtype):
    """Loss, gradients and updated state after one SGD step of a seeded model on ``device``."""
    previous = tn.get_device()
    tn.set_device(device)
    try:
        net = nn.MLP([20, 256, 256, 10], "ntanh", {"mode": "adaptive"}, dtype=dtype, rng=1)
        data = DataLoader(splits.train, batch_size=128, seed=0, device=device, dtype=dtype)
        x, y = next(iter(data))
        sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        loss = losses.softmax_cross_entropy(net(x), y)
        sgd.zero_grad()
        loss.backward()
        grads = {name: backend.to_numpy(p.grad) for name, p in net.named_parameters()}
        sgd.step()
        return loss.item(), grads, net.state_dict()
    finally:
        tn.set_device(previous)


def compare(reference, other, rtol):
    """Assert that two one_step results agree to ``rtol``; return the largest gradient difference."""
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = reference, other
    np.testing.assert_allclose(loss_b, loss_a, rtol=rtol)
    worst = 0.0
    for name in grads_a:
        scale = np.max(np.abs(grads_a[name]))
        np.testing.assert_allclose(grads_b[name], grads_a[name], rtol=rtol, atol=rtol * scale)
        worst = max(worst, np.max(np.abs(grads_b[name] - grads_a[name])) / scale)
    for name in state_a:
        scale = max(np.max(np.abs(state_a[name])), 1e-30)
        np.testing.assert_allclose(state_b[name], state_a[name], rtol=rtol, atol=rtol * scale)
    return worst


cpu64, cpu32 = one_step("cpu", "float64"), one_step("cpu", "float32")
worst = compare(cpu64, cpu32, rtol=1e-4)
print(
    f"CPU, float32 vs float64: loss {cpu32[0]:.8f} vs {cpu64[0]:.8f}; largest gradient difference {worst:.1e}"
)
assert worst > 1e-9  # float32 really is less precise: the float64 tolerance would reject it
if GPU:
    for dtype, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        reference = cpu64 if dtype == "float64" else cpu32
        worst = compare(reference, one_step("cuda", dtype), rtol)
        print(f"{dtype}: CPU vs GPU, largest gradient difference {worst:.1e}")
    print("CPU and GPU agree after one training step, in float64 and float32")

# %% [markdown]
# ## 4. Host synchronisations, counted on the strict device
#
# A GPU runs asynchronously: Python queues kernels and moves on. Whenever the host needs a
# *value* (`loss.item()`, `float(t)`, `if (t > 0).any():`, printing a tensor, `t.numpy()`), it
# must wait for the queue to drain and copy the result back: a **host synchronisation**. One per
# step is harmless; one per layer per step is what makes a GPU run slow.
#
# You can count them without a GPU. The test suite's **strict device**
# (`tests/strict_device.py`, run with `pytest --device strict`) is NumPy underneath with CuPy's
# rules on top: its arrays refuse implicit conversion to NumPy, refuse to mix with NumPy arrays,
# and count every synchronisation by kind. Its numbers are NumPy's bit for bit. We take the
# training step of section 3 on it and count: the step itself (forward, backward, update) must
# make **none**, `loss.item()` exactly one, and a step with the variance tracker of tutorial 6
# exactly one as well (a `transfer`: the tracker reduces every statistic of every layer on the
# device and copies them in one go).

# %%
strict = strict_device()
on_strict = one_step("strict", "float64")
compare(cpu64, on_strict, rtol=0)  # bit for bit the CPU's numbers
print("the strict device's step equals the CPU's bit for bit")

previous = tn.get_device()
tn.set_device("strict")
net = nn.MLP([20, 256, 256, 10], "ntanh", {"mode": "adaptive"}, dtype="float64", rng=1)
batches = iter(DataLoader(splits.train, batch_size=128, seed=0, device="strict", dtype="float64"))
sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)


def strict_step():
    x, y = next(batches)
    loss = losses.softmax_cross_entropy(net(x), y)
    sgd.zero_grad()
    loss.backward()
    sgd.step()
    return loss


with strict.count_syncs() as step_syncs:
    loss = strict_step()
with strict.count_syncs() as item_syncs:
    loss.item()
with strict.count_syncs() as tracked_syncs, tracking.VarianceTracker(net, every=1):
    strict_step()
tn.set_device(previous)
print(
    "one step:", dict(step_syncs), "| loss.item():", dict(item_syncs), "| tracked step:", dict(tracked_syncs)
)
assert sum(step_syncs.values()) == 0
assert dict(item_syncs) == {"item": 1}
assert dict(tracked_syncs) == {"transfer": 1}

# %% [markdown]
# Try changing `strict_step` to print the loss every step (`print(loss)`), or to skip the update
# when the loss is not finite (`if not np.isfinite(loss.item()): ...`), and count again: each is
# one more synchronisation per step.
#
# ## 5. When does the GPU pay off?
#
# A GPU runs thousands of arithmetic units in parallel, but every operation costs a fixed
# launch overhead of several microseconds, and our engine launches a handful of kernels per
# layer. So a GPU can only win once the matrix products are large enough to hide that overhead.
# Below we time one training step (forward, backward, SGD update) of a 4-layer MLP as the width
# grows, in float32 and in float64 on the CPU, and on the GPU too where there is one. Calling
# `loss.item()` copies the loss to the host, which waits until the GPU has finished: without
# such a synchronisation you would time only the kernel launches. (The times are whatever your
# machine gives today; nothing asserts them.)


# %%
def seconds_per_step(device, width, dtype="float32", repeats=5):
    """Median time of a training step of a [width] * 5 MLP with a batch of 256."""
    previous = tn.get_device()
    tn.set_device(device)
    try:
        net = nn.MLP([width] * 5, "relu", dtype=dtype, rng=0)
        sgd = optim.SGD(net.parameters(), lr=0.01)
        rng = np.random.default_rng(0)
        x = tn.Tensor(rng.standard_normal((256, width)), dtype=dtype)
        y = tn.Tensor(rng.integers(0, width, 256))
        times = []
        for _ in range(repeats + 1):  # the first step warms up (CuPy compiles kernels on first use)
            start = time.perf_counter()
            loss = losses.softmax_cross_entropy(net(x), y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            loss.item()
            times.append(time.perf_counter() - start)
        return float(np.median(times[1:]))
    finally:
        tn.set_device(previous)


widths = size([64, 256, 1024, 2048], [64, 256])
curves = [("cpu", "float32"), ("cpu", "float64")] + ([("cuda", "float32")] if GPU else [])
timings = {(device, dtype): [seconds_per_step(device, w, dtype) for w in widths] for device, dtype in curves}
for (device, dtype), seconds in timings.items():
    print(
        f"{device} {dtype}:",
        " ".join(f"width {w}: {1e3 * t:.2f} ms" for w, t in zip(widths, seconds, strict=True)),
    )

fig, ax = plt.subplots(figsize=(6, 3.8))
for (device, dtype), seconds in timings.items():
    ax.loglog(widths, 1e3 * np.array(seconds), "o-", label=f"{device}, {dtype}")
ax.set_xticks(widths, [str(w) for w in widths])
ax.minorticks_off()
ax.set_xlabel("width")
ax.set_ylabel("ms per training step")
ax.set_title("One SGD step of a 4-layer MLP, batch 256")
ax.legend()
show(fig, "10_step_time.png")

# %% [markdown]
# What to look for: on the CPU the time grows roughly like width$^2$ once the matrix products
# dominate, and float64 costs more than float32 there (twice the bytes to move). Where a GPU
# was present, its curve is in the figure too: find the width at which it crosses the CPU's.
# Try changing the batch size of 256 in `seconds_per_step`: the crossing moves with it.
#
# ## 6. What changes and what does not
#
# | | CPU (NumPy) | GPU (CuPy) |
# | --- | --- | --- |
# | your code | same | same |
# | initial weights for a seed, batch order | same | same (drawn on the host) |
# | `tinynormact.theory` | host | host |
# | where `t.data` and `t.grad` live | host memory, `numpy.ndarray` | GPU memory, `cupy.ndarray` |
# | printing and plotting | directly | through `t.numpy()` or `backend.to_numpy` |
# | results | reference | equal up to rounding (summation order) |
# | speed | best for small layers | best for large layers and batches |
#
# Two practical consequences:
#
# - **Do not mix devices.** An operation on a CPU tensor and a GPU tensor is an error; move one
#   of them first (`t.to(...)`, `model.to(...)`, or a `DataLoader` on the right device).
# - **Copy only what you need to the host.** `loss.item()` and `t.numpy()` wait for the GPU and
#   copy; calling them every step for every layer is what makes a GPU run slow. The variance
#   tracker of tutorial 6 reduces each statistic to one number on the device before copying it,
#   and with `every=k` does so only every k-th step.

# %%
strict_tensor = tn.Tensor(np.ones(3), device="strict")
cpu_tensor = tn.Tensor(np.ones(3), device="cpu")
try:
    strict_tensor + cpu_tensor
    raise AssertionError("mixing devices should fail")
except backend.DeviceError as error:
    print("mixing devices fails:", error)
print("after moving:", (cpu_tensor.to("strict") + strict_tensor).numpy())

# %% [markdown]
# The strict device stands in for the GPU here; with CuPy the same lines with `"cuda"` fail and
# succeed the same way.
#
# %% [markdown]
# ## Summary
#
# - One flag, `tn.set_device("cuda")` or `TINYNORMACT_DEVICE=cuda`, moves new tensors to the
#   GPU; `t.to`, `model.to` and `DataLoader(device=...)` move existing things.
# - Seeds, initial weights, batch order and the theory are identical on both devices; results
#   agree to rounding error, which we asserted where a GPU was present; float32 against float64
#   on the CPU shows the size of that rounding anywhere.
# - A training step makes no host synchronisation; `loss.item()` makes one, and the variance
#   tracker one per recorded step (counted on the strict device).
# - The GPU wins for large layers and batches; small networks are dominated by launch overhead.
#
# ## Exercises
#
# 1. Train the model of section 3 for 100 steps in float32 and in float64 on the CPU and plot
#    the two loss curves. Do they stay together? Why might they slowly drift apart? (On a GPU
#    machine, do the same for CPU against GPU.)
# 2. In `compare`, print the largest relative difference of the *updated weights* between
#    float32 and float64. Is it larger or smaller than the gradients' difference, and why?
# 3. On the strict device, change `strict_step` to print the loss each step, and count the
#    synchronisations of ten steps. Then make it print only every fifth step.
# 4. Read `backend.scatter_add` and `backend.erf`: why do these two functions need a separate
#    spelling for CuPy, when everything else does not? Check both on the strict device against
#    NumPy's `np.add.at` and SciPy's `scipy.special.erf`.
