"""The user's cache directory and atomic ``.npz`` writes into it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinynormact.backend import np

__all__ = ["cache_dir", "save_npz_atomic"]


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


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` as ``.npz`` so that ``path`` is never left half written.

    The data goes to a temporary file in the same directory first, which then replaces
    ``path`` in one step (``os.replace``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
