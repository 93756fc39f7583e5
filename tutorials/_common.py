"""What every tutorial shares: fast mode, the output folder and showing figures.

- ``FAST`` is true when the environment variable TINYNORMACT_TUTORIAL_FAST is "1" (the test
  suite sets it): the tutorials then shrink their sizes so that each runs in seconds.
- ``OUT`` is where figures and run folders go: TINYNORMACT_TUTORIAL_OUT, default tutorials/_output.
- ``show(fig, name)`` saves a figure there and shows it; ``show_image(path)`` shows a PNG that
  something else wrote. In a notebook both display inline; as a script figures are only saved
  (Agg backend, no windows) and their paths printed.
- ``fit(model, optimizer, dataset, epochs)`` is the training loop that tutorial 2 builds and
  every later one uses: mini-batches of 128, the mean train loss of each epoch returned.
- ``strict_device()`` registers the strict test device of tests/strict_device.py (NumPy with
  CuPy's rules, counting host synchronisations) and returns its module: tutorial 10 uses it to
  show on a CPU what a GPU would enforce.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

REPOSITORY = Path(__file__).resolve().parent.parent
FAST = os.environ.get("TINYNORMACT_TUTORIAL_FAST") == "1"
OUT = Path(os.environ.get("TINYNORMACT_TUTORIAL_OUT") or Path(__file__).resolve().parent / "_output")
OUT.mkdir(parents=True, exist_ok=True)


def size(full, fast):
    """``full`` normally, ``fast`` in fast mode."""
    return fast if FAST else full


def show(fig, name: str) -> None:
    """Save ``fig`` (a pyplot figure or a bare matplotlib Figure) as OUT/name and show it."""
    path = OUT / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    show_image(path)


def show_image(path: Path) -> None:
    """Show an image file: inline in a notebook, else print its path."""
    if IN_NOTEBOOK:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    else:
        print(f"figure: {path}")


def strict_device():
    """The module tests/strict_device.py of this checkout, its device registered as "strict"."""
    if str(REPOSITORY) not in sys.path:
        sys.path.insert(0, str(REPOSITORY))
    from tests import strict_device as module

    module.register()
    return module


def fit(model, optimizer, dataset, epochs: int, batch_size: int = 128, seed: int = 0) -> list[float]:
    """Train ``model`` on ``dataset`` for ``epochs`` epochs; the mean train loss of each epoch."""
    from tinynormact import losses
    from tinynormact.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, seed=seed)
    history = []
    for _ in range(epochs):
        total = 0.0
        for x, y in loader:
            loss = losses.softmax_cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
