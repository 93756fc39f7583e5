"""The memory of the tracker's record: process RSS over many tracked steps, for three storages.

A 4-layer MLP (width 16, batch 16, float64) trains with a VarianceTracker of all 14 statistics,
56 numbers or 448 bytes of data per recorded step, whose record is in turn

- "lists of floats": the storage the tracker had before ``records.py`` (per step a list per
  statistic of one Python float per layer), as a stand-in with the record's ``append``;
- "TrackRecord, memory": ``records.TrackRecord``, rows in chunked arrays;
- "TrackRecord, streamed": the same streamed to a temporary folder (``flush_every`` 1000 rows,
  each flush fsync'd), keeping only its window in memory.

Each storage runs in a fresh process: after 500 warm-up steps, the growth of the resident set
size (VmRSS, Linux) over STEPS more tracked steps, per step; and the record's own arrays
(``TrackRecord.nbytes``) per step. STEPS is 5,000, or the value of BENCH_RECORD_STEPS (the
figures of docs/guide/tracking.md: 20,000). The step time is the mean over those steps; "append" is the time
of the storage's ``append`` alone, over 5,000 appends of a table to a new storage of the kind
(for the streamed record, its flushes included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import tinynormact as tn
from tinynormact import losses, nn, optim
from tinynormact.tracking.records import TrackRecord
from tinynormact.tracking.tracker import STATISTICS, VarianceTracker

STORAGES = ("lists of floats", "TrackRecord, memory", "TrackRecord, streamed")
WARMUP, DEFAULT_STEPS, RAW_BYTES = 500, 5000, 8 * 14 * 4


class ListsOfFloats:
    """The record as the tracker kept it before records.py: a list of steps and, per step, a
    list per statistic of Python floats."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.tables: list[list[list[float]]] = []
        self.nbytes = None

    def append(self, step: int, table: np.ndarray) -> None:
        self.steps.append(step)
        self.tables.append(table.tolist())

    def flush(self) -> None:
        pass


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _storage(kind: str, folder: str) -> Any:
    if kind == "lists of floats":
        return ListsOfFloats()
    path = os.path.join(folder, "tracking") if kind.endswith("streamed") else None
    return TrackRecord(STATISTICS, ["0", "2", "4", "6"], path=path)


def _append_seconds(kind: str, table: np.ndarray, n: int = 5000) -> float:
    with tempfile.TemporaryDirectory() as folder:
        storage = _storage(kind, folder)
        start = time.perf_counter()
        for step in range(n):
            storage.append(step, table)
        return (time.perf_counter() - start) / n


def _worker(storage: str, steps: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    model = nn.MLP([16, 16, 16, 16, 4], "tanh", dtype="float64", rng=0)
    optimizer = optim.SGD(model.parameters(), lr=1e-3)
    x = tn.Tensor(rng.standard_normal((16, 16)))
    y = tn.Tensor(rng.standard_normal((16, 4)))
    with tempfile.TemporaryDirectory() as folder:
        tracker = VarianceTracker(model)
        tracker.record = _storage(storage, folder)
        with tracker:
            for k in range(WARMUP + steps):
                if k == WARMUP:
                    rss, nbytes, start = _rss_bytes(), tracker.record.nbytes, time.perf_counter()
                optimizer.zero_grad()
                losses.mse_loss(model(x), y).backward()
                optimizer.step()
            seconds = time.perf_counter() - start
            rss_growth = _rss_bytes() - rss
            record_growth = None if nbytes is None else tracker.record.nbytes - nbytes
        table = np.full((len(STATISTICS), 4), np.pi)
    append = _append_seconds(storage, table)
    return {"rss": rss_growth / steps, "record": record_growth, "ms": 1e3 * seconds / steps, "append": append}


def main() -> None:
    steps = int(os.environ.get("BENCH_RECORD_STEPS", DEFAULT_STEPS))
    print(f"4-layer MLP, all 14 statistics: {RAW_BYTES} bytes of data per tracked step; {steps} steps")
    rows = []
    for storage in STORAGES:
        command = [sys.executable, "-m", "benchmarks.bench_records", storage, str(steps)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append((storage, json.loads(done.stdout)))
    reference = rows[0][1]
    header = ("storage", "RSS growth B/step", "x data", "record B/step", "ms/step", "x lists", "append us")
    print("   " + " | ".join(header))
    for storage, got in rows:
        record = "-" if got["record"] is None else f"{got['record'] / steps:.0f}"
        cells = (
            storage,
            f"{got['rss']:.0f}",
            f"{got['rss'] / RAW_BYTES:.2f}",
            record,
            f"{got['ms']:.3f}",
            f"{got['ms'] / reference['ms']:.2f}",
            f"{1e6 * got['append']:.1f}",
        )
        print("   " + " | ".join(cells))


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], int(sys.argv[2]))))
