"""``infra.allocator.keep_freed_memory``: memory freed by one round of allocations is reused by
the next without fresh pages. Counted in page faults (``getrusage``), not in time, in a fresh
process each (glibc's thresholds are process state)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tinynormact.infra.allocator import keep_freed_memory

# Two rounds of twenty 3 MiB arrays (below the 32 MiB mmap threshold), each array written and
# all freed; prints the page faults of the second round (60 MiB: 15,360 pages of 4 KiB).
PROBE = """
import resource, sys
import numpy as np
from tinynormact.infra.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def one_round():
    arrays = [np.ones(3 << 20, dtype=np.uint8) for _ in range(20)]
    del arrays
one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
one_round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = 20 * (3 << 20) // 4096


def second_round_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the C library is not glibc: keep_freed_memory does nothing"
)


@glibc_only
def test_the_second_round_reuses_the_first_rounds_pages() -> None:
    # without it, glibc gives the freed heap back and the second round faults on every page: the
    # probe sees the difference (a check of the test itself, so that it can fail)
    assert second_round_faults("default") > PAGES // 2
    assert second_round_faults("keep") < PAGES // 100


def test_it_does_nothing_where_the_c_library_has_no_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
