"""Datasets and batching.

- ``Dataset`` / ``DataSplits``: host arrays ``x``, ``y`` and a train/test pair;
- ``DataLoader``: seeded, reproducible mini-batches on a device;
- generated data: ``teacher``, ``gaussian_mixture``, ``spirals``; MNIST-1D (``load_mnist1d``);
- readers for local files: ``load_mnist``, ``load_fashion_mnist``, ``load_cifar10``,
  ``load_cifar100``, ``read_idx``; a missing or corrupt file raises ``DataError``;
- ``flatten``, ``standardize`` and ``load_dataset(name, **options)``, which applies both.
"""

from tinynormact.data.cache import cache_dir
from tinynormact.data.cifar import load_cifar10, load_cifar100
from tinynormact.data.dataset import DataError, Dataset, DataSplits
from tinynormact.data.idx import load_fashion_mnist, load_mnist, read_idx
from tinynormact.data.loader import DataLoader
from tinynormact.data.mnist1d import load_mnist1d, mnist1d_cache_path
from tinynormact.data.registry import DATASETS, load_dataset
from tinynormact.data.synthetic import gaussian_mixture, spirals, teacher
from tinynormact.data.transforms import flatten, standardize

__all__ = [
    "DATASETS",
    "DataError",
    "DataLoader",
    "DataSplits",
    "Dataset",
    "cache_dir",
    "flatten",
    "gaussian_mixture",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "mnist1d_cache_path",
    "read_idx",
    "spirals",
    "standardize",
    "teacher",
]
