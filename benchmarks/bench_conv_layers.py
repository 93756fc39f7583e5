"""Single convolution layers of ResNet-20 (batch 64): the fast path, the im2col teaching path and
PyTorch, forward and forward + backward, at the BLAS threads of this process (``make bench``: 1).

Where the step's convolution time goes, layer by layer, and how far each layer's GFLOP/s is
from the machine's sgemm rate. Each version runs on the same float32 input and weight with the
input's gradient required (the weight's always); the fastest CPU time of interleaved rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import tinynormact as tn
from benchmarks.timing import has_torch, sgemm_rate, torch_missing_message
from tinynormact.engine import convolution
from tinynormact.engine.backend import np

# (in channels, out channels, input size, kernel, stride, padding): ResNet-20's convolutions
LAYERS = [
    (16, 16, 32, 3, 1, 1),
    (32, 32, 16, 3, 1, 1),
    (64, 64, 8, 3, 1, 1),
    (16, 32, 32, 3, 2, 1),
    (16, 32, 32, 1, 2, 0),
]
BATCH, ROUNDS = 64, 7


def _engine(conv: Callable, x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> tuple:
    tx, tw = tn.Tensor(x, requires_grad=True), tn.Tensor(w, requires_grad=True)
    g = np.ones(
        (
            x.shape[0],
            w.shape[0],
            *convolution.output_shape(x.shape[2:], w.shape[2:], (stride,) * 2, (padding,) * 2),
        ),
        np.float32,
    )
    return (lambda: conv(tx, tw, None, stride, padding)), (
        lambda: conv(tx, tw, None, stride, padding).backward(g)
    )


def _torch(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> tuple:
    import torch

    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()

    def forward() -> object:
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, None, stride, padding)

    def both() -> None:
        out = torch.nn.functional.conv2d(tx, tw, None, stride, padding)
        out.backward(torch.ones_like(out))

    return forward, both


def measure(layer: tuple[int, ...]) -> dict[str, tuple[float, float]]:
    """(forward, forward + backward) CPU seconds of each version, the fastest of ROUNDS."""
    channels, out_channels, size, kernel, stride, padding = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, channels, size, size)).astype(np.float32)
    w = (rng.standard_normal((out_channels, channels, kernel, kernel)) * 0.1).astype(np.float32)
    versions = {
        "fast": _engine(convolution.conv, x, w, stride, padding),
        "im2col": _engine(convolution.conv_im2col, x, w, stride, padding),
    }
    if has_torch():
        versions["pytorch"] = _torch(x, w, stride, padding)
    best = {label: [float("inf"), float("inf")] for label in versions}
    for _ in range(ROUNDS):
        for label, pair in versions.items():
            for k, fn in enumerate(pair):
                start = time.process_time()
                fn()
                best[label][k] = min(best[label][k], time.process_time() - start)
    return {label: (a, b) for label, (a, b) in best.items()}


def main() -> None:
    if has_torch():
        import torch

        torch.set_num_threads(1)
    else:
        print(torch_missing_message())
    print(f"ResNet-20 convolutions, batch {BATCH}, float32: CPU ms forward / forward + backward (x and w),")
    print(
        f"the fastest of {ROUNDS} interleaved rounds; GFLOP/s of forward + backward (3x the forward's FLOPs);"
    )
    print(f"sgemm 1024^3 in this process: {sgemm_rate():.0f} GFLOP/s")
    labels = ["fast", "im2col"] + (["pytorch"] if has_torch() else [])
    print(
        f"{'layer (in, out, size, k, s)':>28} "
        + " ".join(f"{label + ' ms':>15}" for label in labels)
        + " "
        + " ".join(f"{label + ' GFLOP/s':>15}" for label in labels)
    )
    for layer in LAYERS:
        channels, out_channels, size, kernel, stride, _ = layer
        out = (size - 1) // stride + 1
        flops = 3 * 2 * BATCH * out * out * out_channels * channels * kernel * kernel
        r = measure(layer)
        name = f"{channels}, {out_channels}, {size}, {kernel}, {stride}"
        times = " ".join(f"{r[k][0] * 1e3:>6.1f} / {r[k][1] * 1e3:>6.1f}" for k in labels)
        rates = " ".join(f"{flops / r[k][1] / 1e9:>15.1f}" for k in labels)
        print(f"{name:>28} {times} {rates}")


if __name__ == "__main__":
    main()
