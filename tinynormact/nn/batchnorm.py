"""BatchNorm1d and BatchNorm2d: batch normalization layers with running statistics.

As PyTorch's layers: in training mode the layer normalizes with the batch's per-channel mean and
variance and updates ``running = (1 - momentum) * running + momentum * batch`` (the running
variance takes the unbiased batch variance, ddof 1); in evaluation mode it normalizes with the
running estimates and updates nothing. Note the direction of ``momentum``: here it weighs the
new batch (PyTorch's convention, default 0.1), whereas the adaptive normalized activation's
``momentum`` weighs the old value (default 0.9). ``affine=True`` adds the learnable per-channel
``weight`` (starting at 1) and ``bias`` (starting at 0). The op is ``batch_norm.batch_norm``.
"""

from __future__ import annotations

from typing import Any

from tinynormact.engine import backend, ops
from tinynormact.engine.autograd import Tensor
from tinynormact.engine.batch_norm import batch_norm
from tinynormact.nn.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """Normalizes each of ``num_features`` channels over the batch and all positions."""

    ranks: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        if isinstance(num_features, bool) or int(num_features) != num_features or num_features < 1:
            raise ValueError(f"{layer}: num_features must be an integer >= 1, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: momentum must be in [0, 1], got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"{layer}: eps must be > 0, got {eps!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        dtype = backend.get_default_dtype() if dtype is None else dtype
        self.weight = Parameter(backend.np.ones(self.num_features), dtype=dtype) if affine else None
        self.bias = Parameter(backend.np.zeros(self.num_features), dtype=dtype) if affine else None
        self.register_buffer("running_mean", Tensor(backend.np.zeros(self.num_features), dtype=dtype))
        self.register_buffer("running_var", Tensor(backend.np.ones(self.num_features), dtype=dtype))

    def forward(self, x: Any) -> Tensor:
        x = ops.as_tensor(x)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            expected = self.layout.format(self.num_features)
            raise ValueError(f"{self!r}: expected an input of shape {expected}, got shape {x.shape}")
        if not self.training:
            stats = (self.running_mean.data, self.running_var.data)
            return batch_norm(x, self.weight, self.bias, self.eps, stats)[0]
        count = x.size // self.num_features
        if count < 2:
            raise ValueError(
                f"{self!r}: training mode needs more than one value per channel, got shape {x.shape}"
            )
        y, mean, var = batch_norm(x, self.weight, self.bias, self.eps)
        m = self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean.data = ((1 - m) * self.running_mean.data + m * mean).astype(self.running_mean.dtype)
        self.running_var.data = ((1 - m) * self.running_var.data + m * unbiased).astype(
            self.running_var.dtype
        )
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}"
        )


class BatchNorm1d(_BatchNorm):
    """Over features (batch, num_features) or over channels (batch, num_features, length)."""

    ranks = (2, 3)
    layout = "(batch, {0}) or (batch, {0}, length)"


class BatchNorm2d(_BatchNorm):
    """Over the channels of images (batch, num_features, height, width)."""

    ranks = (4,)
    layout = "(batch, {0}, height, width)"
