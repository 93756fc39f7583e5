"""Atomic file writes: a file is either its old version or its complete new one.

Every writer of the library (data caches, checkpoints, tracker exports, figures, run folders)
goes through ``write_atomically``: the content goes to a temporary file in the target's folder,
which is flushed to disk (``fsync``), then replaces the target in one ``os.replace``, and the
folder is synced so the rename itself survives a power cut. An error or Ctrl-C half way leaves
the old file untouched; a crash (kill -9) can leave a temporary ``.<name>.*.tmp`` file behind,
which ``remove_stale_temporaries`` deletes when the same run starts again. A failure to write
names the target, not the temporary file. JSON is strict: NaN and Inf become ``null``; NumPy
(or CuPy) scalars and arrays become numbers and lists.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any

from tinynormact.engine import backend

__all__ = [
    "RunNotice",
    "check_writable",
    "jsonable",
    "remove_stale_temporaries",
    "save_npz_atomic",
    "set_aside",
    "write_atomically",
    "write_json_atomic",
    "write_text_atomic",
]


class RunNotice(UserWarning):
    """Something a user should know about their run files, that did not stop the run (a stale
    lock taken over, a damaged checkpoint replaced by the previous one)."""


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename inside it is on disk (a no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync folders; the rename is still atomic
    finally:
        os.close(fd)


def write_atomically(
    path: str | Path, write: Callable[[IO[bytes]], Any], before_replace: Callable[[], Any] | None = None
) -> None:
    """Call ``write(file)`` on a temporary binary file next to ``path``, then move it onto ``path``
    in one step, so ``path`` is never left half written. Parent folders are created.
    ``before_replace()`` runs once the new content is complete on disk, just before the move
    (to set the old ``path`` aside: a failed write then leaves it in place)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual permissions
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    _sync_folder(path.parent)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files that ``write_atomically(path, ...)`` left behind when its
    process was killed; returns them. Call it only while no other process writes ``path``
    (under the run folder's lock)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f"{glob_escape(_temporary_prefix(path))}*.tmp"))
    for file in stale:
        file.unlink(missing_ok=True)
    return stale


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` (and its parents) and write and delete a small file in it, so that a
    long computation learns at its start, not its end, that it cannot save its output. Raises
    OSError naming the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"cannot write into {folder}: {exc.strerror or exc}") from exc


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


def set_aside(folder: Path) -> Path | None:
    """Rename ``folder`` (a damaged record) to the first free ``<folder>.damaged[-N]`` beside it and
    return the new path; None when it does not exist. Nothing is deleted."""
    if not folder.exists():
        return None
    aside, n = folder.with_name(f"{folder.name}.damaged"), 0
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.damaged-{n}")
    folder.rename(aside)
    return aside
