"""The rules every benchmark uses: the median of repeated calls for time, tracemalloc's peak
for the memory of one call."""

from __future__ import annotations

import gc
import importlib.util
import statistics
import time
import tracemalloc
from collections.abc import Callable

from tinynormact.engine.backend import np
from tinynormact.infra.allocator import keep_freed_memory


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds); the median ignores outliers
    from the rest of the machine better than the mean."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(fn: Callable[[], object]) -> int:
    """The peak memory allocated during one call of ``fn`` above what was allocated before it
    (tracemalloc, which sees NumPy's buffers)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def sgemm_rate(size: int = 1024, repeats: int = 10, clock: Callable[[], float] = time.process_time) -> float:
    """GFLOP/s of a float32 (size x size) @ (size x size) product, the median of ``repeats``
    timed by ``clock`` (CPU time by default, as the step tables): what this process's BLAS
    reaches at its thread count, the ceiling the benchmarks compare to."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    times = []
    for _ in range(repeats):
        start = clock()
        a @ a
        times.append(clock() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def has_torch() -> bool:
    """Whether PyTorch is installed (the benchmarks then add a PyTorch column)."""
    return importlib.util.find_spec("torch") is not None


def torch_missing_message() -> str:
    return "PyTorch is not installed: the PyTorch column is skipped (pip install torch, its CPU build)"


def keep_memory_note() -> str:
    """Keep freed memory for reuse in this process, as training does (``infra.allocator``), for
    every version alike; the line that says so in a benchmark's header."""
    kept = "yes" if keep_freed_memory() else "no (the C library is not glibc)"
    return f"freed memory kept for the next step, as in training (infra.allocator): {kept}"
