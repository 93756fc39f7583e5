"""Atomic file writes: a file is either its old version or its complete new one.

Every writer of the library (data caches, checkpoints, tracker exports, figures, run folders)
goes through ``write_atomically``: the content goes to a temporary file in the target's folder,
which then replaces the target in one ``os.replace``. An error or Ctrl-C half way leaves the
old file untouched. JSON is strict: NaN and Inf become ``null``; NumPy (or CuPy) scalars and
arrays become numbers and lists.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tinynormact import backend

__all__ = ["jsonable", "save_npz_atomic", "write_atomically", "write_json_atomic", "write_text_atomic"]


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary binary file next to ``path``, then move it onto ``path``
    in one step, so ``path`` is never left half written. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual permissions
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


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


def write_json_atomic(path: str | Path, value: Any, indent: int | None = 1) -> None:
    """Write ``jsonable(value)`` as strict JSON to ``path``, atomically."""
    write_text_atomic(path, json.dumps(jsonable(value), indent=indent, allow_nan=False) + "\n")


def save_npz_atomic(path: str | Path, **arrays: Any) -> None:
    """Write host arrays to ``path`` as an uncompressed ``.npz``, atomically."""
    write_atomically(path, lambda file: backend.np.savez(file, **arrays))
