"""One SGD training step of a convolutional ResNet: the engine against hand-written NumPy.

Two networks: ResNet-20 (BN, ReLU after each addition; batch 64 of 3x32x32, 10 classes) and the
MNIST-1D residual CNN ``nn.resnet1d`` (no BN, x + F(x); batch 128 of 40 features). Both
versions do the same arithmetic on the same float32 data in the same process: im2col
convolutions (one strided-view copy and one matrix product forward; two products and a col2im
backward), batch norm with batch statistics, ReLU, global average pooling, a Linear, softmax
cross-entropy (batch mean), backward, and an SGD update with momentum 0.9 (PyTorch's rule). The
hand-written version is an explicit forward that keeps its caches and an explicit backward,
written here without the library; PyTorch runs a copy of the same network with the same
weights (``torch_reference``). The table reports the fastest of the interleaved steps of each
(CPU and wall time: on a shared machine the minimum is the least disturbed), their ratio to
PyTorch, the median and range of the ratio round by round (PyTorch's step runs right after the
engine's, so a slow spell of the machine tends to hit both), and the peak memory allocated
during a step (tracemalloc, which sees NumPy's buffers). Every version runs with freed memory
kept for reuse, as training runs (``infra.allocator``). The first step's losses must agree,
which checks that all compute the same thing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import tinynormact as tn
from benchmarks.timing import has_torch, keep_memory_note, peak_bytes, sgemm_rate, torch_missing_message
from tinynormact.engine import convolution
from tinynormact.engine.backend import np
from tinynormact.tracking.costs import TRAINING_FLOPS_FACTOR, forward_flops

LR, MOMENTUM, EPS = 0.01, 0.9, 1e-5


# --------------------------------------------------------------------------------------------------
# the hand-written network: explicit forward with caches, explicit backward
# --------------------------------------------------------------------------------------------------


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad: int) -> tuple:
    batch, channels, *size = x.shape
    out_channels, _, *kernel = w.shape
    dims = len(kernel)
    padded = np.zeros((batch, channels, *(n + 2 * pad for n in size)), x.dtype)
    padded[(slice(None), slice(None), *(slice(pad, pad + n) for n in size))] = x
    out = [(n + 2 * pad - k) // stride + 1 for n, k in zip(size, kernel, strict=True)]
    st = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, (batch, channels, *out, *kernel), st[:2] + tuple(s * stride for s in st[2:]) + st[2:]
    )
    order = (0, *range(2, 2 + dims), 1, *range(2 + dims, 2 + 2 * dims))
    cols = windows.transpose(order).reshape(batch * math.prod(out), -1)
    rows = cols @ w.reshape(out_channels, -1).T
    if b is not None:
        rows += b
    y = np.ascontiguousarray(
        rows.reshape(batch, *out, out_channels).transpose(0, dims + 1, *range(1, dims + 1))
    )
    return y, (cols, padded.shape, x.shape, w, stride, pad, out)


def conv_backward(g: np.ndarray, cache: tuple, input_grad: bool = True) -> tuple[Any, np.ndarray, np.ndarray]:
    cols, padded_shape, x_shape, w, stride, pad, out = cache
    dims = len(out)
    out_channels, channels, *kernel = w.shape
    g_rows = g.transpose(0, *range(2, 2 + dims), 1).reshape(-1, out_channels)
    gw = (g_rows.T @ cols).reshape(w.shape)
    gb = g_rows.sum(axis=0)
    if not input_grad:  # the network's first layer: its input is the data
        return None, gw, gb
    g_cols = (g_rows @ w.reshape(out_channels, -1)).reshape(x_shape[0], *out, channels, *kernel)
    gpad = np.zeros(padded_shape, g.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(slice(k, k + stride * (n - 1) + 1, stride) for k, n in zip(offset, out, strict=True))
        gpad[(slice(None), slice(None), *index)] += g_cols[(Ellipsis, *offset)].transpose(
            0, dims + 1, *range(1, dims + 1)
        )
    gx = gpad[(slice(None), slice(None), *(slice(pad, pad + n) for n in x_shape[2:]))]
    return gx, gw, gb


def bn_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple:
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes)
    centred = x - mean.reshape(shape)
    var = (centred * centred).mean(axis=axes)
    inv = (1.0 / np.sqrt(var + EPS)).astype(x.dtype).reshape(shape)
    x_hat = centred * inv
    return x_hat * gamma.reshape(shape) + beta.reshape(shape), (x_hat, inv * gamma.reshape(shape), axes)


def bn_backward(g: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_hat, scale, axes = cache
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_gx = (g * x_hat).mean(axis=axes, keepdims=True)
    return scale * (g - mean_g - x_hat * mean_gx), (g * x_hat).sum(axis=axes), g.sum(axis=axes)


class HandNet:
    """The engine model's layers as plain arrays: a list of stages, each a "convs" unit (conv,
    [bn], relu), a residual block, or the head (global average pooling and Linear)."""

    def __init__(self, model: tn.nn.Module) -> None:
        self.params: list[np.ndarray] = [p.data.copy() for p in model.parameters()]
        self.grads: list[Any] = [None] * len(self.params)
        self.velocities: list[Any] = [None] * len(self.params)
        index = {id(p): k for k, p in enumerate(model.parameters())}
        self.units = [self._unit(m, index) for m in model if not isinstance(m, tn.nn.GlobalAvgPool)]

    def _unit(self, module: tn.nn.Module, index: dict[int, int]) -> tuple:
        """("conv", k_w, k_b, stride, pad) / ("bn", k_gamma, k_beta) / ("relu",) / ("unflatten", shape)
        / ("block", branch units, shortcut units, post relu) / ("linear", k_w, k_b)."""
        if isinstance(module, tn.nn.Unflatten):
            return ("unflatten", module.shape)
        if isinstance(module, tn.nn.conv._ConvNd):
            kb = None if module.bias is None else index[id(module.bias)]
            return ("conv", index[id(module.weight)], kb, module.stride[0], module.padding[0])
        if isinstance(module, tn.nn.batchnorm._BatchNorm):
            return ("bn", index[id(module.weight)], index[id(module.bias)])
        if isinstance(module, tn.nn.Activation):
            return ("relu",)
        if isinstance(module, tn.nn.Linear):
            return ("linear", index[id(module.weight)], index[id(module.bias)])
        if isinstance(module, tn.nn.ConvResidualBlock):
            branch = [self._unit(m, index) for m in module.branch]
            shortcut = None if module.shortcut is None else [self._unit(m, index) for m in module.shortcut]
            return ("block", branch, shortcut, module.post_activation is not None)
        raise TypeError(f"no hand-written version of {module!r}")

    def _forward(self, units: list, x: np.ndarray, caches: list) -> np.ndarray:
        p = self.params
        for unit in units:
            kind = unit[0]
            if kind == "unflatten":
                caches.append(x.shape)
                x = x.reshape(x.shape[0], *unit[1])
            elif kind == "conv":
                x, cache = conv_forward(
                    x, p[unit[1]], None if unit[2] is None else p[unit[2]], unit[3], unit[4]
                )
                caches.append(cache)
            elif kind == "bn":
                x, cache = bn_forward(x, p[unit[1]], p[unit[2]])
                caches.append(cache)
            elif kind == "relu":
                x = np.maximum(x, 0)
                caches.append(x)
            elif kind == "block":
                inner_branch, inner_short = [], []
                y = self._forward(unit[1], x, inner_branch)
                y += x if unit[2] is None else self._forward(unit[2], x, inner_short)
                if unit[3]:
                    y = np.maximum(y, 0)
                caches.append((inner_branch, inner_short, y))
                x = y
            else:  # linear, after global average pooling
                pooled = x.mean(axis=tuple(range(2, x.ndim)))
                caches.append((pooled, x.shape))
                x = pooled @ p[unit[1]].T + p[unit[2]]
        return x

    def _backward(self, units: list, g: np.ndarray, caches: list, top: bool = False) -> np.ndarray:
        """Backward through ``units``; at the top level the first conv reads the data, so its
        input gradient is skipped (as the engine skips it)."""
        p = self.params
        first_conv = next(k for k, unit in enumerate(units) if unit[0] == "conv") if top else -1
        for k, unit, cache in zip(
            reversed(range(len(units))), reversed(units), reversed(caches), strict=True
        ):
            kind = unit[0]
            if kind == "unflatten":
                g = g.reshape(cache) if g is not None else None
            elif kind == "conv":
                g, gw, gb = conv_backward(g, cache, input_grad=k != first_conv)
                self._store(unit[1], gw)
                if unit[2] is not None:
                    self._store(unit[2], gb)
            elif kind == "bn":
                g, gg, gb = bn_backward(g, cache)
                self._store(unit[1], gg)
                self._store(unit[2], gb)
            elif kind == "relu":
                g = g * (cache > 0)
            elif kind == "block":
                inner_branch, inner_short, y = cache
                if unit[3]:
                    g = g * (y > 0)
                g_x = self._backward(unit[1], g, inner_branch)
                g_x += g if unit[2] is None else self._backward(unit[2], g, inner_short)
                g = g_x
            else:
                pooled, shape = cache
                self._store(unit[1], g.T @ pooled)
                self._store(unit[2], g.sum(axis=0))
                g = g @ p[unit[1]]
                count = math.prod(shape[2:])
                g = np.broadcast_to((g / count).reshape(*g.shape, *(1,) * (len(shape) - 2)), shape)
        return g

    def _store(self, k: int, grad: np.ndarray) -> None:
        self.grads[k] = grad

    def step(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Forward, softmax cross-entropy (batch mean), backward, SGD update with momentum."""
        caches: list = []
        logits = self._forward(self.units, x, caches)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(labels))
        loss = float(-log_probs[rows, labels].mean())
        g = np.exp(log_probs)
        g[rows, labels] -= 1.0
        g /= len(labels)
        self._backward(self.units, g, caches, top=True)
        for k, (param, grad) in enumerate(zip(self.params, self.grads, strict=True)):
            velocity = self.velocities[k]
            self.velocities[k] = velocity = grad.copy() if velocity is None else MOMENTUM * velocity + grad
            param -= LR * velocity
        return loss


# --------------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------------

NETWORKS: dict[str, tuple[Callable[[], tn.nn.Module], tuple[int, ...], int]] = {
    "resnet20": (lambda: tn.nn.resnet20(rng=0), (64, 3, 32, 32), 10),
    "resnet1d": (lambda: tn.nn.resnet1d(rng=0), (128, 40), 10),
}
ROUNDS = {"resnet20": 9, "resnet1d": 20}  # timed steps of each version, interleaved
THREADS = (1, 2)


def engine_step(model: tn.nn.Module, optimizer: tn.optim.SGD, x: tn.Tensor, y: np.ndarray) -> float:
    optimizer.zero_grad()
    loss = tn.losses.softmax_cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


@contextlib.contextmanager
def teaching_convolution() -> Iterator[None]:
    """Inside: every conv layer uses ``convolution.conv_im2col`` (the one-matrix im2col of
    before the fast path), for the "im2col engine" column."""
    fast = convolution.conv
    convolution.conv = convolution.conv_im2col
    try:
        yield
    finally:
        convolution.conv = fast


def _versions(name: str, threads: int) -> dict[str, Callable[[], float]]:
    """The step of every version of network ``name`` on the same data, their first losses
    checked to agree."""
    build, shape, classes = NETWORKS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, classes, shape[0])
    model, twin = build(), build()
    hand = HandNet(model)
    optimizer, twin_optimizer = (
        tn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM),
        tn.optim.SGD(twin.parameters(), lr=LR, momentum=MOMENTUM),
    )
    tx = tn.Tensor(x)

    def im2col_engine() -> float:
        with teaching_convolution():
            return engine_step(twin, twin_optimizer, tx, labels)

    versions = {
        "engine": lambda: engine_step(model, optimizer, tx, labels),
        "im2col engine": im2col_engine,
        "hand im2col": lambda: hand.step(x, labels),
    }
    losses = {}
    if has_torch():  # its copy of the model is made (and its first step run) before any update
        from benchmarks import torch_reference

        torch_reference.set_threads(threads)
        versions["pytorch"], losses["pytorch"] = torch_reference.torch_step(model, LR, MOMENTUM, x, labels)
    losses.update({label: step() for label, step in versions.items() if label != "pytorch"})
    if max(losses.values()) - min(losses.values()) > 1e-4 * abs(losses["engine"]):
        raise RuntimeError(f"{name}: the versions' first losses differ: {losses}")
    return versions


def measure(name: str, threads: int) -> dict[str, Any]:
    """The least wall and CPU seconds of each version's step (interleaved rounds, PyTorch's
    step right after the engine's), the engine/PyTorch CPU-time ratio of each round, peak step
    memory of the NumPy versions (tracemalloc), training GFLOP per step."""
    versions = _versions(name, threads)
    order = ["engine", *(["pytorch"] if "pytorch" in versions else []), "im2col engine", "hand im2col"]
    versions = {label: versions[label] for label in order}
    wall: dict[str, list[float]] = {label: [] for label in versions}
    cpu: dict[str, list[float]] = {label: [] for label in versions}
    for _ in range(ROUNDS[name] if threads == 1 else max(3, ROUNDS[name] // 2)):
        for label, step in versions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            step()
            wall[label].append(time.perf_counter() - start_wall)
            cpu[label].append(time.process_time() - start_cpu)
    build, shape, _ = NETWORKS[name]
    flops = TRAINING_FLOPS_FACTOR * forward_flops(build(), shape[1:]) * shape[0]
    return {
        "wall_s": {label: min(v) for label, v in wall.items()},
        "cpu_s": {label: min(v) for label, v in cpu.items()},
        "round_ratios": sorted(e / t for e, t in zip(cpu["engine"], cpu.get("pytorch", []), strict=False)),
        "bytes": {label: peak_bytes(versions[label]) for label in ("engine", "im2col engine", "hand im2col")},
        "gflop": flops / 1e9,
    }


def child(threads: int) -> None:
    """Measure everything at ``threads`` BLAS threads (set before NumPy loaded) and print JSON."""
    note = keep_memory_note()
    result = {name: measure(name, threads) for name in NETWORKS}
    result["sgemm_gflops"] = sgemm_rate()
    result["load"] = os.getloadavg()[0]
    result["memory_note"] = note
    print(json.dumps(result))


def _run_child(threads: int) -> dict[str, Any]:
    env = dict(
        os.environ,
        **{v: str(threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_conv_step", "--threads", str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _print_table(threads: int, r: dict[str, Any]) -> None:
    """Step times (CPU ms, wall ms), engine/PyTorch ratios, GFLOP per CPU second, memory."""
    print(f"-- {threads} BLAS thread(s); sgemm 1024^3: {r['sgemm_gflops']:.0f} GFLOP/s; load {r['load']:.1f}")
    print(f"   {r['memory_note']}")
    labels = ["engine", "im2col engine", "hand im2col"] + (["pytorch"] if has_torch() else [])
    header = f"{'network':>9} " + " ".join(f"{label + ' ms':>16}" for label in labels)
    if has_torch():
        header += f" {'engine/pytorch':>15} {'by round: median (range)':>25} {'pytorch GFLOP/s':>16}"
    print(header + f" {'engine GFLOP/s':>15}")
    for name in NETWORKS:
        cpu, wall, gflop = r[name]["cpu_s"], r[name]["wall_s"], r[name]["gflop"]
        line = f"{name:>9} " + " ".join(f"{cpu[k] * 1e3:>7.0f} ({wall[k] * 1e3:>6.0f})" for k in labels)
        if has_torch():
            ratio, wall_ratio = cpu["engine"] / cpu["pytorch"], wall["engine"] / wall["pytorch"]
            rounds = r[name]["round_ratios"]
            spread = f"{statistics.median(rounds):.2f} ({rounds[0]:.2f}-{rounds[-1]:.2f})"
            line += f" {ratio:>7.2f} ({wall_ratio:>5.2f}) {spread:>25} {gflop / cpu['pytorch']:>16.1f}"
        print(line + f" {gflop / cpu['engine']:>15.1f}")
    print(f"{'network':>9} {'engine MiB':>11} {'im2col engine MiB':>18} {'hand im2col MiB':>16}")
    for name in NETWORKS:
        mib = {k: v / 2**20 for k, v in r[name]["bytes"].items()}
        print(f"{name:>9} {mib['engine']:>11.1f} {mib['im2col engine']:>18.1f} {mib['hand im2col']:>16.1f}")


def main() -> None:
    print(
        "one SGD step, float32: ResNet-20 (batch 64, 3x32x32) and the MNIST-1D resnet1d (batch 128, 40);\n"
        "SGD with momentum 0.9; the fastest CPU ms per step (wall ms in parentheses) of rounds\n"
        "interleaved in one process; engine/pytorch: of the fastest steps, and by round (the\n"
        "engine's step over PyTorch's, run right after it), median and range;\n"
        "im2col engine: the engine with convolution.conv_im2col (the convolution before the fast path)"
    )
    if not has_torch():
        print(torch_missing_message())
    for threads in THREADS:
        _print_table(threads, _run_child(threads))
    print("targets: engine/pytorch <= 1.5 at 1 thread (CPU time); memory: engine <= im2col engine")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--threads"]:
        child(int(sys.argv[2]))
    else:
        main()
