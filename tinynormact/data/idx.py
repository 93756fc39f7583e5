"""Readers for the IDX files of MNIST and Fashion-MNIST, plain or gzipped, from a local folder.

An IDX file is a 4-byte magic number ``0, 0, type, ndim``, then ``ndim`` big-endian uint32
sizes, then the values in C order, big-endian. MNIST images are type 0x08 (uint8) with
``ndim = 3`` (magic 2051), labels uint8 with ``ndim = 1`` (magic 2049). Nothing is downloaded:
put the four files (as distributed, ``.gz`` or not) in one folder and pass its path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tinynormact.data.dataset import DataError, Dataset, DataSplits
from tinynormact.data.file_reading import read_bytes
from tinynormact.engine.backend import np

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist"]

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in one IDX file (``.gz`` is decompressed), in native byte order."""
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(path, f"not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(path, f"truncated header: {len(raw)} bytes, expected at least {header}")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if len(raw) != expected:
        raise DataError(path, f"{len(raw)} bytes but header {shape} of {dtype.name} needs {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path:
    """``folder/name`` or its gzipped twin ``folder/name.gz``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise DataError(folder / name, "file not found (nor with .gz)")


def _read_part(folder: Path, name: str, images_name: str, labels_name: str) -> Dataset:
    images_path, labels_path = _find(folder, images_name), _find(folder, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            images_path, f"expected uint8 images (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            labels_path,
            f"expected {len(images)} labels for {images_path.name}, got shape {labels.shape}",
        )
    if labels.size and labels.max() > 9:
        raise DataError(labels_path, f"labels must lie in 0..9, found {labels.max()}")
    return Dataset(images, labels, name, 10)


def _load_folder(path: str | os.PathLike[str], name: str) -> DataSplits:
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(folder, f"not a folder; expected one holding {', '.join(_FILES['train'])}, ...")
    return DataSplits(*(_read_part(folder, name, *_FILES[part]) for part in ("train", "test")))


def load_mnist(path: str | os.PathLike[str]) -> DataSplits:
    """MNIST from the folder ``path`` holding the four standard IDX files.

    Images are uint8 arrays of shape ``(n, 28, 28)``; use ``flatten`` and ``standardize`` (or
    ``load_dataset``, which does both) before feeding an MLP.
    """
    return _load_folder(path, "mnist")


def load_fashion_mnist(path: str | os.PathLike[str]) -> DataSplits:
    """Fashion-MNIST: the same file names and layout as MNIST (see ``load_mnist``)."""
    return _load_folder(path, "fashion_mnist")
