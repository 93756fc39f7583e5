"""Refusing sizes that cannot fit in memory before allocating them, with the estimate.

A typo such as ``--width 2000000000`` would otherwise end in a MemoryError after minutes, or in
the operating system killing the process. ``require_memory(nbytes, what)`` compares an estimate
with the memory this machine has available now (``MemAvailable`` of /proc/meminfo on Linux,
the free physical pages elsewhere) and raises ``MemoryEstimateError`` naming both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

__all__ = ["MemoryEstimateError", "available_memory", "format_bytes", "mlp_bytes", "require_memory"]


class MemoryEstimateError(ValueError):
    """The requested sizes need more memory than the machine has available."""


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest unit that keeps the number >= 1 (B, KiB, ..., EiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now; None where it cannot be told."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def mlp_bytes(widths: Sequence[int], batch: int, itemsize: int, copies: int = 1) -> int:
    """A lower bound on the memory of an MLP with layer widths ``widths``: its weights and biases
    (``copies`` times: parameter, gradient, optimizer state) and one batch's activations."""
    parameters = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=False))
    activations = batch * sum(widths)
    return (copies * parameters + activations) * itemsize


def require_memory(nbytes: float, what: str) -> None:
    """Raise MemoryEstimateError when ``what`` (its estimated ``nbytes``) cannot fit in the memory
    available now; do nothing when the available memory is unknown."""
    available = available_memory()
    if available is not None and (not math.isfinite(nbytes) or nbytes > available):
        raise MemoryEstimateError(
            f"{what} would need at least {format_bytes(nbytes)} of memory, but this machine has "
            f"{format_bytes(available)} available; choose smaller sizes"
        )
