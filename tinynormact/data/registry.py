"""``load_dataset``: every dataset by name, flattened and standardized for MLPs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from tinynormact.data.cifar import load_cifar10, load_cifar100
from tinynormact.data.dataset import DataSplits
from tinynormact.data.idx import load_fashion_mnist, load_mnist
from tinynormact.data.mnist1d import load_mnist1d
from tinynormact.data.synthetic import gaussian_mixture, spirals, teacher
from tinynormact.data.transforms import flatten, standardize

__all__ = ["DATASETS", "load_dataset"]

DATASETS: dict[str, Callable[..., DataSplits]] = {
    "mnist1d": load_mnist1d,
    "spirals": spirals,
    "gaussian_mixture": gaussian_mixture,
    "teacher": teacher,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


def load_dataset(name: str, standardize_features: bool = True, **options: Any) -> DataSplits:
    """The dataset ``name`` with ``options`` passed to its loader, ready for an MLP.

    Examples are flattened to vectors and, unless ``standardize_features=False``, standardized
    with train-set statistics. The file datasets (mnist, fashion_mnist, cifar10, cifar100)
    need ``path=``, the folder or archive holding their files.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {', '.join(DATASETS)}")
    loader = DATASETS[name]
    parameters = inspect.signature(loader).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options are {', '.join(parameters)}"
        )
    missing = [p for p in parameters.values() if p.default is p.empty and p.name not in options]
    if missing:
        raise ValueError(f"dataset {name!r} needs {missing[0].name}=..., see {loader.__name__}")
    splits = flatten(loader(**options))
    return standardize(splits) if standardize_features else splits
