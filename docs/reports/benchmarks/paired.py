"""Paired timings of the package at an earlier commit against the working tree, in one process.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python docs/reports/benchmarks/paired.py 2984c76

The earlier commit's package is extracted (``git archive``) into a temporary folder under the
name ``tinynormact_then``, its imports rewritten, so that both versions import side by side.
Every measurement interleaves the two versions step by step (or block by block), so that the
machine's drifts hit both alike, and reports the ratio now / then of each pair: its median and
interquartile range, beside the fastest step of each. Every line also says whether both
versions computed the same numbers, bit for bit. Used for the "changes" tables of
docs/benchmarks.md; its output for the session of 2026-12-08 is in paired-2984c76.txt.
"""

from __future__ import annotations

import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import tinynormact as now
import tinynormact.engine.convolution
import tinynormact.engine.replay  # noqa: F401 (now.engine.replay)
from tinynormact.infra.allocator import keep_freed_memory


def import_then(commit: str, folder: Path) -> object:
    """The package at ``commit``, importable as ``tinynormact_then``."""
    archive = subprocess.run(["git", "archive", commit, "tinynormact"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "tinynormact").rename(folder / "tinynormact_then")
    for path in (folder / "tinynormact_then").rglob("*.py"):
        path.write_text(re.sub(r"\btinynormact\b", "tinynormact_then", path.read_text()))
    sys.path.insert(0, str(folder))
    for module in ("tinynormact_then.engine.convolution", "tinynormact_then.engine.replay"):
        importlib.import_module(module)
    return sys.modules["tinynormact_then"]


def paired(then: Callable[[], float], now_: Callable[[], float], pairs: int) -> str:
    """Interleave the two steps ``pairs`` times (after two of each): a line of their CPU times."""
    times: list[tuple[float, float]] = []
    for i in range(pairs + 2):
        start = time.process_time()
        loss_then = then()
        middle = time.process_time()
        loss_now = now_()
        if i >= 2:
            times.append((middle - start, time.process_time() - middle))
    ratios = [b / a for a, b in times]
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    fastest = [1e3 * min(t[k] for t in times) for k in (0, 1)]
    return (
        f"fastest then {fastest[0]:.1f} ms, now {fastest[1]:.1f} ms; now/then over {pairs} pairs: "
        f"median {median:.3f}, interquartile range {q1:.3f}-{q3:.3f}; "
        f"last losses equal: {loss_then == loss_now}"
    )


def network_step(lib: object, name: str) -> Callable[[], float]:
    """One SGD step (momentum 0.9) of ``name`` built by ``lib`` on fixed data (conv_step's)."""
    shape = (64, 3, 32, 32) if name == "resnet20" else (128, 40)
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0])
    model = getattr(lib.nn, name)(rng=0)
    optimizer, tx = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), lib.Tensor(x)

    def step() -> float:
        optimizer.zero_grad()
        loss = lib.losses.softmax_cross_entropy(model(tx), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def replayed_mlp_block(lib: object, width: int = 32, steps: int = 125) -> Callable[[], float]:
    """The median seconds of ``steps`` replayed steps of mlp_step's 10-layer tanh MLP."""
    rng = np.random.default_rng(0)
    model = lib.nn.MLP([width] * 11, "tanh")
    optimizer = lib.optim.SGD(model.parameters(), lr=1e-3)
    x, y = (rng.standard_normal((128, width)).astype(np.float32) for _ in range(2))
    step, _ = lib.engine.replay.record(lambda a, b: lib.losses.mse_loss(model(a), b), x, y)

    def block() -> float:
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step(x, y)
            optimizer.step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return block


def blocks(then: Callable[[], float], now_: Callable[[], float], pairs: int) -> str:
    """Interleave blocks of steps: a line of the blocks' medians and their ratios."""
    times = [(then(), now_()) for _ in range(pairs + 1)][1:]
    q1, median, q3 = np.percentile([b / a for a, b in times], [25, 50, 75])
    fastest = [1e6 * min(t[k] for t in times) for k in (0, 1)]
    return (
        f"fastest block median then {fastest[0]:.1f} us, now {fastest[1]:.1f} us; now/then over "
        f"{pairs} pairs of blocks: median {median:.3f}, interquartile range {q1:.3f}-{q3:.3f}"
    )


def _layer_ops(
    convolution: object, x: np.ndarray, g: np.ndarray, w: np.ndarray
) -> list[Callable[[], object]]:
    """The three stride-1 functions of a ``convolution`` module on one layer's arrays."""
    return [
        lambda: convolution._correlate_stride1(x, (1, 1), w, x.shape[2:]),
        lambda: convolution._weight_gradient_stride1(g, x, (1, 1), (3, 3)),
        lambda: convolution._input_gradient_by_correlation(g, w, (1, 1)),
    ]


def layer_lines(then: object, rounds: int = 40) -> list[str]:
    """The stride-1 convolution's forward, weight gradient and input gradient at ResNet-20's
    three widths, then and now: the fastest CPU ms of ``rounds`` interleaved rounds."""
    rng, lines = np.random.default_rng(0), []
    for channels, size in ((16, 32), (32, 16), (64, 8)):
        x, g = (rng.standard_normal((64, channels, size, size)).astype(np.float32) for _ in range(2))
        w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
        versions = [_layer_ops(c, x, g, w) for c in (then.engine.convolution, now.engine.convolution)]
        best = np.full((3, 2), np.inf)
        for _ in range(rounds):
            for op in range(3):
                for version in range(2):
                    start = time.process_time()
                    versions[version][op]()
                    best[op, version] = min(best[op, version], time.process_time() - start)
        same = all(np.array_equal(a(), b()) for a, b in zip(*versions, strict=True))
        ms = [f"{1e3 * best[op, 0]:.2f} -> {1e3 * best[op, 1]:.2f}" for op in range(3)]
        lines.append(
            f"{channels} channels at {size}x{size}: forward {ms[0]}, weight gradient {ms[1]}, "
            f"input gradient {ms[2]} ms; bit for bit the same: {same}"
        )
    return lines


def main(commit: str) -> None:
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as folder:
        then = import_then(commit, Path(folder))
        print(f"then: {commit}; now: the working tree; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for name, pairs in (("resnet20", 30), ("resnet1d", 200)):
            print(f"{name} step: {paired(network_step(then, name), network_step(now, name), pairs)}")
        print(f"replayed MLP step, width 32: {blocks(replayed_mlp_block(then), replayed_mlp_block(now), 30)}")
        for line in layer_lines(then):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1])
