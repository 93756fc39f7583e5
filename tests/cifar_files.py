"""Small CIFAR-format files written by the tests (the real archives are never committed or fetched)."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def cifar_batch(n: int, seed: int, label_keys: dict[bytes, int]) -> dict[bytes, object]:
    """A batch as the archives store it: uint8 rows of 3072 pixels and a list of labels per key."""
    rng = np.random.default_rng(seed)
    batch: dict[bytes, object] = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    for key, n_classes in label_keys.items():
        batch[key] = rng.integers(0, n_classes, n).tolist()
    return batch


def pickle_batch(batch: object) -> bytes:
    # The real files come from Python 2 and NumPy 1: protocol 2, numpy.core module names.
    return pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar10(root: Path, n: int = 3) -> dict[str, dict[bytes, object]]:
    """The extracted ``cifar-10-batches-py`` folder in ``root`` with ``n`` images per batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {name: cifar_batch(n, seed, {b"labels": 10}) for seed, name in enumerate(CIFAR10_BATCHES)}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle_batch(batch))
    return batches


def tar_folder(folder: Path, archive: Path) -> None:
    """Pack ``folder`` into the gzipped tar ``archive`` under its own name, as the real archives are."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
