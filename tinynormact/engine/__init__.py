"""The engine: arrays on a device, the Tensor and its graph, the differentiable operations.

- ``backend``: the one place that imports NumPy or CuPy as an array provider (the device switch);
- ``autograd``: ``Tensor``, the graph, ``backward``, ``no_grad``;
- ``ops``: the differentiable primitives, each forward with its backward;
- ``convolution``: convolution and pooling on tensors (one im2col), the ops behind ``nn.Conv*``;
- ``batch_norm``: the batch-normalization op behind ``nn.BatchNorm*``;
- ``gradcheck``: finite-difference and random-direction checks of any function's gradients.
- ``replay``: an optional optimization, one recorded training step run again without rebuilding
  its graph (same numbers as the eager step).

The engine imports nothing of tinynormact outside itself; ``import tinynormact.engine`` loads
NumPy and these modules only.
"""

from tinynormact.engine.autograd import Tensor, is_grad_enabled, no_grad
from tinynormact.engine.backend import get_default_dtype, get_device, set_default_dtype, set_device
from tinynormact.engine.gradcheck import GradcheckError, gradcheck

__all__ = [
    "GradcheckError",
    "Tensor",
    "get_default_dtype",
    "get_device",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "set_default_dtype",
    "set_device",
]
