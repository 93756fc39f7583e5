"""One SGD step of a tanh MLP on every device at hand: the engine on NumPy and on CuPy, with
PyTorch (CPU and CUDA) as the reference when it is installed.

A step is forward through DEPTH Linear+tanh layers (the last one linear), mean squared error,
backward and a plain SGD update, ending with ``loss.item()``: one host synchronisation, so a
GPU step is timed to its end. Each cell is the median of a few steps after one warm-up step (the
first GPU step compiles kernels). Not one of ``make bench``'s modules (at width 4096 a CPU step
takes seconds): ``make gpu-check`` runs it, ``python -m benchmarks.device_step`` runs it alone.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

import tinynormact as tn
from benchmarks.timing import median_seconds
from tinynormact import backend
from tinynormact.engine.backend import np
from tinynormact.train import using_device

DEPTH, LR = 4, 1e-3
WIDTHS = (256, 1024, 4096)
BATCHES = (128, 1024)


def _data(width: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    return x, rng.standard_normal((batch, width)).astype(np.float32)


def engine_step(device: str, width: int, batch: int) -> Callable[[], float]:
    """A step of the library's MLP on ``device``."""
    with using_device(device):
        model = tn.nn.MLP([width] * (DEPTH + 1), "tanh", rng=0)
        optimizer = tn.optim.SGD(model.parameters(), lr=LR)
        x, y = (tn.Tensor(a) for a in _data(width, batch))

    def step() -> float:
        optimizer.zero_grad()
        loss = tn.losses.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def torch_step(device: str, width: int, batch: int) -> Callable[[], float]:
    """The same step in PyTorch on ``device`` ("cpu" or "cuda")."""
    import torch

    layers: list[torch.nn.Module] = []
    for i in range(DEPTH):
        layers.append(torch.nn.Linear(width, width))
        if i < DEPTH - 1:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = (torch.from_numpy(a).to(device) for a in _data(width, batch))

    def step() -> float:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def contenders() -> dict[str, Callable[[int, int], Callable[[], float]]]:
    """Every (name -> step builder) this machine can run."""
    found: dict[str, Callable[[int, int], Callable[[], float]]] = {
        "engine cpu": lambda w, b: engine_step("cpu", w, b)
    }
    if backend.cuda_available():
        found["engine cuda"] = lambda w, b: engine_step("cuda", w, b)
    if importlib.util.find_spec("torch") is not None:
        import torch

        found["torch cpu"] = lambda w, b: torch_step("cpu", w, b)
        if torch.cuda.is_available():
            found["torch cuda"] = lambda w, b: torch_step("cuda", w, b)
    return found


def measure(widths: tuple[int, ...] = WIDTHS, batches: tuple[int, ...] = BATCHES) -> list[dict[str, object]]:
    """One row per (width, batch): the median step time (ms) of every contender."""
    rows = []
    found = contenders()
    for width in widths:
        for batch in batches:
            row: dict[str, object] = {"width": width, "batch": batch}
            for name, build in found.items():
                step = build(width, batch)
                step()  # warm-up: kernels compile, memory pools fill
                slow = width >= 4096 and name.endswith("cpu")
                row[name] = median_seconds(step, 3 if slow else 10) * 1e3
            rows.append(row)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table, with the ratios ``a / b`` of step times where both ran:
    engine cpu / engine cuda is the GPU's speed-up, engine cuda / torch cuda the engine's cost
    over PyTorch on the same GPU."""
    names = [key for key in rows[0] if key not in ("width", "batch")]
    pairs = (("engine cpu", "engine cuda"), ("engine cuda", "torch cuda"), ("engine cpu", "torch cpu"))
    ratios = [pair for pair in pairs if set(pair) <= set(names)]
    header = ["width", "batch", *(f"{n} ms" for n in names), *(f"{a} / {b}" for a, b in ratios)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [str(row["width"]), str(row["batch"]), *(f"{row[n]:.3f}" for n in names)]
        cells += [f"{row[a] / row[b]:.2f}" for a, b in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    args = parser.parse_args(argv)
    print(f"{DEPTH}-layer tanh MLP, float32, one SGD step ending in loss.item(); median ms")
    print(table(measure(tuple(args.widths), tuple(args.batches))))


if __name__ == "__main__":
    main()
