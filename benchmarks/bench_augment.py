"""CIFAR batch augmentation (random crop with 4-pixel padding, flip, per-channel normalization).

For a batch of 128 uint8 images of 3x32x32, in the same process: the library's whole-batch
transform, normalization alone (the floor: one conversion to float32 and two passes), and a loop
over the images doing the same crop, flip and normalization one image at a time (what a
per-example pipeline does). The table reports median times and ratios to the whole-batch one.
"""

from __future__ import annotations

from benchmarks.timing import median_seconds
from tinynormact.data import Dataset, ImageTransform
from tinynormact.data.augment import draw_crops
from tinynormact.engine.backend import np

BATCH, PADDING, REPEATS = 128, 4, 200


def _loop(images: np.ndarray, rng: np.random.Generator, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    top, left, flip = draw_crops(rng, len(images), PADDING, True)
    out = np.empty(images.shape, np.float32)
    for k, image in enumerate(images):
        padded = np.pad(image, ((0, 0), (PADDING, PADDING), (PADDING, PADDING)))
        window = padded[:, top[k] : top[k] + 32, left[k] : left[k] + 32]
        out[k] = ((window[:, :, ::-1] if flip[k] else window) - mean) / std
    return out


def main() -> None:
    images = np.random.default_rng(0).integers(0, 256, (4 * BATCH, 3, 32, 32), dtype=np.uint8)
    train = Dataset(images, np.zeros(len(images), np.int64), "bench", 10)
    augment = ImageTransform.fit(train, padding=PADDING, flip=True)
    normalize = ImageTransform(augment.mean, augment.std)
    mean = np.array(augment.mean, np.float32)[:, None, None]
    std = np.array(augment.std, np.float32)[:, None, None]
    batch, rng = images[:BATCH], np.random.default_rng(1)
    calls = {
        "whole batch: crop, flip, normalize": lambda: augment(batch, rng, np.float32),
        "whole batch: normalize only": lambda: normalize(batch, None, np.float32),
        "loop over images: crop, flip, normalize": lambda: _loop(batch, rng, mean, std),
    }
    times = {name: median_seconds(fn, REPEATS) for name, fn in calls.items()}
    reference = times["whole batch: crop, flip, normalize"]
    print(f"batch of {BATCH} images 3x32x32, padding {PADDING}")
    print(f"{'':42s} {'ms':>8s} {'ratio':>7s}")
    for name, seconds in times.items():
        print(f"{name:42s} {seconds * 1e3:8.2f} {seconds / reference:7.2f}")


if __name__ == "__main__":
    main()
