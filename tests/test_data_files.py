"""Readers for MNIST-style IDX files and CIFAR python archives, on small files written here."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import pytest

from tests.cifar_files import cifar_batch, tar_folder, write_cifar10
from tests.cifar_files import pickle_batch as _pickle
from tinynormact.data import DataError, load_cifar10, load_cifar100, load_fashion_mnist, load_mnist, read_idx
from tinynormact.engine.backend import np

MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file as the format defines it: 0, 0, type, ndim, big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        MNIST_NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        MNIST_NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        MNIST_NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        MNIST_NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_folder_is_read_exactly(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    splits = load_mnist(tmp_path)
    assert np.array_equal(splits.train.x, arrays[MNIST_NAMES[0]])
    assert np.array_equal(splits.train.y, arrays[MNIST_NAMES[1]])
    assert np.array_equal(splits.test.x, arrays[MNIST_NAMES[2]])
    assert np.array_equal(splits.test.y, arrays[MNIST_NAMES[3]])
    assert splits.train.x.dtype == np.uint8 and splits.train.n_classes == 10
    assert splits.train.name == "mnist" and load_fashion_mnist(tmp_path).test.name == "fashion_mnist"


def test_real_magic_numbers_are_accepted(tmp_path):
    _write_mnist(tmp_path)
    assert (tmp_path / MNIST_NAMES[0]).read_bytes()[:4] == struct.pack(">I", 2051)
    assert (tmp_path / MNIST_NAMES[1]).read_bytes()[:4] == struct.pack(">I", 2049)


def test_read_idx_handles_big_endian_floats(tmp_path):
    values = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, 7.0]], dtype=np.float32)
    path = tmp_path / "floats.idx"
    path.write_bytes(_idx_bytes(values, type_code=0x0D))
    assert np.array_equal(read_idx(path), values)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad magic number empty"),
        (b"\x00\x00\x08", "bad magic number 000008"),
        (struct.pack(">I", 2051)[::-1] + b"\x00" * 12, "bad magic number 03080000"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated header: 6 bytes, expected at least 16"),
        (struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + bytes(100), "116 bytes but header"),
    ],
)
def test_corrupt_idx_names_the_file(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        read_idx(path)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(5))[:-12])
    with pytest.raises(DataError, match=f"{path}: cannot be read"):
        read_idx(path)


def test_missing_mnist_file_is_named(tmp_path):
    _write_mnist(tmp_path)
    os.remove(tmp_path / MNIST_NAMES[3])
    with pytest.raises(DataError, match=f"{tmp_path / MNIST_NAMES[3]}: file not found"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        load_mnist(tmp_path / "nowhere")


def test_image_and_label_counts_must_agree(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / MNIST_NAMES[1]).write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match=f"{MNIST_NAMES[1]}: expected 6 labels for {MNIST_NAMES[0]}"):
        load_mnist(tmp_path)


def test_labels_above_nine_are_rejected(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / MNIST_NAMES[3]).write_bytes(_idx_bytes(np.array([1, 2, 10, 3], np.uint8)))
    with pytest.raises(DataError, match=f"{MNIST_NAMES[3]}: labels must lie in 0..9, found 10"):
        load_mnist(tmp_path)


# CIFAR -----------------------------------------------------------------------------------------


def _check_cifar10(splits, batches) -> None:
    train_batches = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    expected_x = np.concatenate([b[b"data"] for b in train_batches])
    assert splits.train.x.shape == (15, 3, 32, 32) and splits.test.x.shape == (3, 3, 32, 32)
    assert np.array_equal(splits.train.x.reshape(15, -1), expected_x)
    assert splits.train.y.tolist() == sum((b[b"labels"] for b in train_batches), [])
    assert splits.test.y.tolist() == batches["test_batch"][b"labels"]
    # Row layout: the first 1024 bytes are the red plane, row by row.
    first = batches["data_batch_1"][b"data"][0]
    assert np.array_equal(splits.train.x[0, 0], first[:1024].reshape(32, 32))
    assert np.array_equal(splits.train.x[0, 2, 31], first[-32:])


def test_cifar10_from_folder_parent_and_archive(tmp_path):
    batches = write_cifar10(tmp_path / "extracted")
    tar_folder(tmp_path / "extracted" / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    for path in (
        tmp_path / "extracted" / "cifar-10-batches-py",
        tmp_path / "extracted",
        tmp_path / "cifar-10-python.tar.gz",
        tmp_path,  # holds the archive
    ):
        _check_cifar10(load_cifar10(path), batches)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    labels = {b"fine_labels": 100, b"coarse_labels": 20}
    train, test = cifar_batch(4, 0, labels), cifar_batch(2, 1, labels)
    (folder / "train").write_bytes(_pickle(train))
    (folder / "test").write_bytes(_pickle(test))
    tar_folder(folder, tmp_path / "cifar-100-python.tar.gz")
    fine = load_cifar100(tmp_path / "cifar-100-python.tar.gz")
    coarse = load_cifar100(folder, labels="coarse")
    assert fine.train.y.tolist() == train[b"fine_labels"] and fine.train.n_classes == 100
    assert coarse.test.y.tolist() == test[b"coarse_labels"] and coarse.test.n_classes == 20
    assert np.array_equal(coarse.test.x.reshape(2, -1), test[b"data"])
    with pytest.raises(ValueError, match="labels must be one of fine, coarse, got 'medium'"):
        load_cifar100(folder, labels="medium")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a readable CIFAR batch"),
        (_pickle({b"data": np.zeros((3, 3072), np.uint8)}), "expected a dict with b'data' and b'labels'"),
        (
            _pickle({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}),
            r"shape \(n, 3072\), got uint8 \(3, 100\)",
        ),
        (_pickle({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}), "must hold 3 labels in 0..9"),
        (_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "must hold 1 labels in 0..9"),
        (pickle.dumps(os.getcwd), "refusing to load .*getcwd"),
    ],
)
def test_corrupt_cifar_batch_names_the_file(tmp_path, content, message):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        load_cifar10(tmp_path)


def test_missing_cifar_batch_and_archive_member_are_named(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match=f"{tmp_path / 'cifar-10-batches-py' / 'test_batch'}: file not found"):
        load_cifar10(tmp_path)
    archive = tmp_path / "partial.tar.gz"
    tar_folder(tmp_path / "cifar-10-batches-py", archive)
    with pytest.raises(DataError, match=f"{archive}: archive lacks .*test_batch"):
        load_cifar10(archive)


def test_broken_or_absent_cifar_archive_is_named(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=f"{archive}: not a readable tar archive"):
        load_cifar10(archive)


@pytest.mark.parametrize(
    ("load", "name", "filename", "folder"),
    [
        (load_cifar10, "cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py"),
        (load_cifar100, "cifar100", "cifar-100-python.tar.gz", "cifar-100-python"),
    ],
)
def test_missing_cifar_names_where_it_looked_and_how_to_get_it(
    tmp_path, monkeypatch, load, name, filename, folder
):
    looked = f"looked for {filename} and the extracted {folder}/ folder"
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(f"{nowhere}: ") + ".*" + re.escape(looked)) as error:
        load(nowhere)
    assert str(error.value).endswith(f"download it with: tinynormact data download {name} --root {nowhere}")
    # an archive path that does not exist: the hint downloads into its folder
    with pytest.raises(DataError, match=re.escape(f"--root {tmp_path}") + "$"):
        load(tmp_path / filename)
    # no path: the data root, chosen by the environment variable
    monkeypatch.setenv("TINYNORMACT_DATA", str(tmp_path / "root"))
    where = re.escape(f"{tmp_path / 'root'}: ")
    with pytest.raises(DataError, match=f"{where}.*TINYNORMACT_DATA.*{looked}"):
        load()


def test_cifar_is_read_from_the_data_root(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path)
    monkeypatch.setenv("TINYNORMACT_DATA", str(tmp_path))
    _check_cifar10(load_cifar10(), batches)


def test_cifar_data_must_be_uint8(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(_pickle({b"data": np.zeros((1, 3072)), b"labels": [0]}))
    with pytest.raises(DataError, match="must be uint8 of shape .* got float64"):
        load_cifar10(tmp_path)
