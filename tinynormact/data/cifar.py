"""Readers for the CIFAR-10 and CIFAR-100 "python version" archives, from a local path.

The archive ``cifar-10-python.tar.gz`` unpacks to ``cifar-10-batches-py/`` with pickled
batches ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; ``cifar-100-python.tar.gz``
unpacks to ``cifar-100-python/`` with ``train`` and ``test``. Each batch is a dict with
``b'data'``, a uint8 array of shape ``(n, 3072)`` (the red, green and blue 32x32 planes of one
image per row), and the labels: ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` and
``b'coarse_labels'`` (CIFAR-100). The loaders only read; ``tinynormact data download`` (module
``download``) fetches the archives into the data root (``data_root()``), where the loaders look
when no path is given.

Pickles can run arbitrary code when loaded, so batches are read with an unpickler that only
rebuilds plain NumPy arrays and refuses everything else.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

from tinynormact.data.cache import DATA_ROOT_VARIABLE, data_root
from tinynormact.data.dataset import DataError, Dataset, DataSplits
from tinynormact.data.download import ARCHIVES, download_hint
from tinynormact.data.file_reading import read_bytes
from tinynormact.engine.backend import np

__all__ = ["load_cifar10", "load_cifar100"]

_SAFE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_CIFAR100_LABELS = {"fine": (b"fine_labels", 100), "coarse": (b"coarse_labels", 20)}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds dicts, lists, bytes and NumPy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _locate(path: Path | None, name: str, first_batch: str) -> Path:
    """The extracted folder or the archive of dataset ``name`` that ``path`` is or holds.

    ``path=None`` means the data root. When nothing is there, the DataError says where it looked
    and gives the download command.
    """
    archive = ARCHIVES[name]
    where = data_root() if path is None else path
    if (where / archive.folder).is_dir():
        return where / archive.folder
    if (where / archive.filename).is_file():
        return where / archive.filename
    extracted = where.is_dir() and (where.name == archive.folder or (where / first_batch).is_file())
    if where.is_file() or extracted:
        return where
    root = where.parent if where.name.endswith(".gz") or where.name == archive.folder else where
    which = f" (the data root; ${DATA_ROOT_VARIABLE} or the option path= choose another)"
    which = "" if path is not None else which
    raise DataError(
        where,
        f"{archive.title} not found{which}; looked for {archive.filename} and the extracted "
        f"{archive.folder}/ folder; download it with: {download_hint(name, root)}",
    )


def _read_batches(path: Path | None, name: str, names: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """The raw bytes of each batch, as ``{batch: (where it came from, bytes)}``."""
    path = _locate(path, name, names[0])
    if path.is_dir():
        return {batch: (str(path / batch), read_bytes(path / batch)) for batch in names}
    folder = ARCHIVES[name].folder
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {batch: archive.extractfile(f"{folder}/{batch}") for batch in names}
            return {batch: (f"{path}:{folder}/{batch}", file.read()) for batch, file in members.items()}
    except KeyError as exc:
        raise DataError(path, f"archive lacks {exc.args[0]}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(path, f"not a readable tar archive ({exc})") from exc


def _parse_batch(where: str, raw: bytes, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels of one pickled batch."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle raises almost any exception type
        raise DataError(where, f"not a readable CIFAR batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(where, f"expected a dict with b'data' and {label_key!r}, got {keys}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(where, f"b'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < n_classes):
        raise DataError(where, f"{label_key!r} must hold {len(data)} labels in 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _first(dataset: Dataset, count: int | None, option: str) -> Dataset:
    """The first ``count`` examples of ``dataset`` (all of them for None)."""
    if count is None:
        return dataset
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(dataset):
        raise ValueError(
            f"dataset {dataset.name!r}: {option} must be an integer from 1 to {len(dataset)} "
            f"(the examples there are), got {count!r}"
        )
    return dataset.subset(np.arange(count))  # a copy: the full arrays can be freed


def _load(
    path: str | os.PathLike[str] | None,
    name: str,
    parts: dict[str, tuple[str, ...]],
    label_key: bytes,
    n_classes: int,
    counts: tuple[int | None, int | None],
) -> DataSplits:
    """Read every batch of ``parts`` (train and test), join each part's batches and keep the
    first ``counts`` (train, test) examples of each."""
    names = tuple(batch for batches in parts.values() for batch in batches)
    raw = _read_batches(None if path is None else Path(path), name, names)
    datasets = []
    for batches, count, option in zip(parts.values(), counts, ("n_train", "n_test"), strict=True):
        images, labels = zip(
            *(_parse_batch(*raw[batch], label_key, n_classes) for batch in batches), strict=True
        )
        dataset = Dataset(np.concatenate(images), np.concatenate(labels), name, n_classes)
        datasets.append(_first(dataset, count, option))
    return DataSplits(*datasets)


def load_cifar10(
    path: str | os.PathLike[str] | None = None, n_train: int | None = None, n_test: int | None = None
) -> DataSplits:
    """CIFAR-10: 50000 train and 10000 test uint8 images ``(3, 32, 32)`` in 10 classes.

    ``path`` is ``cifar-10-python.tar.gz``, the extracted ``cifar-10-batches-py`` folder, or a
    folder holding either; by default the data root (``$TINYNORMACT_DATA``). ``n_train`` and
    ``n_test`` keep the first that many images of each split, in the archive's order (a fixed
    subset; the archive's order is already random); None keeps all.
    """
    parts = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    return _load(path, "cifar10", parts, b"labels", 10, (n_train, n_test))


def load_cifar100(
    path: str | os.PathLike[str] | None = None,
    labels: str = "fine",
    n_train: int | None = None,
    n_test: int | None = None,
) -> DataSplits:
    """CIFAR-100: 50000 train and 10000 test uint8 images ``(3, 32, 32)``.

    ``labels="fine"`` gives the 100 classes, ``"coarse"`` the 20 superclasses. ``path`` is
    ``cifar-100-python.tar.gz``, the extracted ``cifar-100-python`` folder, or a folder holding
    either; by default the data root (``$TINYNORMACT_DATA``). ``n_train``, ``n_test``: the first
    that many images of each split (None: all), as for ``load_cifar10``.
    """
    if labels not in _CIFAR100_LABELS:
        raise ValueError(f"labels must be one of {', '.join(_CIFAR100_LABELS)}, got {labels!r}")
    label_key, n_classes = _CIFAR100_LABELS[labels]
    parts = {"train": ("train",), "test": ("test",)}
    return _load(path, "cifar100", parts, label_key, n_classes, (n_train, n_test))
