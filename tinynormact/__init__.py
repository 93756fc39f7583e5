"""tinynormact: a readable reference implementation of normalized activation functions.

Public API (docs/guide/tour.md has a tour)::

    import tinynormact as tn
    tn.Tensor, tn.no_grad, tn.gradcheck, tn.set_device, tn.get_device   the engine
    tn.activations, tn.theory                 the activation zoo and THEORY E1-E33
    tn.nn, tn.losses, tn.optim, tn.functional networks, losses, optimizers
    tn.data                                   datasets and the batching loader
    tn.tracking, tn.costs                     per-layer variance tracking; FLOPs and memory

The folders are the layers, each importing only those below it: ``infra`` (files, locks,
validation), ``engine`` (arrays, Tensor, ops), ``theory``, ``nn``, ``tracking``, ``data``,
``train``, ``experiments``, then ``cli``. ``import tinynormact`` loads the engine only; every
other name above imports its package on first use.
"""

import importlib
from typing import Any

from tinynormact.engine import (
    GradcheckError,
    Tensor,
    get_default_dtype,
    get_device,
    gradcheck,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
    set_device,
)

__version__ = "0.2.0"

# Public short names -> the module each one is (imported on first access).
_MODULES = {
    "activations": "tinynormact.theory.activations",
    "backend": "tinynormact.engine.backend",
    "batch_norm": "tinynormact.engine.batch_norm",
    "convolution": "tinynormact.engine.convolution",
    "costs": "tinynormact.tracking.costs",
    "data": "tinynormact.data",
    "experiments": "tinynormact.experiments",
    "functional": "tinynormact.nn.functional",
    "losses": "tinynormact.nn.losses",
    "nn": "tinynormact.nn",
    "ops": "tinynormact.engine.ops",
    "optim": "tinynormact.nn.optim",
    "theory": "tinynormact.theory",
    "tracking": "tinynormact.tracking",
    "train": "tinynormact.train",
}

__all__ = [
    "GradcheckError",
    "Tensor",
    "__version__",
    *sorted(_MODULES),
    "get_default_dtype",
    "get_device",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "set_default_dtype",
    "set_device",
]


def __getattr__(name: str) -> Any:
    """``tn.nn``, ``tn.theory``, ... : the module, imported the first time it is asked for."""
    if name in _MODULES:
        module = importlib.import_module(_MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinynormact' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
