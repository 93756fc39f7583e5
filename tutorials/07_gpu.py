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
# # Tutorial 7: The same code on a GPU
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
# - and you will check that one training step gives the same numbers on both devices.
#
# **The GPU cells run only where CuPy and a GPU are present.** Everywhere else they print that
# they were skipped and why, and the rest of the tutorial still runs. To install CuPy:
# `pip install -e ".[gpu]"` for CUDA 12 (it brings `cupy-cuda12x`) or `".[gpu-cuda13]"` for
# CUDA 13 (`cupy-cuda13x`); `nvidia-smi` prints your driver's CUDA version.

# %%
import time

import numpy as np
from _common import plt, show, size

import tinynormact as tn
from tinynormact import backend, losses, nn, optim
from tinynormact.data import DataLoader, teacher

try:
    backend.xp("cuda")  # imports CuPy and looks for a GPU; raises DeviceError saying what is missing
    GPU, SKIP_REASON = True, ""
    print("CuPy and a GPU are available: the GPU cells will run.")
except backend.DeviceError as error:
    GPU, SKIP_REASON = False, str(error)
    print(f"GPU cells will be SKIPPED on this machine: {SKIP_REASON}")

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
# says what is missing and how to install it; that is the message printed above when the GPU
# cells are skipped. `backend.xp()` is the array module of the current device; each array knows
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
# ## 3. One training step on both devices
#
# Here is the check that matters: build the same network from the same seed on both devices,
# take one SGD step on the same batch, and compare the loss, every gradient and every updated
# weight. In float64 the two should agree to about $10^{-12}$ relative: the devices add numbers
# in different orders (different matrix-multiplication kernels), and floating-point addition is
# not associative, so the last few bits differ; nothing else may. We assert a relative
# tolerance of $10^{-9}$ in float64, and of $10^{-4}$ in float32, whose unit roundoff is
# $6 \times 10^{-8}$ and whose sums over hundreds of terms lose a few more digits.
#
# The network uses an *adaptive* normalized activation, so its running statistics (buffers)
# are compared too.


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


def compare(dtype, rtol):
    """Run one step on each device and assert that everything agrees to ``rtol``."""
    loss_cpu, grads_cpu, state_cpu = one_step("cpu", dtype)
    loss_gpu, grads_gpu, state_gpu = one_step("cuda", dtype)
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=rtol)
    worst = 0.0
    for name in grads_cpu:
        scale = np.max(np.abs(grads_cpu[name]))
        np.testing.assert_allclose(grads_gpu[name], grads_cpu[name], rtol=rtol, atol=rtol * scale)
        worst = max(worst, np.max(np.abs(grads_gpu[name] - grads_cpu[name])) / scale)
    for name in state_cpu:
        scale = max(np.max(np.abs(state_cpu[name])), 1e-30)
        np.testing.assert_allclose(state_gpu[name], state_cpu[name], rtol=rtol, atol=rtol * scale)
    print(f"{dtype}: loss cpu {loss_cpu:.10f} gpu {loss_gpu:.10f}; largest gradient difference {worst:.1e}")


if GPU:
    compare("float64", rtol=1e-9)
    compare("float32", rtol=1e-4)
    print("CPU and GPU agree after one training step, in float64 and float32")
else:
    print(f"SKIPPED (no GPU): CPU-vs-GPU comparison. Reason: {SKIP_REASON}")

# %% [markdown]
# ## 4. When does the GPU pay off?
#
# A GPU runs thousands of arithmetic units in parallel, but every operation costs a fixed
# launch overhead of several microseconds, and our engine launches a handful of kernels per
# layer. So small networks are *slower* on a GPU, and large matrix products are much faster.
# Below we time one training step (forward, backward, SGD update) of a 4-layer MLP as the width
# grows; on a GPU machine both devices are timed. Calling `loss.item()` copies the loss to the
# host, which waits until the GPU has finished: without such a synchronization you would time
# only the kernel launches.


# %%
def seconds_per_step(device, width, repeats=5):
    """Median time of a training step of a [width] * 5 MLP with a batch of 256, in float32."""
    previous = tn.get_device()
    tn.set_device(device)
    try:
        net = nn.MLP([width] * 5, "relu", rng=0)
        sgd = optim.SGD(net.parameters(), lr=0.01)
        rng = np.random.default_rng(0)
        x = tn.Tensor(rng.standard_normal((256, width)).astype("float32"))
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
devices = ["cpu", "cuda"] if GPU else ["cpu"]
timings = {device: [seconds_per_step(device, w) for w in widths] for device in devices}
for device, seconds in timings.items():
    print(device, " ".join(f"width {w}: {1e3 * s:.2f} ms" for w, s in zip(widths, seconds, strict=True)))
if not GPU:
    print("SKIPPED (no GPU): the GPU timings. Only the CPU curve is drawn.")

fig, ax = plt.subplots(figsize=(6, 3.8))
for device, seconds in timings.items():
    ax.loglog(widths, 1e3 * np.array(seconds), "o-", label=device)
ax.set_xticks(widths, [str(w) for w in widths])
ax.minorticks_off()
ax.set_xlabel("width")
ax.set_ylabel("ms per training step")
ax.set_title("One SGD step of a 4-layer MLP, batch 256, float32")
ax.legend()
show(fig, "07_step_time.png")

# %% [markdown]
# On the CPU the time grows roughly like width$^2$ once the matrix products dominate. On a GPU
# the curve is nearly flat at small widths (launch overhead) and rises much later.
#
# ## 5. What changes and what does not
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
#   tracker of tutorial 5 reduces each statistic to one number on the device before copying it,
#   and with `every=k` does so only every k-th step.

# %%
if GPU:
    cpu_tensor = tn.Tensor(np.ones(3), device="cpu")
    gpu_tensor = tn.Tensor(np.ones(3), device="cuda")
    try:
        cpu_tensor + gpu_tensor
    except Exception as error:  # CuPy or NumPy decides which error; the point is that it fails
        print("mixing devices fails:", type(error).__name__, str(error)[:120])
    print("after moving:", (cpu_tensor.to("cuda") + gpu_tensor).numpy())
else:
    print(f"SKIPPED (no GPU): the mixed-device example. Reason: {SKIP_REASON}")

# %% [markdown]
# ## Summary
#
# - One flag, `tn.set_device("cuda")` or `TINYNORMACT_DEVICE=cuda`, moves new tensors to the
#   GPU; `t.to`, `model.to` and `DataLoader(device=...)` move existing things.
# - Seeds, initial weights, batch order and the theory are identical on both devices; results
#   agree to rounding error, which we asserted (where a GPU was present).
# - The GPU wins for large layers and batches; small networks are dominated by launch overhead.
#
# ## Exercises
#
# 1. Run the whole test suite on the GPU with `pytest --device cuda` and the reproduction with
#    `tinynormact reproduce --device cuda`. Which parts get faster?
# 2. Extend the timing of section 4 to float64. How much slower is float64 on your GPU than
#    float32? (Consumer GPUs are often 30 times slower in float64; data-centre GPUs are not.)
# 3. In `compare`, print the largest relative difference of the updated weights in float32.
#    Where does it come from: the forward pass, the backward pass, or the update?
# 4. Train the model of section 3 for 100 steps on each device in float32 and plot the two
#    loss curves. Do they stay together? Why might they slowly drift apart?
# 5. Read `backend.scatter_add` and `backend.erf`: why do these two functions need a separate
#    spelling for CuPy, when everything else does not?
