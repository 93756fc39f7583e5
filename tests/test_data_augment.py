"""Per-channel normalization, random crop and flip of image batches, against loops over examples."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import host
from tinynormact import backend
from tinynormact.data import DataLoader, Dataset, ImageTransform
from tinynormact.data.augment import channel_mean_std, crop_and_flip, draw_crops


def _images(n: int, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 images whose three channels have different means and spreads."""
    rng = np.random.default_rng(seed)
    ranges = ((0, 256), (40, 90), (100, 250))
    channels = [rng.integers(low, high, (n, 1, height, width)) for low, high in ranges]
    return np.concatenate(channels, axis=1).astype(np.uint8)


def _crop_loop(images: np.ndarray, top, left, flip, padding: int) -> np.ndarray:
    """The reference: one example at a time, with np.pad and slicing."""
    _, _, height, width = images.shape
    out = []
    for image, t, l, f in zip(images, top, left, flip, strict=True):
        padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
        window = padded[:, t : t + height, l : l + width]
        out.append(window[:, :, ::-1] if f else window)
    return np.stack(out)


def _normalize_loop(images: np.ndarray, mean, std) -> np.ndarray:
    out = np.empty(images.shape)
    for k, image in enumerate(images):
        for c, channel in enumerate(image):
            out[k, c] = (channel.astype(np.float64) - mean[c]) / std[c]
    return out


@pytest.mark.parametrize(("height", "width", "padding"), [(5, 7, 2), (6, 4, 3), (5, 5, 0), (32, 32, 4)])
def test_crop_and_flip_equals_the_loop_over_examples(device, height, width, padding):
    n = 2 * (2 * padding + 1) + 3
    images = _images(n, height, width, seed=height)
    # every offset, the extreme ones included, with and without a flip
    top = np.arange(n) % (2 * padding + 1)
    left = (np.arange(n) * 7 + 3) % (2 * padding + 1)
    flip = np.arange(n) % 3 == 1
    out = crop_and_flip(backend.asarray(images, device=device), top, left, flip, padding)
    assert backend.device_of(out) == device and out.dtype == np.uint8
    assert np.array_equal(host(out), _crop_loop(images, top, left, flip, padding))


def test_channel_statistics_equal_a_direct_computation():
    images = _images(13, 9, 11)
    mean, std = channel_mean_std(images)
    for c in range(3):
        values = np.concatenate([image[c].ravel() for image in images]).astype(np.float64)
        assert mean[c] == pytest.approx(np.mean(values), rel=1e-13)
        assert std[c] == pytest.approx(np.std(values), rel=1e-12)
    assert len(set(np.round(mean))) == 3  # the channels really differ, so a mix-up would show
    with pytest.raises(ValueError, match="expected uint8 images .* got float64"):
        channel_mean_std(images.astype(np.float64))


def test_normalization_equals_the_loop(device):
    images = _images(6, 7, 5)
    transform = ImageTransform.fit(Dataset(images, np.zeros(6, np.int64), "toy", 1))
    assert not transform.random
    out = transform(backend.asarray(images, device=device), None, np.float32)
    assert backend.device_of(out) == device and out.dtype == np.float32
    expected = _normalize_loop(images, transform.mean, transform.std)
    assert np.allclose(host(out), expected, rtol=1e-6, atol=1e-6)
    # each channel of the result has mean 0 and variance 1 over the whole set
    assert np.allclose(expected.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert np.allclose(expected.var(axis=(0, 2, 3)), 1, atol=1e-12)


def test_random_transform_equals_the_loop_with_the_same_draws(device):
    images = _images(9)
    transform = ImageTransform.fit(Dataset(images, np.zeros(9, np.int64), "toy", 1), padding=4, flip=True)
    out = transform(backend.asarray(images, device=device), np.random.default_rng(5), np.float64)
    top, left, flip = draw_crops(np.random.default_rng(5), 9, 4, True)
    cropped = _crop_loop(images, top, left, flip, 4)
    expected = _normalize_loop(cropped, transform.mean, transform.std)
    assert np.allclose(host(out), expected, rtol=1e-12, atol=1e-12)
    # the padding is black (0) before normalization: -mean/std after it
    k = int(np.argmin(top))
    assert top[k] < 4
    black = -np.array(transform.mean) / np.array(transform.std)
    assert np.allclose(host(out)[k, :, : 4 - top[k], :], black[:, None, None])


def test_draws_are_uniform_independent_and_fair():
    n, padding = 50_000, 4
    top, left, flip = draw_crops(np.random.default_rng(0), n, padding, True)
    cells = 2 * padding + 1
    # Each offset value has probability p = 1/9; its frequency has standard deviation
    # sqrt(p(1-p)/n) = 0.0014 for n = 50000, so 5 sigma = 0.0070 < 0.011, a 10% error in p.
    p = 1 / cells
    five_sigma = 5 * np.sqrt(p * (1 - p) / n)
    assert five_sigma < 0.1 * p
    for offsets in (top, left):
        assert set(np.unique(offsets)) == set(range(cells))
        assert np.all(np.abs(np.bincount(offsets, minlength=cells) / n - p) < five_sigma)
    # a fair flip: sigma = sqrt(0.25/n) = 0.0022, 5 sigma = 0.011 < 0.05 (10% of 1/2)
    assert abs(flip.mean() - 0.5) < 5 * np.sqrt(0.25 / n) < 0.05
    # independent draws: sample correlations are within 5/sqrt(n) = 0.022 of 0
    for a, b in ((top, left), (top, flip), (left, flip)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)
    assert not draw_crops(np.random.default_rng(0), n, padding, False)[2].any()


def _loader(images: np.ndarray, seed: int, transform: ImageTransform, batch_size: int = 4) -> DataLoader:
    dataset = Dataset(images, np.arange(len(images)), "toy", len(images))
    return DataLoader(dataset, batch_size, shuffle=True, seed=seed, transform=transform)


def test_loader_augments_each_example_from_its_own_image_and_is_deterministic(device):
    images = _images(10, 8, 8, seed=3)
    transform = ImageTransform.fit(Dataset(images, np.zeros(10, np.int64), "toy", 1), padding=2, flip=True)
    loader = _loader(images, 7, transform)
    epochs = [[(host(x), host(y)) for x, y in loader] for _ in range(2)]
    mean, std = np.array(transform.mean)[:, None, None], np.array(transform.std)[:, None, None]
    offsets = []  # the crop of each example, batch by batch
    for x, y in epochs[0]:
        assert x.dtype == np.float32
        offsets.append([])
        for image, label in zip(np.rint(x * std + mean).astype(np.int64), y, strict=True):
            # brute force: which of the 5 x 5 x 2 crops of its own source image is this?
            matches = [
                (t, l, f)
                for t in range(5)
                for l in range(5)
                for f in (False, True)
                if np.array_equal(_crop_loop(images[label : label + 1], [t], [l], [f], 2)[0], image)
            ]
            assert len(matches) == 1
            offsets[-1].append(matches[0])
    # each batch draws its own crops (two batches of 4 independent draws among 50 crops agree
    # with probability 50**-4)
    assert offsets[0] != offsets[1][: len(offsets[0])] and len(set(offsets[0])) > 1
    # the same seed gives the same epochs; epochs differ from each other; another seed differs
    again = _loader(images, 7, transform)
    assert all(np.array_equal(a[0], host(b[0])) for a, b in zip(epochs[0], again, strict=True))
    again.set_epoch(1)
    assert all(np.array_equal(a[0], host(b[0])) for a, b in zip(epochs[1], again, strict=True))
    other = _loader(images, 8, transform)
    assert not all(np.array_equal(a[0], host(b[0])) for a, b in zip(epochs[0], other, strict=True))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epochs[0], epochs[1], strict=True))


def test_evaluation_loader_normalizes_in_order(device):
    images = _images(5, 6, 6)
    transform = ImageTransform.fit(Dataset(images, np.zeros(5, np.int64), "toy", 1))
    dataset = Dataset(images, np.zeros(5, np.int64), "toy", 1)
    loader = DataLoader(dataset, 2, shuffle=False, transform=transform)
    batches = np.concatenate([host(x) for x, _ in loader])
    assert np.allclose(batches, _normalize_loop(images, transform.mean, transform.std), rtol=1e-6, atol=1e-6)


def test_bad_transform_settings_are_named(device):
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -1"):
        ImageTransform((0.0,), (1.0,), padding=-1)
    with pytest.raises(ValueError, match="std > 0"):
        ImageTransform((0.0, 1.0), (1.0, 0.0))
    transform = ImageTransform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), padding=1)
    with pytest.raises(ValueError, match="needs a random generator"):
        transform(backend.asarray(_images(2, 4, 4), device=device), None, np.float32)
    grey = backend.asarray(_images(2, 4, 4)[:, 0], device=device)
    with pytest.raises(ValueError, match=r"shape \(n, 3, height, width\), got shape \(2, 4, 4\)"):
        transform(grey, np.random.default_rng(0), np.float32)
