"""Checks of plain Python values, shared by every module that validates user input."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_finite_real"]


def is_finite_real(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
