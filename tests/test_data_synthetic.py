"""Generated datasets: sizes, seeding, and that the labels follow the stated construction."""

from __future__ import annotations

import pytest

from tinynormact.data import gaussian_mixture, spirals, teacher
from tinynormact.engine.backend import np

GENERATORS = [teacher, gaussian_mixture, spirals]


def _nearest_neighbour_accuracy(splits) -> float:
    """Brute-force 1-NN accuracy of the test set against the train set."""
    train, test = splits.train, splits.test
    distances = ((test.x[:, None, :] - train.x[None, :, :]) ** 2).sum(axis=2)
    return float(np.mean(train.y[distances.argmin(axis=1)] == test.y))


@pytest.mark.parametrize("generate", GENERATORS)
def test_sizes_and_classes(generate):
    splits = generate(n_train=120, n_test=30, n_classes=5, seed=1)
    assert len(splits.train) == 120 and len(splits.test) == 30
    assert splits.train.n_classes == 5 and splits.train.name == generate.__name__
    assert splits.train.x.dtype == np.float64
    labels = np.concatenate([splits.train.y, splits.test.y])
    assert labels.min() >= 0 and labels.max() < 5


@pytest.mark.parametrize("generate", GENERATORS)
def test_same_seed_same_data_other_seed_other_data(generate):
    a, b, c = (
        generate(n_train=50, n_test=10, seed=3),
        generate(n_train=50, n_test=10, seed=3),
        generate(n_train=50, n_test=10, seed=4),
    )
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.x, c.train.x)


@pytest.mark.parametrize("generate", GENERATORS)
def test_too_few_classes_is_rejected(generate):
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        generate(n_classes=1)


def test_teacher_inputs_are_standard_normal():
    x = teacher(n_train=20000, n_test=1, n_features=3, seed=0).train.x
    assert np.allclose(x.mean(axis=0), 0.0, atol=0.03)
    assert np.allclose(x.std(axis=0), 1.0, atol=0.03)


def test_teacher_labels_are_learnable_and_noise_makes_them_harder():
    clean = teacher(n_train=2000, n_test=500, n_features=2, n_classes=4, seed=0)
    noisy = teacher(n_train=2000, n_test=500, n_features=2, n_classes=4, label_noise=3.0, seed=0)
    assert _nearest_neighbour_accuracy(clean) > 0.9
    assert _nearest_neighbour_accuracy(noisy) < _nearest_neighbour_accuracy(clean) - 0.1


def test_teacher_rejects_negative_label_noise():
    with pytest.raises(ValueError, match="label_noise must be >= 0, got -1"):
        teacher(label_noise=-1)


def test_gaussian_mixture_separation_controls_difficulty():
    far = gaussian_mixture(n_train=400, n_test=200, n_classes=3, separation=10.0, noise=0.5, seed=0)
    assert _nearest_neighbour_accuracy(far) > 0.99
    # Points lie within a few noise widths of a mean of norm `separation`.
    assert np.allclose(np.linalg.norm(far.train.x, axis=1).mean(), 10.0, atol=0.5)
    same = gaussian_mixture(n_train=400, n_test=200, n_classes=3, separation=0.0, seed=0)
    assert _nearest_neighbour_accuracy(same) < 0.5


def test_noiseless_spirals_lie_on_their_arms():
    splits = spirals(n_train=300, n_test=1, n_classes=3, turns=1.5, noise=0.0, seed=0)
    x, y = splits.train.x, splits.train.y
    radius = np.hypot(x[:, 0], x[:, 1])
    assert np.all(radius <= 1.0)
    # Documented construction: angle = 2*pi*(turns*radius + class/n_classes), modulo 2*pi.
    expected = 2 * np.pi * (1.5 * radius + y / 3)
    residual = np.angle(np.exp(1j * (np.arctan2(x[:, 1], x[:, 0]) - expected)))
    assert np.allclose(residual, 0.0, atol=1e-9)
    assert sorted(set(y.tolist())) == [0, 1, 2]


def test_spirals_are_learnable_and_noise_makes_them_harder():
    clean = _nearest_neighbour_accuracy(spirals(n_train=1500, n_test=300, noise=0.01, seed=0))
    noisy = _nearest_neighbour_accuracy(spirals(n_train=1500, n_test=300, noise=0.3, seed=0))
    assert clean > 0.95
    assert noisy < clean - 0.2
