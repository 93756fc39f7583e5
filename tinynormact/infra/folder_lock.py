"""One writer per run folder: ``with folder_lock(path): ...`` holds an exclusive lock on ``path``.

The lock is ``fcntl.flock`` on a small file next to the folder, ``.<name>.lock`` in its parent
(next to it rather than inside, so a folder that does not exist yet, or that is replaced by a
rename when it is complete, can be locked all the same). The file holds the PID of its holder.

- A second process that asks for the same folder is refused at once with ``FolderLocked``,
  whose message names the holder's PID; nothing waits.
- The kernel releases a flock when its process dies (kill -9 included), so a lock file left
  behind by a crash is not held by anybody: the next run takes it over and warns with a
  ``RunNotice`` naming the process that is gone.
- On release the file is removed. A process that opened the file just before its removal
  notices (its open file is no longer the one at the path) and tries again.

The lock is advisory and POSIX-only (Linux, macOS): it keeps tinynormact runs apart, not
other programs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from tinynormact.infra.files import RunNotice

__all__ = ["FolderLocked", "folder_lock", "lock_path"]


class FolderLocked(RuntimeError):
    """Another process holds the lock of the folder (``pid``: its process id, or None if it had
    not written it yet)."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{folder} is in use by {holder} (lock file {lock_path(folder)}); wait for that run to "
            "end or stop it, or choose another folder"
        )
        self.folder, self.pid = folder, pid


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``.<name>.lock`` in the folder's parent."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _acquire(path: Path, folder: Path) -> int:
    """An open descriptor of ``path`` holding its flock; FolderLocked when another process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise FolderLocked(folder, pid) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed the file between our open and flock: retry


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` within the block; yields the lock file's path.

    Raises FolderLocked (naming the holder's PID) when another process holds it; warns with a
    RunNotice when it takes over the lock file of a process that died without releasing it.
    The folder's parent is created if needed; the folder itself is not.
    """
    folder = Path(os.path.abspath(folder))
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, folder)
    try:
        previous = _read_pid(fd)
        if previous is not None:
            warnings.warn(
                f"{folder}: taking over the lock of process {previous}, which ended without "
                "releasing it (crashed or killed)",
                RunNotice,
                stacklevel=3,
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
