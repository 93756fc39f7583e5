"""Datasets and batching.

- ``Dataset`` / ``DataSplits``: host arrays ``x``, ``y`` and a train/test pair;
- ``DataLoader``: seeded, reproducible mini-batches on a device;
- generated data: ``teacher``, ``gaussian_mixture``, ``spirals``; MNIST-1D (``load_mnist1d``);
- readers for local files: ``load_mnist``, ``load_fashion_mnist``, ``load_cifar10``,
  ``load_cifar100``, ``read_idx``; a missing or corrupt file raises ``DataError``;
- ``flatten``, ``standardize`` and ``load_dataset(name, **options)``, which applies both;
  ``load_images(name, **options)``: an image dataset (``IMAGE_DATASETS``) as uint8 images;
- ``ImageTransform``: per-channel normalization, random crop and flip of image batches on their
  device (the CIFAR training recipe), applied by the ``DataLoader``;
- ``download(name)``: fetch a dataset's archive (CIFAR) into ``data_root()``, verified.
"""

from tinynormact.data.augment import ImageTransform
from tinynormact.data.cache import cache_dir, data_root
from tinynormact.data.cifar import load_cifar10, load_cifar100
from tinynormact.data.dataset import DataError, Dataset, DataSplits
from tinynormact.data.download import DownloadError, download
from tinynormact.data.idx import load_fashion_mnist, load_mnist, read_idx
from tinynormact.data.loader import DataLoader
from tinynormact.data.mnist1d import load_mnist1d, mnist1d_cache_path
from tinynormact.data.registry import DATASETS, IMAGE_DATASETS, load_dataset, load_images
from tinynormact.data.synthetic import gaussian_mixture, spirals, teacher
from tinynormact.data.transforms import flatten, standardize

__all__ = [
    "DATASETS",
    "DataError",
    "DataLoader",
    "DataSplits",
    "Dataset",
    "DownloadError",
    "IMAGE_DATASETS",
    "ImageTransform",
    "cache_dir",
    "data_root",
    "download",
    "flatten",
    "gaussian_mixture",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_fashion_mnist",
    "load_images",
    "load_mnist",
    "load_mnist1d",
    "mnist1d_cache_path",
    "read_idx",
    "spirals",
    "standardize",
    "teacher",
]
