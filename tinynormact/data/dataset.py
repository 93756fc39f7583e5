"""Datasets as host arrays: ``Dataset``, the ``DataSplits`` train/test pair, and ``DataError``.

A dataset is just two NumPy arrays on the host: inputs ``x`` with one example per row (any
trailing shape) and integer class labels ``y`` in ``[0, n_classes)``. Moving batches to a device
is the ``DataLoader``'s job; everything here stays in host memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinynormact.engine import backend
from tinynormact.engine.backend import np

__all__ = ["DataError", "Dataset", "DataSplits"]


class DataError(ValueError):
    """A data file is missing or corrupt; the message names the file."""

    def __init__(self, path: Any, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass
class Dataset:
    """Examples ``x`` (first axis indexes examples) with integer labels ``y``.

    ``y`` is stored as int64; labels must lie in ``[0, n_classes)``.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    n_classes: int

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x)
        y = np.asarray(self.y)
        if self.x.ndim < 1 or y.ndim != 1:
            raise ValueError(
                f"dataset {self.name!r}: x must have one row per example and y must be 1-D, "
                f"got x.shape={self.x.shape}, y.shape={y.shape}"
            )
        if len(self.x) != len(y):
            raise ValueError(
                f"dataset {self.name!r}: x and y hold different numbers of examples, "
                f"x.shape={self.x.shape}, y.shape={y.shape}"
            )
        if y.size and y.dtype.kind not in "iu":
            raise ValueError(f"dataset {self.name!r}: labels must be integers, got dtype {y.dtype}")
        if self.n_classes < 1:
            raise ValueError(f"dataset {self.name!r}: n_classes must be >= 1, got {self.n_classes}")
        self.y = y.astype(np.int64, copy=False)
        if self.y.size and (self.y.min() < 0 or self.y.max() >= self.n_classes):
            raise ValueError(
                f"dataset {self.name!r}: labels must lie in [0, {self.n_classes}), "
                f"got values from {self.y.min()} to {self.y.max()}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example, ``x.shape[1:]``."""
        return self.x.shape[1:]

    def subset(self, indices: Any) -> Dataset:
        """The examples at ``indices`` (an index array, a slice or a boolean mask)."""
        return Dataset(self.x[indices], self.y[indices], self.name, self.n_classes)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> DataSplits:
        """Shuffle with ``seed`` and cut into a train and a test part.

        The test part holds ``round(test_fraction * len(self))`` examples.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
        order = backend.default_rng(seed).permutation(len(self))
        n_test = round(test_fraction * len(self))
        return DataSplits(self.subset(order[n_test:]), self.subset(order[:n_test]))


@dataclass(frozen=True)
class DataSplits:
    """A train and a test ``Dataset`` of the same kind of examples."""

    train: Dataset
    test: Dataset

    def check_finite(self) -> None:
        """Raise ValueError naming the split, the first example and the value when an input is
        NaN or Inf (training on it would only report a divergence at step 1)."""
        for split, data in (("train", self.train), ("test", self.test)):
            x = data.x
            if x.dtype.kind not in "fc" or len(x) == 0:
                continue
            finite_rows = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if not finite_rows.all():
                i = int(np.flatnonzero(~finite_rows)[0])
                value = x[i][~np.isfinite(x[i])].flat[0]
                raise ValueError(
                    f"dataset {data.name!r}: the {split} split holds {value} in example {i} "
                    f"(the first of {int((~finite_rows).sum())} examples that are not finite); "
                    "inputs must be finite numbers"
                )

    def __post_init__(self) -> None:
        train, test = self.train, self.test
        if train.example_shape != test.example_shape or train.n_classes != test.n_classes:
            raise ValueError(
                "train and test sets must have the same example shape and classes, got "
                f"train {train.example_shape} with {train.n_classes} classes and "
                f"test {test.example_shape} with {test.n_classes} classes"
            )
