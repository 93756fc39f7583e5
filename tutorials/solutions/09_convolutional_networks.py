"""Solutions to the exercises of tutorial 9 (convolutional networks), each one checked.

Run it like a tutorial: ``python tutorials/solutions/09_convolutional_networks.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)

import numpy as np  # noqa: E402
from _common import size  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import nn  # noqa: E402
from tinynormact.engine import convolution  # noqa: E402
from tinynormact.theory import convolution as conv_theory  # noqa: E402

# Exercise 1: the columns matrix has one row per output position, (L + 2 pad - k) // s + 1 of
# them, and in * k columns. A window reads only padding when it starts at or beyond the last
# real input plus one, i.e. when pad >= k (at the left border the first window covers positions
# -pad .. k - 1 - pad, all padding when k - 1 - pad < 0).
rng = np.random.default_rng(0)
length, channels, kernel = 9, 2, 3
x = rng.standard_normal((1, channels, length))
w = rng.standard_normal((4, channels, kernel))
for stride, padding in ((1, 0), (2, 1), (3, 2), (1, 3)):
    predicted = ((length + 2 * padding - kernel) // stride + 1, channels * kernel)
    out = convolution.conv(tn.Tensor(x), tn.Tensor(w), stride=stride, padding=padding)
    assert out.shape == (1, 4, predicted[0]), (stride, padding)
    padded = np.pad(x, [(0, 0), (0, 0), (padding, padding)])
    only_padding = [
        p for p in range(predicted[0]) if not padded[0, :, p * stride : p * stride + kernel].any()
    ]
    assert bool(only_padding) == (padding >= kernel)
    print(
        f"1. stride {stride}, padding {padding}: columns {predicted}; windows of padding only: {only_padding}"
    )

DEPTH, WIDTH, LENGTH, BATCH, NETWORKS = size(8, 6), size(128, 64), 16, size(64, 32), size(4, 3)


def measure(act, weight_var, batch_norm):
    """q_l(p) of every conv output (after BN when ``batch_norm``), for NETWORKS random networks."""
    measured = np.zeros((NETWORKS, DEPTH, LENGTH))
    for seed in range(NETWORKS):
        h = tn.Tensor(np.random.default_rng([seed, 99]).standard_normal((BATCH, WIDTH, LENGTH)))
        for layer in range(DEPTH):
            conv = nn.Conv1d(WIDTH, WIDTH, 3, padding=1, bias=False, dtype="float64", rng=[seed, layer])
            conv.weight.data *= math.sqrt(weight_var)
            h = conv(h)
            if batch_norm:
                h = nn.BatchNorm1d(WIDTH, dtype="float64")(h)
            measured[seed, layer] = (h.numpy() ** 2).mean(axis=(0, 1))
            h = nn.Activation(act)(h)
    return measured


# Exercise 2: BN normalizes each channel over the batch *and the positions*, so the mean of
# q_l(p) over the positions is 1 in every layer; the border stays below the interior, because
# zero padding still feeds it fewer inputs.
with_bn = measure("tanh", 1.5, batch_norm=True).mean(axis=0)
np.testing.assert_allclose(with_bn.mean(axis=1), 1.0, atol=1e-4)
assert np.all(with_bn[1:, 0] < with_bn[1:, LENGTH // 2])  # the border is still lower
print(
    "2. with BN: mean q per layer = 1; border/interior in the last layer",
    f"{with_bn[-1, 0] / with_bn[-1, LENGTH // 2]:.3f}",
)

# Exercise 3: relu with He weights keeps the interior flat: the first layer gives q = 2 (weight
# variance 2 times the input's second moment 1), and every later one keeps it (rho = 1/2, times 2);
# at the border the zero padding removes a third of the window's inputs in every layer, and the
# deficit grows with depth and spreads inwards by one position per layer.
theory = conv_theory.conv_profile("relu", [WIDTH] * (DEPTH + 1), (LENGTH,), 3, 1, 1, weight_var=2.0)
q = np.array(theory.q)
np.testing.assert_allclose(q[:, LENGTH // 2], 2.0, rtol=1e-9)  # the interior is flat
assert np.all(np.diff(q[:, 0]) < 0)  # the border falls layer after layer
relu = measure("relu", 2.0, batch_norm=False)
mean, se = relu.mean(axis=0), relu.std(axis=0, ddof=1) / math.sqrt(NETWORKS)
tolerance = 5 * se + 2 * DEPTH / (3 * WIDTH) * np.abs(q)
assert np.all(np.abs(mean - q) <= tolerance)
print(
    f"3. relu, He: interior q = 2 in every layer; border q from {q[0, 0]:.3f} to {q[-1, 0]:.3f};",
    "measured agrees",
)
