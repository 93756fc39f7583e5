"""``DataLoader``: seeded, reproducible mini-batches of a ``Dataset`` on a device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tinynormact.data.augment import ImageTransform
from tinynormact.data.dataset import Dataset
from tinynormact.engine import backend
from tinynormact.engine.backend import np

__all__ = ["DataLoader"]

# The last word of the seed of batch b's augmentation, [seed, epoch, b, 1]: NumPy's SeedSequence
# treats trailing zeros as absent, so [seed, epoch, 0] would repeat the shuffle's [seed, epoch].
_AUGMENT_STREAM = 1


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate over ``dataset`` in batches ``(x_batch, y_batch)`` placed on ``device``.

    - ``x_batch`` has dtype ``dtype`` (default: the backend's default float dtype, float32
      unless changed); ``y_batch`` holds int64 labels.
    - ``len(loader)`` is the number of batches per epoch; the last one is smaller unless
      ``drop_last`` drops it.
    - With ``shuffle``, epoch ``k`` visits the examples in an order that depends only on
      ``(seed, k)``: the same seed gives the same sequence of orders, bit for bit, on every
      device. Each ``iter(loader)`` uses the current epoch and then advances it; call
      ``set_epoch(k)`` to make the next pass epoch ``k`` (for example when resuming a run).
    - With a ``transform`` (an ``ImageTransform``: random crop, flip, per-channel normalization),
      the examples stay in their own dtype (uint8 images) on the device and each batch is
      transformed there into ``dtype``; the random crops and flips of batch ``b`` of epoch ``k``
      depend only on ``(seed, k, b)``.

    The whole dataset is moved to the device once (converted to ``dtype`` unless a ``transform``
    does that per batch), when the loader is built.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: str | None = None,
        dtype: Any = None,
        transform: ImageTransform | None = None,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise ValueError(f"dataset must be a tinynormact Dataset, got {type(dataset).__name__}")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0)
        if drop_last and len(dataset) < self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is larger than dataset {dataset.name!r} with "
                f"{len(dataset)} examples, so drop_last=True would leave no batches"
            )
        self.dataset = dataset
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = backend.get_device() if device is None else device
        self.dtype = backend.get_default_dtype() if dtype is None else np.dtype(dtype)
        self.transform = transform
        self.epoch = 0
        x_dtype = self.dtype if transform is None else None
        self._x = backend.asarray(dataset.x, dtype=x_dtype, device=self.device)
        self._y = backend.asarray(dataset.y, dtype=np.int64, device=self.device)

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass over the loader epoch ``epoch``."""
        self.epoch = _check_int("epoch", epoch, 0)

    def order(self, epoch: int) -> np.ndarray:
        """The host index order in which epoch ``epoch`` visits the examples."""
        if not self.shuffle:
            return np.arange(len(self.dataset))
        return backend.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        epoch = self.epoch
        order = backend.asarray(self.order(epoch), device=self.device)
        self.epoch += 1
        return self._batches(order, epoch)

    def _batches(self, order: Any, epoch: int) -> Iterator[tuple[Any, Any]]:
        for number, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            index = order[start : start + self.batch_size]
            yield self._transform(self._x[index], epoch, number), self._y[index]

    def _transform(self, x: Any, epoch: int, number: int) -> Any:
        if self.transform is None:
            return x
        rng = None
        if self.transform.random:
            rng = backend.default_rng([self.seed, epoch, number, _AUGMENT_STREAM])
        return self.transform(x, rng, self.dtype)
