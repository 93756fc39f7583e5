"""Where a ResNet-20 training step spends its time: the engine by op, PyTorch by pass.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python docs/reports/benchmarks/profile_step.py

conv_step's step (batch 64, SGD with momentum 0.9, 1 thread, freed memory kept). The engine's
backward is timed around each graph node's closure (``Node.backward``), grouped by op and, for
convolutions, by output shape; its forward around ``convolution.conv`` and ``batch_norm``, the
rest of the forward being ReLU, the residual additions, the pooling and the loss. PyTorch's
step is timed as a whole forward and a whole backward. Each figure is the mean ms of 8 steps
after 2 unmeasured ones. Timers cost a little per call, so the parts sum to a bit more than an
untimed step. Used for docs/benchmarks.md; its output for 2026-12-08 is in profile-265603b.txt.
"""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import tinynormact as tn
import tinynormact.nn.batchnorm
from tinynormact.engine import autograd, convolution
from tinynormact.infra.allocator import keep_freed_memory

STEPS, WARMUP = 8, 2


def timed(totals: dict[Any, float], key: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding the seconds of each call to ``totals[key]``."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = function(*args, **kwargs)
        totals[key] += time.perf_counter() - start
        return result

    return call


def engine_profile(x: np.ndarray, labels: np.ndarray) -> dict[Any, float]:
    """Mean seconds per step of the engine's forward parts and of its backward by op."""
    totals: dict[Any, float] = collections.defaultdict(float)
    convolution.conv = timed(totals, "forward: conv", convolution.conv)
    batchnorm = tinynormact.nn.batchnorm
    batchnorm.batch_norm = timed(totals, "forward: batch_norm", batchnorm.batch_norm)
    backpropagate = autograd.backpropagate

    def timed_backpropagate(order: list[autograd.Node], seed: Any, retain_graph: bool) -> None:
        for node in order:
            if node.backward is not None:
                key = f"backward: {node.op}" + (f" {node.shape}" if node.op == "conv" else "")
                node.backward = timed(totals, key, node.backward)
        backpropagate(order, seed, retain_graph)

    autograd.backpropagate = timed(totals, "backward: all", timed_backpropagate)
    model, tx = tn.nn.resnet20(rng=0), tn.Tensor(x)
    optimizer = tn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            totals.clear()
        optimizer.zero_grad()
        start = time.perf_counter()
        loss = tn.losses.softmax_cross_entropy(model(tx), labels)
        totals["forward: all (with the loss)"] += time.perf_counter() - start
        loss.backward()
        optimizer.step()
    return {key: seconds / STEPS for key, seconds in totals.items()}


def torch_profile(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean seconds per step of PyTorch's forward and backward on the same network."""
    import torch

    from benchmarks import torch_reference

    torch.set_num_threads(1)
    model = torch_reference.translate(tn.nn.resnet20(rng=0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
    totals = collections.defaultdict(float)
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            totals.clear()
        optimizer.zero_grad()
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(tx), tl)
        middle = time.perf_counter()
        loss.backward()
        totals["forward"] += middle - start
        totals["backward"] += time.perf_counter() - middle
        optimizer.step()
    return {key: seconds / STEPS for key, seconds in totals.items()}


def main() -> None:
    keep_freed_memory()
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((64, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 64)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"ResNet-20 step, batch 64, 1 thread; mean ms of {STEPS} steps; {when}")
    for key, seconds in sorted(torch_profile(x, labels).items()):
        print(f"pytorch {key:45s} {1e3 * seconds:7.1f}")
    for key, seconds in sorted(engine_profile(x, labels).items(), key=lambda item: -item[1]):
        print(f"engine  {key:45s} {1e3 * seconds:7.1f}")


if __name__ == "__main__":
    main()
