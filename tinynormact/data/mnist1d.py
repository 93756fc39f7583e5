"""MNIST-1D, generated offline with the ``mnist1d`` package and cached as ``.npz``.

MNIST-1D (Greydanus, 2020) turns the ten digit templates into 40-sample 1-D signals with
random padding, translation, shear, scaling and noise. It is small enough to train MLPs on a
CPU in seconds, yet hard enough to separate good models from bad ones, which makes it this
project's default real benchmark. The data is generated with the package's own generator
(``mnist1d.data.make_dataset``), never downloaded.
"""

from __future__ import annotations

import random
import warnings
import zipfile
from pathlib import Path

from tinynormact.data.cache import cache_dir
from tinynormact.data.dataset import Dataset, DataSplits
from tinynormact.engine.backend import np
from tinynormact.infra.files import save_npz_atomic
from tinynormact.infra.memory import require_memory

__all__ = ["load_mnist1d", "mnist1d_cache_path"]

_INSTALL_HINT = "MNIST-1D needs the optional mnist1d package: pip install 'tinynormact[data]'"
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def mnist1d_cache_path(num_samples: int = 5000, seed: int = 42) -> Path:
    """The cache file of the MNIST-1D variant with these parameters."""
    return cache_dir() / f"mnist1d_n{num_samples}_seed{seed}.npz"


def _generate(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """Run the mnist1d generator, leaving the global random states as they were.

    ``make_dataset`` seeds NumPy's and Python's global generators; we restore both afterwards
    so generating data never changes other code's random numbers.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {
        "x_train": data["x"],
        "y_train": data["y"],
        "x_test": data["x_test"],
        "y_test": data["y_test"],
    }


def _read_cache(path: Path, num_samples: int) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (with a warning) when the file is unreadable or inconsistent."""
    try:
        with np.load(path) as file:
            arrays = {key: file[key] for key in _KEYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        problem = f"cannot be read ({exc})"
    else:
        sizes = len(arrays["x_train"]) + len(arrays["x_test"])
        if sizes == num_samples and all(
            len(arrays[f"x_{part}"]) == len(arrays[f"y_{part}"]) for part in ("train", "test")
        ):
            return arrays
        problem = f"has arrays of unexpected sizes (expected {num_samples} examples)"
    warnings.warn(f"MNIST-1D cache {path} {problem}; regenerating it", stacklevel=3)
    return None


def load_mnist1d(num_samples: int = 5000, seed: int = 42, regenerate: bool = False) -> DataSplits:
    """MNIST-1D with ``num_samples`` examples (80 % train, 20 % test), 40 features, 10 classes.

    The defaults are the package's own (5000 examples, seed 42). The first call generates it (about a
    second for 5000 examples) and caches it in ``mnist1d_cache_path(num_samples, seed)``; later
    calls read the cache. A corrupt cache file is regenerated with a warning; ``regenerate=True``
    always regenerates. ``num_samples`` must be a multiple of 10 (the generator makes the same
    number of examples for each digit).
    """
    if num_samples < 10 or num_samples % 10:
        raise ValueError(f"num_samples must be a positive multiple of 10, got {num_samples}")
    require_memory(4 * 8 * num_samples * 40, f"mnist1d with {num_samples} examples")
    path = mnist1d_cache_path(num_samples, seed)
    arrays = None if regenerate or not path.exists() else _read_cache(path, num_samples)
    if arrays is None:
        arrays = _generate(num_samples, seed)
        save_npz_atomic(path, **arrays)
    return DataSplits(
        Dataset(arrays["x_train"], arrays["y_train"], "mnist1d", 10),
        Dataset(arrays["x_test"], arrays["y_test"], "mnist1d", 10),
    )
