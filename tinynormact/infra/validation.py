"""Checks of plain Python values given by a user: the one place for each rule.

One behaviour everywhere:

- an integer is an ``int`` or a NumPy integer (``numbers.Integral``), never a bool and never a
  float, not even 3.0: a float where a count belongs is a caller's arithmetic showing through
  (a width computed by division), and truncating it would hide that;
- a real is a finite int or float, never a bool;
- a boolean is ``True`` or ``False`` only (not 0, 1 or a string).

Each ``check_*`` returns the value (an int, a float, ...) or raises ``error`` (ValueError by
default; a config passes its ConfigError) with one message naming the value and what is valid,
``"{name} must be an integer >= 1, got 2.5"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_integer",
    "check_positive",
    "check_real",
    "integer_range",
    "is_finite_real",
    "is_integer",
]


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer: an int or NumPy integer, not a bool, not a float."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_real(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer_range(low: int | None = None, high: int | None = None) -> str:
    """'an integer', 'an integer >= 1' or 'an integer in [0, 5]': what ``check_integer`` accepts."""
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    if low is not None:
        return f"an integer >= {low}"
    return "an integer" if high is None else f"an integer <= {high}"


def check_integer(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an int if it is an integer in [low, high] (either bound may be None)."""
    if not (is_integer(value) and (low is None or value >= low) and (high is None or value <= high)):
        raise error(f"{name} must be {integer_range(low, high)}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    error: type[Exception] = ValueError,
) -> float:
    """``value`` as a float if it is a finite number in [low, high] (bounds may be None)."""
    if not (is_finite_real(value) and (low is None or value >= low) and (high is None or value <= high)):
        bounds = [f">= {low}"] * (low is not None) + [f"<= {high}"] * (high is not None)
        valid = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        raise error(f"{name} must be {valid}, got {value!r}")
    return float(value)


def check_positive(name: str, value: Any, error: type[Exception] = ValueError) -> float:
    """``value`` as a float if it is a finite number > 0."""
    if not (is_finite_real(value) and value > 0):
        raise error(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, valid: Sequence[Any], error: type[Exception] = ValueError) -> Any:
    """``value`` if it is one of ``valid``: "{name} 'x' is unknown; valid: a, b"."""
    if isinstance(value, bool) or value not in valid:
        raise error(f"{name} {value!r} is unknown; valid: {', '.join(map(str, valid))}")
    return value


def check_bool(name: str, value: Any, error: type[Exception] = ValueError) -> bool:
    """``value`` if it is True or False: "{name} must be true or false, got 1"."""
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false, got {value!r}")
    return value
