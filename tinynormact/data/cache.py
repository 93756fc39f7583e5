"""The user's folders: the cache (generated datasets) and the data root (downloaded archives)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOT_VARIABLE", "cache_dir", "data_root"]

DATA_ROOT_VARIABLE = "TINYNORMACT_DATA"


def cache_dir() -> Path:
    """Where generated datasets are cached (written there with ``files.save_npz_atomic``).

    ``$TINYNORMACT_CACHE`` if set, else ``$XDG_CACHE_HOME/tinynormact``, else
    ``~/.cache/tinynormact``. The directory is not created here.
    """
    if os.environ.get("TINYNORMACT_CACHE"):
        return Path(os.environ["TINYNORMACT_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tinynormact"
    return Path.home() / ".cache" / "tinynormact"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds downloaded archives (CIFAR): ``root`` when given, else
    ``$TINYNORMACT_DATA`` if set, else ``cache_dir() / "data"``. It is not created here."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ROOT_VARIABLE):
        return Path(os.environ[DATA_ROOT_VARIABLE]).expanduser()
    return cache_dir() / "data"
