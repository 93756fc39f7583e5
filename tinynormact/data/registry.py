"""``load_dataset``: every dataset by name, flattened and standardized for MLPs;
``load_images``: the image datasets as they are, for convolutional networks."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from tinynormact.data.cifar import load_cifar10, load_cifar100
from tinynormact.data.dataset import DataSplits
from tinynormact.data.idx import load_fashion_mnist, load_mnist
from tinynormact.data.mnist1d import load_mnist1d
from tinynormact.data.synthetic import gaussian_mixture, spirals, teacher
from tinynormact.data.transforms import flatten, standardize
from tinynormact.infra.validation import is_finite_real, is_integer

__all__ = ["DATASETS", "IMAGE_DATASETS", "load_dataset", "load_images"]

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
# the datasets whose examples are images (channels, height, width), for ``load_images``
IMAGE_DATASETS = ("cifar10", "cifar100")


def _check_option(dataset: str, parameter: inspect.Parameter, value: Any) -> None:
    """Raise ValueError unless ``value`` has the type of ``parameter``'s default.

    An int default takes an integer (not a bool), a float default a finite real number (not a
    bool), a bool default a bool, a str default a string, a tuple default a list of integers,
    and the file datasets' ``path`` a string or path. A ``seed`` must be >= 0 (NumPy's
    generators take no negative seed).
    """
    default = parameter.default
    if parameter.name == "path":
        ok, valid = isinstance(value, str | os.PathLike), "a file or folder path (a string)"
    elif isinstance(default, bool):
        ok, valid = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, valid = is_integer(value), "an integer"
    elif isinstance(default, float):
        ok, valid = is_finite_real(value), "a finite number"
    elif isinstance(default, str):
        ok, valid = isinstance(value, str), "a string"
    elif isinstance(default, tuple | list):
        ok = isinstance(value, tuple | list) and all(map(is_integer, value))
        valid = "a list of integers, e.g. [64, 32]"
    else:
        return
    if ok and parameter.name == "seed" and value < 0:
        ok, valid = False, "an integer >= 0"
    if not ok:
        raise ValueError(f"dataset {dataset!r}: option {parameter.name} must be {valid}, got {value!r}")


def _load(name: str, options: dict[str, Any]) -> DataSplits:
    """The dataset ``name`` from its loader, after checking ``options`` against its signature;
    NaN or Inf in the inputs of either split raises ValueError naming the split and the first
    bad example."""
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
    for key, value in options.items():
        _check_option(name, parameters[key], value)
    splits = loader(**options)
    splits.check_finite()
    return splits


def load_dataset(name: str, standardize_features: bool = True, **options: Any) -> DataSplits:
    """The dataset ``name`` with ``options`` passed to its loader, ready for an MLP.

    Examples are flattened to vectors and, unless ``standardize_features=False``, standardized
    with train-set statistics. The file datasets need ``path=``, the folder or archive holding
    their files (mnist, fashion_mnist), or look in the data root without it (cifar10, cifar100).
    Each option must have the type of the loader's default for it (an integer for ``n_train``,
    a number for ``noise``, ...); a wrong type raises ValueError naming the dataset, the option
    and the value. NaN or Inf in the inputs of either split raises ValueError
    naming the split and the first bad example.
    """
    splits = flatten(_load(name, options))
    return standardize(splits) if standardize_features else splits


def load_images(name: str, **options: Any) -> DataSplits:
    """The image dataset ``name`` (one of ``IMAGE_DATASETS``) as its loader returns it: uint8
    images ``(n, channels, height, width)``, for a convolutional network and the per-channel
    normalization of ``ImageTransform``. Options are checked as for ``load_dataset``."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"dataset {name!r} holds no images; image datasets: {', '.join(IMAGE_DATASETS)}")
    return _load(name, options)
