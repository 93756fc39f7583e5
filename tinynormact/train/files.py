"""Atomic writes of text and JSON: a file is either its old version or its complete new one.

Each write goes to a temporary file in the target's folder, which then replaces the target in one
``os.replace``. JSON is strict: NaN and Inf become ``null`` and NumPy scalars and arrays become
numbers and lists.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from tinynormact import backend

__all__ = ["jsonable", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) so that ``path`` is never left half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays turned into Python numbers and lists, tuples into
    lists, and non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy (or CuPy) arrays and scalars
        return jsonable(backend.to_numpy(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | Path, value: Any) -> None:
    """Write ``jsonable(value)`` as indented strict JSON to ``path``, atomically."""
    write_text_atomic(path, json.dumps(jsonable(value), indent=1, allow_nan=False) + "\n")
