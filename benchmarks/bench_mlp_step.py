"""One SGD training step of a 10-layer tanh MLP: the engine against hand-written NumPy.

Both versions do the same arithmetic on the same float32 data in the same process: forward
through 10 Linear+tanh layers (the last one linear), mean squared error, backward, and a plain
SGD update. The table reports the median step time of each and their ratio, and the peak memory
allocated during a step (tracemalloc, which sees NumPy's buffers) and its ratio.
"""

from __future__ import annotations

from collections.abc import Callable

import tinynormact as tn
from benchmarks.timing import median_seconds, peak_bytes
from tinynormact.engine.backend import np

DEPTH, BATCH, LR = 10, 128, 1e-3
WIDTHS = (32, 64, 256, 1024)


def _setup(width: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [
        (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(DEPTH)
    ]
    biases = [np.zeros(width, np.float32) for _ in range(DEPTH)]
    x = rng.standard_normal((BATCH, width)).astype(np.float32)
    y = rng.standard_normal((BATCH, width)).astype(np.float32)
    return weights, biases, x, y


def hand_written_step(weights: list, biases: list, x: np.ndarray, y: np.ndarray) -> float:
    """Forward (caching each layer's input and tanh output), backward, then the SGD update.

    Like the engine's step, all gradients are computed before any parameter is updated, so both
    hold the same gradients at the moment of the update.
    """
    inputs, outputs = [], []
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inputs.append(h)
        h = h @ w.T
        h += b
        if i < DEPTH - 1:
            h = np.tanh(h)
            outputs.append(h)
    diff = h - y
    loss = float((diff * diff).mean())
    grad = diff * (2.0 / diff.size)
    grads = []
    for i in range(DEPTH - 1, -1, -1):
        if i < DEPTH - 1:
            grad = grad * (1 - outputs[i] * outputs[i])
        grads.append((grad.T @ inputs[i], grad.sum(axis=0)))
        if i > 0:
            grad = grad @ weights[i]
    for i, (grad_w, grad_b) in zip(range(DEPTH - 1, -1, -1), grads, strict=True):
        weights[i] -= LR * grad_w
        biases[i] -= LR * grad_b
    return loss


def engine_step(model: tn.nn.Module, optimizer: tn.optim.SGD, x: tn.Tensor, y: tn.Tensor) -> float:
    """The same step through the library: model, loss, backward, optimizer."""
    optimizer.zero_grad()
    loss = tn.losses.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _engine(width: int) -> tuple[Callable[[], float], float]:
    weights, biases, x, y = _setup(width)
    model = tn.nn.MLP([width] * (DEPTH + 1), "tanh")
    linear_layers = [m for m in model.modules() if isinstance(m, tn.nn.Linear)]
    for layer, w, b in zip(linear_layers, weights, biases, strict=True):
        layer.weight.data[...] = w
        layer.bias.data[...] = b
    optimizer = tn.optim.SGD(model.parameters(), lr=LR)
    tx, ty = tn.Tensor(x), tn.Tensor(y)
    return (lambda: engine_step(model, optimizer, tx, ty)), engine_step(model, optimizer, tx, ty)


def _hand(width: int) -> tuple[Callable[[], float], float]:
    weights, biases, x, y = _setup(width)
    return (lambda: hand_written_step(weights, biases, x, y)), hand_written_step(weights, biases, x, y)


def measure(width: int, repeats: int) -> dict[str, float]:
    """Median step times (s) and peak step memory (bytes) of both versions at ``width``."""
    engine, first_engine_loss = _engine(width)
    hand, first_hand_loss = _hand(width)
    if abs(first_engine_loss - first_hand_loss) > 1e-4 * abs(first_hand_loss):
        raise RuntimeError(f"engine and hand-written losses differ: {first_engine_loss} vs {first_hand_loss}")
    times = {"engine": [], "hand": []}
    for _ in range(3):  # interleave rounds so drifts in machine load hit both alike
        times["engine"].append(median_seconds(engine, repeats))
        times["hand"].append(median_seconds(hand, repeats))
    return {
        "engine_s": min(times["engine"]),
        "hand_s": min(times["hand"]),
        "engine_bytes": peak_bytes(engine),
        "hand_bytes": peak_bytes(hand),
    }


def main() -> None:
    print(f"10-layer tanh MLP, batch {BATCH}, float32, one SGD step (forward + backward + update)")
    print(
        f"{'width':>6} {'engine ms':>10} {'numpy ms':>10} {'time ratio':>11} {'engine MiB':>11} "
        f"{'numpy MiB':>10} {'mem ratio':>10}"
    )
    for width in WIDTHS:
        r = measure(width, repeats=max(5, 4000 // width))
        print(
            f"{width:>6} {r['engine_s'] * 1e3:>10.3f} {r['hand_s'] * 1e3:>10.3f} "
            f"{r['engine_s'] / r['hand_s']:>11.3f} {r['engine_bytes'] / 2**20:>11.3f} "
            f"{r['hand_bytes'] / 2**20:>10.3f} {r['engine_bytes'] / r['hand_bytes']:>10.3f}"
        )
    print("targets: time ratio <= 1.15, memory ratio <= 1.3")


if __name__ == "__main__":
    main()
