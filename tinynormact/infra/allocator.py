"""Keeping the memory a training step frees for the next step (glibc's malloc).

Every training step allocates and frees the same arrays. NumPy takes them from the C library's
``malloc``, and glibc, by default, hands a large freed block back to the operating system: it
serves a request above its mmap threshold with fresh pages of its own mapping, and it trims its
heap once more than its trim threshold lies free at the top. Both thresholds start low and
adapt to the sizes freed so far, but a step's many sizes keep them below what the step needs.
The next step then gets fresh pages, and the kernel maps and zeroes each one at its first
touch, one page fault at a time: about 19,000 faults per ResNet-20 step at batch 64 in a
process running only the engine, 8-13% of the step's time (docs/guide/allocator.md).

``keep_freed_memory()`` fixes the two thresholds: blocks below ``MMAP_THRESHOLD`` come from the
heap, and up to ``RETAINED`` bytes of freed memory stay in the process, so each step reuses the
pages of the last. The peak memory of a step does not change (the step reaches it anyway); the
process simply keeps it between steps. Training (``train.train``) and the benchmarks call it;
it changes no number, only where memory comes from. Where the C library is not glibc (macOS,
Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["MMAP_THRESHOLD", "RETAINED", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # blocks above 32 MiB (whole datasets) still get a mapping of their own
RETAINED = 1 << 30  # free memory at the top of the heap kept for reuse: up to 1 GiB


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds (module docstring). True when both were set; False
    where the C library has no ``mallopt`` that takes them (not glibc), which leaves it as it
    was."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, RETAINED))
