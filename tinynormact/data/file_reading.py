"""Reading a user's data file into memory, with one clear ``DataError`` when that fails."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from tinynormact.data.dataset import DataError

__all__ = ["read_bytes"]


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, decompressed when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, f"cannot be read ({exc})") from exc
