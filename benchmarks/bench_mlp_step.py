"""One SGD training step of a 10-layer tanh MLP: the engine against hand-written NumPy.

Both versions do the same arithmetic on the same float32 data in the same process: forward
through 10 Linear+tanh layers (the last one linear), mean squared error, backward, and a plain
SGD update. The table reports the median step time of each and their ratio, and the peak memory
allocated during a step (tracemalloc, which sees NumPy's buffers) and its ratio.

A third version, "replay", is the engine's step recorded once and run again (``engine.replay``:
the same numbers as the eager step, without rebuilding the graph). A fourth, "per op", is the
hand-written step cut into what any engine that runs one operation at a time must do at least:
a list of (forward, backward) function pairs on arrays, one call per operation each way, a
backward loop that sums the gradients reaching each value, and the update. It has no graph, no
tensors and no checks, so its time over the hand-written step's is the least that dispatching
per operation costs (the floor of a traced replay).
"""

from __future__ import annotations

from collections.abc import Callable

import tinynormact as tn
from benchmarks.timing import keep_memory_note, median_seconds, peak_bytes
from tinynormact.engine import replay
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


# --- per op: one forward and one backward function per operation, on arrays ------------------


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    out = x @ w.T
    out += b
    return out, (x, w)


def _linear_grads(g: np.ndarray, saved: tuple) -> tuple:
    x, w = saved
    return g @ w, g.T @ x, g.sum(axis=0)


def _tanh(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.tanh(x)
    return out, out


def _tanh_grads(g: np.ndarray, out: np.ndarray) -> tuple:
    return (g * (1 - out * out),)


def _mse(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = prediction - target
    return (diff * diff).mean(), diff


def _mse_grads(g: np.ndarray, diff: np.ndarray) -> tuple:
    return diff * (2.0 * g / diff.size), None


def per_op_program(depth: int) -> list[tuple]:
    """The step as (forward, backward, input slots, output slot): slot 0 is the input, 1 the
    target, 2 + 2i and 3 + 2i layer i's weight and bias, then one slot per result."""
    program, h, slot = [], 0, 2 + 2 * depth
    for i in range(depth):
        program.append((_linear, _linear_grads, (h, 2 + 2 * i, 3 + 2 * i), slot))
        h, slot = slot, slot + 1
        if i < depth - 1:
            program.append((_tanh, _tanh_grads, (h,), slot))
            h, slot = slot, slot + 1
    program.append((_mse, _mse_grads, (h, 1), slot))
    return program


def per_op_step(program: list[tuple], values: list, parameters: range) -> float:
    """Forward through ``program``, then backward in reverse summing the gradients that reach
    each slot, then the SGD update of the parameter slots (all gradients first, as above)."""
    saved = []
    for forward, _, inputs, output in program:
        values[output], cache = forward(*[values[i] for i in inputs])
        saved.append(cache)
    loss_slot = program[-1][3]
    grads = {loss_slot: np.ones((), values[loss_slot].dtype)}
    for (_, backward, inputs, output), cache in zip(reversed(program), reversed(saved), strict=True):
        for slot, grad in zip(inputs, backward(grads.pop(output), cache), strict=True):
            if grad is not None:
                grads[slot] = grads[slot] + grad if slot in grads else grad
    for slot in parameters:
        values[slot] -= LR * grads[slot]
    return float(values[loss_slot])


def _per_op(width: int) -> tuple[Callable[[], float], float]:
    weights, biases, x, y = _setup(width)
    program = per_op_program(DEPTH)
    values: list = [x, y] + [a for pair in zip(weights, biases, strict=True) for a in pair]
    values += [None] * len(program)
    parameters = range(2, 2 + 2 * DEPTH)
    step = lambda: per_op_step(program, values, parameters)  # noqa: E731
    return step, step()


def engine_step(model: tn.nn.Module, optimizer: tn.optim.SGD, x: tn.Tensor, y: tn.Tensor) -> float:
    """The same step through the library: model, loss, backward, optimizer."""
    optimizer.zero_grad()
    loss = tn.losses.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _model(width: int) -> tuple[tn.nn.Module, tn.optim.SGD, np.ndarray, np.ndarray]:
    """The engine's MLP with the hand-written step's weights, its optimizer and the batch."""
    weights, biases, x, y = _setup(width)
    model = tn.nn.MLP([width] * (DEPTH + 1), "tanh")
    linear_layers = [m for m in model.modules() if isinstance(m, tn.nn.Linear)]
    for layer, w, b in zip(linear_layers, weights, biases, strict=True):
        layer.weight.data[...] = w
        layer.bias.data[...] = b
    return model, tn.optim.SGD(model.parameters(), lr=LR), x, y


def _engine(width: int) -> tuple[Callable[[], float], float]:
    model, optimizer, x, y = _model(width)
    tx, ty = tn.Tensor(x), tn.Tensor(y)
    return (lambda: engine_step(model, optimizer, tx, ty)), engine_step(model, optimizer, tx, ty)


def _replayed(width: int) -> tuple[Callable[[], float], float]:
    model, optimizer, x, y = _model(width)
    step, first = replay.record(lambda a, b: tn.losses.mse_loss(model(a), b), x, y)
    optimizer.step()

    def replayed_step() -> float:
        loss = step(x, y)
        optimizer.step()
        return loss.item()

    return replayed_step, first.item()


def _hand(width: int) -> tuple[Callable[[], float], float]:
    weights, biases, x, y = _setup(width)
    return (lambda: hand_written_step(weights, biases, x, y)), hand_written_step(weights, biases, x, y)


def measure(width: int, repeats: int) -> dict[str, float]:
    """Median step times (s) of the four versions and peak step memory (bytes) of the engine
    and the hand-written step at ``width``."""
    versions = {
        "engine": _engine(width),
        "hand": _hand(width),
        "replay": _replayed(width),
        "per_op": _per_op(width),
    }
    first_hand_loss = versions["hand"][1]
    for label, (_, loss) in versions.items():
        if abs(loss - first_hand_loss) > 1e-4 * abs(first_hand_loss):
            raise RuntimeError(f"{label} and hand-written losses differ: {loss} vs {first_hand_loss}")
    times: dict[str, list[float]] = {label: [] for label in versions}
    for _ in range(3):  # interleave rounds so drifts in machine load hit all alike
        for label, (step, _) in versions.items():
            times[label].append(median_seconds(step, repeats))
    engine, hand = versions["engine"][0], versions["hand"][0]
    return {
        **{f"{label}_s": min(values) for label, values in times.items()},
        "engine_bytes": peak_bytes(engine),
        "hand_bytes": peak_bytes(hand),
    }


def main() -> None:
    print(f"10-layer tanh MLP, batch {BATCH}, float32, one SGD step (forward + backward + update)")
    print(keep_memory_note())
    print(
        f"{'width':>6} {'engine ms':>10} {'numpy ms':>10} {'time ratio':>11} {'replay ratio':>13} "
        f"{'per-op ratio':>13} {'engine MiB':>11} {'numpy MiB':>10} {'mem ratio':>10}"
    )
    for width in WIDTHS:
        r = measure(width, repeats=max(5, 4000 // width))
        print(
            f"{width:>6} {r['engine_s'] * 1e3:>10.3f} {r['hand_s'] * 1e3:>10.3f} "
            f"{r['engine_s'] / r['hand_s']:>11.3f} {r['replay_s'] / r['hand_s']:>13.3f} "
            f"{r['per_op_s'] / r['hand_s']:>13.3f} "
            f"{r['engine_bytes'] / 2**20:>11.3f} {r['hand_bytes'] / 2**20:>10.3f} "
            f"{r['engine_bytes'] / r['hand_bytes']:>10.3f}"
        )
    print("targets: time ratio <= 1.15, memory ratio <= 1.3 (per-op ratio: the floor of any engine that")
    print("runs one operation at a time, see the module docstring)")


if __name__ == "__main__":
    main()
