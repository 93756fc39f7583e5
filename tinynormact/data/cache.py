"""The user's cache directory (generated datasets are written there with ``files.save_npz_atomic``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Where generated datasets are cached.

    ``$TINYNORMACT_CACHE`` if set, else ``$XDG_CACHE_HOME/tinynormact``, else
    ``~/.cache/tinynormact``. The directory is not created here.
    """
    if os.environ.get("TINYNORMACT_CACHE"):
        return Path(os.environ["TINYNORMACT_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tinynormact"
    return Path.home() / ".cache" / "tinynormact"
