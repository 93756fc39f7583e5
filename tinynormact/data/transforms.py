"""Preprocessing for MLPs: flatten examples to vectors, standardize with train statistics."""

from __future__ import annotations

from dataclasses import replace

from tinynormact.data.dataset import DataSplits
from tinynormact.engine.backend import np

__all__ = ["flatten", "standardize"]


def flatten(splits: DataSplits) -> DataSplits:
    """Reshape every example to a vector (images ``(n, c, h, w)`` become ``(n, c*h*w)``)."""
    return DataSplits(
        replace(splits.train, x=splits.train.x.reshape(len(splits.train), -1)),
        replace(splits.test, x=splits.test.x.reshape(len(splits.test), -1)),
    )


def standardize(splits: DataSplits, eps: float = 1e-8) -> DataSplits:
    """Shift and scale each feature to mean 0, standard deviation 1 on the train set.

    The mean and standard deviation (ddof=0) are fitted on the train set only and applied to
    both sets, so no test information leaks into training. Features that are constant on the
    train set (std <= eps, such as MNIST's border pixels) are only shifted. Statistics are
    computed in float64; the result is float64 for float64 inputs and float32 otherwise.
    """
    dtype = np.result_type(splits.train.x.dtype, np.float32)
    train_x = splits.train.x.astype(np.float64)
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > eps, std, 1.0)

    def apply(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(dtype)

    return DataSplits(
        replace(splits.train, x=apply(train_x)),
        replace(splits.test, x=apply(splits.test.x.astype(np.float64))),
    )
