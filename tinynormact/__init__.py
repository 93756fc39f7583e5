"""tinynormact: a readable reference implementation of normalized activation functions.

Public API (README.md has a tour)::

    import tinynormact as tn
    tn.Tensor, tn.no_grad, tn.gradcheck, tn.set_device, tn.get_device
    tn.activations, tn.theory                 the activation zoo and THEORY E1-E18
    tn.nn, tn.losses, tn.optim, tn.functional networks, losses, optimizers
    tn.data                                   datasets and the batching loader
    tn.tracking                               per-layer variance tracking (VarianceTracker)
"""

from tinynormact import activations, backend, data, functional, losses, nn, ops, optim, theory, tracking
from tinynormact.autograd import Tensor, is_grad_enabled, no_grad
from tinynormact.backend import (
    get_default_dtype,
    get_device,
    set_default_dtype,
    set_device,
)
from tinynormact.gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"

__all__ = [
    "GradcheckError",
    "Tensor",
    "__version__",
    "activations",
    "backend",
    "data",
    "functional",
    "losses",
    "nn",
    "optim",
    "theory",
    "tracking",
    "get_default_dtype",
    "get_device",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "ops",
    "set_default_dtype",
    "set_device",
]
