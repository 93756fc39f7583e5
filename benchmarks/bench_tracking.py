"""The cost of variance tracking: one SGD step of a width-256 MLP with and without a tracker.

Same model, data and optimizer in the same process: a 10-layer MLP (width 256, batch 128,
float32, mean squared error, plain SGD). The configurations (no tracker; all statistics every
step, every 2nd step and every 10th step; the three signal-propagation statistics every step; a detached
tracker; and "bare passes", the reductions all statistics need, made through the same hooks
with no bookkeeping: the floor of this design) take turns in blocks of a few steps, many times
over, so that drifts in machine load hit all alike; each ratio is the median over the turns of
(block mean / untracked block mean). A block is 10 steps, so that ``every=10`` records exactly
one step in each and its mean carries that step's cost. Targets: the three signal-propagation
statistics every step <= 1.15; all statistics every step <= 1.30; all statistics every 10th step
<= 1.05; a detached tracker 1.00 (it must cost nothing).

The whole measurement runs twice, each time in a fresh process: with glibc's default malloc, and
with freed memory kept for reuse (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``). With
the defaults, NumPy's arrays of 128 KiB and more are returned to the operating system when freed
and page-faulted back in on the next step, several hundred faults per step; the tracker's own
small arrays change how many (the faults/step columns), so the default-malloc ratios say as much
about the allocator as about the tracker. The kept-memory run measures the tracker alone, against
a faster step, so its ratio is the stricter one.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import tinynormact as tn
from tinynormact import losses, nn, optim
from tinynormact.infra.allocator import MMAP_THRESHOLD, RETAINED
from tinynormact.tracking.statistics import mean_square as _mean_square  # the tracker's reduction
from tinynormact.tracking.tracker import STATISTICS, VarianceTracker

DEPTH, WIDTH, BATCH, LR = 10, 256, 128, 1e-3
ACTIVATIONS = ("tanh", "relu", "nswish")
TURNS, BLOCK = 20, 10
PROPAGATION = ("preact_sq", "delta_sq", "weight_grad_var")
# the thresholds ``train()`` sets (infra.allocator), given to a fresh process by the environment
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(RETAINED)}
COLUMNS = ("every=1", "every=2", "every=10", "3 stats", "detached", "bare passes")


def _training_step(activation: str) -> tuple[nn.Module, Callable[[], None]]:
    rng = np.random.default_rng(0)
    model = nn.MLP([WIDTH] * (DEPTH + 1), activation, dtype="float32", rng=0)
    optimizer = optim.SGD(model.parameters(), lr=LR)
    x = tn.Tensor(rng.standard_normal((BATCH, WIDTH)), dtype="float32")
    y = tn.Tensor(rng.standard_normal((BATCH, WIDTH)), dtype="float32")

    def step() -> None:
        optimizer.zero_grad()
        losses.mse_loss(model(x), y).backward()
        optimizer.step()

    return model, step


def _detached(model: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """A tracker attached once and detached before the measurement: the model must be as fast
    as one that never had a tracker."""
    with VarianceTracker(model):
        pass
    module_hooks = any(m._forward_hooks or m._backward_hooks for m in model.modules())
    tensor_hooks = any(p._node is not None and p._node.hooks for p in model.parameters())
    if module_hooks or tensor_hooks:
        raise RuntimeError("a detached tracker left a hook behind")
    return contextlib.nullcontext()


def _reduce(g: np.ndarray) -> None:  # a tensor hook must return None to keep the gradient
    _mean_square(g)


def _reduce_rows(g: np.ndarray) -> None:
    np.vecdot(g, g)
    _mean_square(g.sum(axis=0))


class _BarePasses:
    """The passes over arrays that all 14 statistics cost, made through the same public hooks
    and thrown away: per layer E[h^2], mean(h), per-example rows of y and of g, E[gW^2] and the
    batch weight gradient's, the bias gradient's, the input gradient's second moments, and
    rho' as the ratio of the gradients at h and y. What a tracker adds on top is bookkeeping."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.handles = model, []

    def __enter__(self) -> _BarePasses:
        ones = np.ones(WIDTH, dtype="float32")
        for module in self.model.modules():
            if isinstance(module, nn.Linear):
                self.handles.append(module.register_forward_hook(self._linear_forward(ones)))
                self.handles.append(module.weight.register_hook(_reduce))
            elif isinstance(module, nn.Activation):
                self.handles.append(module.register_forward_hook(self._activation_forward))
        return self

    @staticmethod
    def _linear_forward(ones: np.ndarray) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], out: tn.Tensor) -> None:
            _mean_square(out.data), out.data.dot(ones).sum()
            if out.requires_grad:
                out.register_hook(_reduce_rows)

        return hook

    @staticmethod
    def _activation_forward(module: nn.Activation, inputs: tuple[Any, ...], out: tn.Tensor) -> None:
        np.vecdot(out.data, out.data)
        if out.requires_grad:
            grad_output: list[np.ndarray] = []

            def keep(g: np.ndarray) -> None:
                _mean_square(g)
                grad_output.append(g)

            def ratio(g: np.ndarray) -> None:  # rho' from d loss/dh over d loss/dy
                go = grad_output.pop()
                nonzero = go != 0
                _mean_square(g / np.where(nonzero, go, np.ones((), go.dtype)))
                np.count_nonzero(nonzero)

            out.register_hook(keep)
            inputs[0].register_hook(ratio)

    def __exit__(self, *exc_info: Any) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def measure(activation: str) -> dict[str, tuple[float, float, float]]:
    """{configuration: (mean step seconds, paired ratio to no tracker, page faults per step)}."""
    model, step = _training_step(activation)
    configurations = {
        "none": contextlib.nullcontext(),
        "every=1": VarianceTracker(model),
        "every=2": VarianceTracker(model, every=2),
        "every=10": VarianceTracker(model, every=10),
        "3 stats": VarianceTracker(model, statistics=PROPAGATION),
        "detached": _detached(model),
        "bare passes": _BarePasses(model),
    }
    times: dict[str, list[float]] = {name: [] for name in configurations}
    ratios: dict[str, list[float]] = {name: [] for name in configurations}
    faults = dict.fromkeys(configurations, 0)
    for _ in range(5):
        step()  # warm up
    for _ in range(TURNS):
        means = {}
        for name, configuration in configurations.items():
            with configuration:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                block = []
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    step()
                    block.append(time.perf_counter() - start)
                faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            times[name] += block
            means[name] = statistics.fmean(block)
        for name in configurations:
            ratios[name].append(means[name] / means["none"])
    if not np.isfinite(configurations["every=1"].profile()["weight_grad_var"]).all():
        raise RuntimeError("the tracker recorded NaN where every statistic should be defined")
    steps = TURNS * BLOCK
    return {
        name: (statistics.fmean(times[name]), statistics.median(ratios[name]), faults[name] / steps)
        for name in configurations
    }


def _print_rows(allocator: str) -> None:
    for activation in ACTIVATIONS:
        t = measure(activation)
        print(
            f"{allocator:>14} {activation:>10} {t['none'][0] * 1e3:>8.3f} "
            + " ".join(f"{t[name][1]:>8.3f}" for name in COLUMNS)
            + f" {t['none'][2]:>12.0f} {t['every=1'][2]:>14.0f}",
            flush=True,
        )


def main() -> None:
    print(
        f"{DEPTH}-layer MLP, width {WIDTH}, batch {BATCH}, float32, one SGD step; {TURNS} turns of "
        f"{BLOCK} steps per configuration; ratios to the untracked step"
    )
    print(
        f"{'malloc':>14} {'activation':>10} {'plain ms':>8} "
        + " ".join(f"{name:>8}" for name in COLUMNS)
        + f" {'faults plain':>12} {'faults every=1':>14}"
    )
    for allocator, extra in (("glibc default", {}), ("memory kept", KEEP_FREED_MEMORY)):
        command = [sys.executable, "-m", "benchmarks.bench_tracking", allocator]
        subprocess.run(command, env={**os.environ, **extra}, check=True)
    print(
        "targets: '3 stats' <= 1.15, every=1 <= 1.30, every=10 <= 1.05, detached 1.00; "
        "'bare passes' is the floor of this design"
    )
    print(
        f"every=k records all {len(STATISTICS)} statistics every k-th step; "
        f"'3 stats' records {', '.join(PROPAGATION)} every step; faults are page faults per step"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _print_rows(sys.argv[1])  # one allocator setting, in this process (called by main)
    else:
        main()
