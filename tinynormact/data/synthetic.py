"""Generated classification data with no downloads: teacher network, Gaussian mixture, spirals.

Each generator draws ``n_train + n_test`` examples from one seeded host random generator and
cuts them into the first ``n_train`` (train) and the rest (test), so the two sets come from the
same distribution and the same seed always gives the same arrays. Inputs are float64.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinynormact.data.dataset import Dataset, DataSplits
from tinynormact.engine import backend
from tinynormact.engine.backend import np
from tinynormact.infra.memory import require_memory

__all__ = ["teacher", "gaussian_mixture", "spirals"]


def _check_sizes(n_train: int, n_test: int, n_classes: int, n_features: int = 2, widest: int = 0) -> None:
    """Sizes must be positive (>= 2 classes), and the generated float64 arrays (inputs, and the
    widest layer of a teacher, each with a temporary copy) must fit in memory."""
    for name, value, minimum in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("n_classes", n_classes, 2),
        ("n_features", n_features, 1),
    ):
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    n = n_train + n_test
    require_memory(2 * 8 * n * max(n_features, widest, n_classes), f"{n} examples of {n_features} features")


def _cut(x: np.ndarray, y: np.ndarray, n_train: int, name: str, n_classes: int) -> DataSplits:
    """Split generated arrays into the first ``n_train`` examples and the rest."""
    return DataSplits(
        Dataset(x[:n_train], y[:n_train], name, n_classes),
        Dataset(x[n_train:], y[n_train:], name, n_classes),
    )


def teacher(
    n_train: int = 2000,
    n_test: int = 1000,
    n_features: int = 20,
    n_classes: int = 10,
    hidden: Sequence[int] = (64,),
    label_noise: float = 0.0,
    seed: int = 0,
) -> DataSplits:
    """Inputs ``x ~ N(0, I)`` labelled by a random tanh MLP teacher.

    The teacher has hidden widths ``hidden`` and weights drawn ``N(0, 1/fan_in)``; an example's
    label is ``argmax(logits + label_noise * N(0, 1))``, so ``label_noise=0`` gives labels that
    are an exact function of ``x``. Classes need not be balanced; a draw that leaves fewer than two
    classes in the train set raises ValueError (nothing to learn).
    """
    if any(width < 1 for width in hidden):
        raise ValueError(f"teacher: hidden must be a list of layer widths >= 1, got {list(hidden)}")
    _check_sizes(n_train, n_test, n_classes, n_features, max(hidden, default=0))
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    rng = backend.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, n_features))
    h = x
    widths = [n_features, *hidden, n_classes]
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        h = h @ rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, fan_out))
        if layer < len(widths) - 2:
            h = np.tanh(h)
    y = np.argmax(h + label_noise * rng.standard_normal(h.shape), axis=1)
    if len(np.unique(y[:n_train])) < 2:
        raise ValueError(
            f"teacher: every train example got the same label {int(y[0])} (hidden={list(hidden)}, "
            f"n_features={n_features}); use wider hidden layers or more features"
        )
    return _cut(x, y, n_train, "teacher", n_classes)


def gaussian_mixture(
    n_train: int = 2000,
    n_test: int = 1000,
    n_features: int = 2,
    n_classes: int = 4,
    separation: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
) -> DataSplits:
    """One isotropic Gaussian blob per class.

    Class means are drawn ``N(0, I)``, rescaled to norm ``separation``; an example is its
    class mean plus ``noise * N(0, I)``. Labels are drawn uniformly.
    """
    _check_sizes(n_train, n_test, n_classes, n_features)
    rng = backend.default_rng(seed)
    means = rng.standard_normal((n_classes, n_features))
    means *= separation / np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, n_classes, n_train + n_test)
    x = means[y] + noise * rng.standard_normal((n_train + n_test, n_features))
    return _cut(x, y, n_train, "gaussian_mixture", n_classes)


def spirals(
    n_train: int = 2000,
    n_test: int = 1000,
    n_classes: int = 3,
    turns: float = 1.0,
    noise: float = 0.05,
    seed: int = 0,
) -> DataSplits:
    """Interleaved 2-D spiral arms, one per class.

    An example of class ``k`` at position ``t ~ U(0, 1)`` along its arm lies at radius ``t`` and
    angle ``2*pi*(turns*t + k/n_classes)``, plus ``noise * N(0, I)``. Labels are drawn uniformly.
    """
    _check_sizes(n_train, n_test, n_classes)
    rng = backend.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, n_classes, n)
    t = rng.uniform(0.0, 1.0, n)
    angle = 2 * np.pi * (turns * t + y / n_classes)
    x = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x += noise * rng.standard_normal((n, 2))
    return _cut(x, y, n_train, "spirals", n_classes)
