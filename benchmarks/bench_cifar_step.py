"""Throughput of a CIFAR training step: ResNet-20 and ResNet-50 (32x32 stem), batch 128, float32.

One step is forward, softmax cross-entropy, backward and SGD with momentum 0.9 and weight decay
5e-4 (the cifar presets' optimizer), on random 3x32x32 inputs (the step's arithmetic does not
depend on the pixel values). Reported per network: wall time and CPU time per step (median of
the timed steps after one warm-up step), images per second of wall time and per CPU-second,
the forward FLOPs per image (``costs.forward_flops``) and the training FLOP rate they imply
(3 x forward, ``costs.TRAINING_FLOPS_FACTOR``), the estimated memory of the step at this batch
(``costs.step_memory_estimate``; after the table, the process's peak resident memory, which
follows the larger network's step), and the 1-minute load average before and after. On a shared
machine the wall time depends on the other processes; the CPU time much less (with one BLAS
thread it counts the work this process did), so images per CPU-second is the figure to compare.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable

import tinynormact as tn
from benchmarks.bench_conv_step import engine_step
from benchmarks.timing import keep_memory_note
from tinynormact.engine.backend import np
from tinynormact.tracking.costs import TRAINING_FLOPS_FACTOR, forward_flops, step_memory_estimate

BATCH = 128
NETWORKS: dict[str, tuple[Callable[[], tn.nn.Module], int]] = {
    # (builder, timed steps after the warm-up): ResNet-50 is ~30x the arithmetic of ResNet-20
    "resnet20": (lambda: tn.nn.resnet20(num_classes=100, rng=0), 3),
    "resnet50": (lambda: tn.nn.resnet50(num_classes=100, rng=0), 1),
}


def measure(name: str, batch: int = BATCH) -> dict[str, float]:
    build, steps = NETWORKS[name]
    model = build()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = tn.Tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    labels = rng.integers(0, 100, batch)
    flops = forward_flops(model, (3, 32, 32))
    memory = step_memory_estimate(model, (3, 32, 32), batch).total
    load_before = os.getloadavg()[0]
    engine_step(model, optimizer, x, labels)  # warm-up: allocates the momentum buffers
    wall, cpu = [], []
    for _ in range(steps):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        engine_step(model, optimizer, x, labels)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    wall_s, cpu_s = statistics.median(wall), statistics.median(cpu)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "images_per_s": batch / wall_s,
        "images_per_cpu_s": batch / cpu_s,
        "forward_flops": flops,
        "gflops_per_cpu_s": TRAINING_FLOPS_FACTOR * flops * batch / cpu_s / 1e9,
        "memory_bytes": memory,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(
        f"one SGD step (momentum, weight decay), float32, batch {BATCH} of 3x32x32, 100 classes; "
        f"OPENBLAS_NUM_THREADS={threads}, {os.cpu_count()} CPUs"
    )
    print(keep_memory_note())
    print(
        f"{'network':>9} {'wall s':>7} {'CPU s':>7} {'img/s':>7} {'img/CPU-s':>10} {'fwd GFLOP/img':>14} "
        f"{'GFLOP/CPU-s':>12} {'est. GiB':>9} {'load before/after':>18}"
    )
    for name in NETWORKS:
        r = measure(name)
        print(
            f"{name:>9} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} {r['images_per_s']:>7.1f} "
            f"{r['images_per_cpu_s']:>10.1f} {r['forward_flops'] / 1e9:>14.4f} "
            f"{r['gflops_per_cpu_s']:>12.1f} "
            f"{r['memory_bytes'] / 2**30:>9.2f} {r['load_before']:>8.1f} / {r['load_after']:<8.1f}"
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"process peak resident memory: {peak_kib / 2**20:.2f} GiB (estimates: arrays of the step only)")


if __name__ == "__main__":
    main()
