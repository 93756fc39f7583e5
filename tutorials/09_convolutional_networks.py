# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 9: Convolutional networks (im2col, signal propagation, MNIST-1D)
#
# The paper makes its claims on convolutional residual networks. This tutorial builds the
# convolution of `tinynormact.engine.convolution` from scratch, checks how a signal propagates through
# a deep random CNN against the per-position theory of docs/THEORY.md ("Convolutional
# networks"), and then compares vanilla and normalized Swish in the small 1-D ResNet on
# MNIST-1D.
#
# A 1-D convolution layer with weight $W$ of shape (out, in, kernel) computes, at every output
# position $p$,
#
# $$h[o, p] = \sum_{c, k} W[o, c, k]\; x[c,\; p \cdot \text{stride} + k - \text{padding}] + b[o],$$
#
# a Linear layer applied to the window of the input that $p$ reads, with the same weights at
# every position. Its fan-in is $\text{in} \times \text{kernel}$: the number of terms in the sum.

# %%
import math

import numpy as np
from _common import FAST, plt, show, size

import tinynormact as tn
from tinynormact import nn
from tinynormact.engine import convolution
from tinynormact.theory import convolution as conv_theory

# %% [markdown]
# ## 1. Convolution as one matrix product (im2col)
#
# Copy every window into one row of a matrix, the "columns" matrix: row $p$ holds the
# $\text{in} \times \text{kernel}$ inputs that output $p$ reads. Then the convolution is a single
# matrix product, columns $\times W^\top$, which BLAS does fast. `convolution.conv_im2col` does
# exactly this, with a strided *view* of the padded input (no copy) that one `reshape` turns into
# the columns matrix. `convolution.conv`, the one the layers use, gets the same numbers with less
# copying (its module docstring, "The fast path"); im2col is the idea to learn, and the reference
# the fast path is tested against. Let us build it by hand for a small example and look at it.

# %%
rng = np.random.default_rng(0)
length, channels, kernel, stride, padding = 9, 2, 3, 2, 1
x = rng.standard_normal((1, channels, length))
w = rng.standard_normal((4, channels, kernel))

padded = np.pad(x, [(0, 0), (0, 0), (padding, padding)])
outputs = (length + 2 * padding - kernel) // stride + 1
columns = np.stack(
    [padded[0, :, p * stride : p * stride + kernel].ravel() for p in range(outputs)]
)  # (positions, channels * kernel)
by_hand = (columns @ w.reshape(4, -1).T).T  # (out, positions)
library = convolution.conv(tn.Tensor(x), tn.Tensor(w), stride=stride, padding=padding)
np.testing.assert_allclose(library.numpy()[0], by_hand, rtol=1e-12)
print(f"{outputs} output positions, columns matrix {columns.shape}, library output {library.shape}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [3, 2]}, layout="constrained")
for c in range(channels):
    axes[0].plot(np.arange(-padding, length + padding), padded[0, c], "o-", label=f"channel {c}")
for p in range(outputs):
    start = p * stride - padding
    axes[0].axvspan(
        start - 0.4, start + kernel - 0.6, ymin=0.02 + 0.07 * p, ymax=0.07 + 0.07 * p, color="C3", alpha=0.5
    )
axes[0].set_title(
    f"input, padded by {padding}\nbars: the window of each output (stride {stride})", fontsize=10
)
axes[0].legend(fontsize=8)
image = axes[1].imshow(columns, cmap="coolwarm", aspect="auto")
axes[1].set_xlabel("(channel, kernel offset)")
axes[1].set_ylabel("output position")
axes[1].set_title("the columns matrix:\none window per row", fontsize=10)
fig.colorbar(image, ax=axes[1])
show(fig, "09_im2col.png")

# %% [markdown]
# Backward is two more products: $\partial L / \partial W$ = $g^\top$ columns, and
# $\partial L / \partial \text{columns} = g\, W$. The last one must go back to the input: each
# entry of a row goes to the input element that row read, and elements read by several windows
# (overlapping windows) collect a sum. That is "col2im"; the library loops over the `kernel`
# offsets and adds a strided slice each time. The tests check the forward against a loop over
# every index and the backward against finite differences; here is the gradient check once:

# %%
xt = tn.Tensor(x, requires_grad=True)
wt = tn.Tensor(w, requires_grad=True)
assert tn.gradcheck(lambda a, b: convolution.conv(a, b, stride=stride, padding=padding), xt, wt)
print("gradcheck passed")

# %% [markdown]
# ## 2. Signal propagation in a deep CNN, against theory
#
# Every term of the window sum has its own independent weight, so the forward recursion
# [E8](../docs/THEORY.md#e8) holds *per position*: $q_l(p) = \sigma_w^2\,
# \text{window\_mean}(m_2(q_{l-1}))(p)$, the mean over the inputs that $p$ reads. Away from the
# border this is the MLP's E8. At the border, zero padding contributes zeros, so $q$ is smaller
# there, and the deficit spreads inwards by one position per layer. Backward
# ([E9](../docs/THEORY.md#e9)), the gradient of an input position collects the positions that
# read it (`window_spread`). `theory.convolution.conv_profile` computes both maps.
#
# We build a deep 1-D CNN of tanh layers with `nn.Conv1d` (LeCun weights, $\sigma_w^2 = 1$,
# scaled to 1.5 here), feed it standard normal inputs, and compare $q_l(p)$ with the theory,
# averaging over a few random networks.

# %%
depth, width, length, batch = size(8, 6), size(128, 64), 16, size(64, 32)
weight_var, networks = 1.5, size(4, 3)
predicted = conv_theory.conv_profile("tanh", [width] * (depth + 1), (length,), 3, 1, 1, weight_var)
measured = np.zeros((networks, depth, length))
for seed in range(networks):
    layers = []
    for l in range(depth):
        conv = nn.Conv1d(width, width, 3, padding=1, bias=False, dtype="float64", rng=[seed, l])
        conv.weight.data *= math.sqrt(weight_var)
        layers += [conv] + ([nn.Activation("tanh")] if l < depth - 1 else [])
    net = nn.Sequential(*layers)
    h = tn.Tensor(np.random.default_rng([seed, 99]).standard_normal((batch, width, length)))
    for layer in net:
        h = layer(h)
        if isinstance(layer, nn.Conv1d):
            index = [m for m in net if isinstance(m, nn.Conv1d)].index(layer)
            measured[seed, index] = (h.numpy() ** 2).mean(axis=(0, 1))

fig, ax = plt.subplots(figsize=(7, 3.5))
for l in (0, depth // 2, depth - 1):
    ax.plot(measured[:, l].mean(axis=0), "o", color=f"C{l % 10}", label=f"measured, layer {l + 1}")
    ax.plot(predicted.q[l], "-", color=f"C{l % 10}", label=f"theory, layer {l + 1}")
ax.set_xlabel("position")
ax.set_ylabel("$q_l(p) = E[h^2]$")
ax.set_title("deep tanh CNN: per-position E8 (zero padding lowers q at the border)")
ax.legend(fontsize=7, ncol=3)
show(fig, "09_cnn_propagation.png")

# %% [markdown]
# How close must they be? Each network's per-position mean square fluctuates around the theory
# by a few percent (finite width, finite batch), and networks are independent, so the mean over
# networks has a standard error we can measure. We allow 5 standard errors plus the $2L/n$
# finite-width allowance of docs/THEORY.md ($n$ = fan-in), and check that the same tolerance
# would reject a border-free theory (the interior value everywhere).

# %%
mean = measured.mean(axis=0)
se = measured.std(axis=0, ddof=1) / math.sqrt(networks)
tolerance = 5 * se + 2 * depth / (3 * width) * np.abs(np.array(predicted.q))
assert np.all(np.abs(mean - np.array(predicted.q)) <= tolerance)
border_free = np.array([np.full(length, q[length // 2]) for q in predicted.q])
assert np.any(np.abs(mean - border_free) > tolerance), "the border should be visible"
print(f"per-position agreement within 5 SE + 2L/n at all {depth * length} (layer, position) pairs")
for layer, q in enumerate(np.array(predicted.q), start=1):  # the deficit: one position per layer
    off_interior = np.abs(q / q[length // 2] - 1) > 1e-12
    assert layer >= length // 2 or off_interior.sum() == 2 * layer, (layer, np.flatnonzero(off_interior))

# %% [markdown]
# Try changing `weight_var` to 1.0: the interior $q$ then decays with depth (tanh's fixed point
# at $\sigma_w^2 = 1$ is 0, tutorial 4), and the border deficit with it.

# %% [markdown]
# ## 3. Vanilla against normalized Swish in the 1-D ResNet on MNIST-1D
#
# MNIST-1D examples are 40-sample signals; `nn.resnet1d` reads each as one channel of length
# 40: a convolution to 32 channels, three stages of one residual block $x + F(x)$
# ($F$ = conv, activation, conv; stride 2 and a 1x1 projection where a stage starts), global
# average pooling and a Linear. No batch normalization, so the activation's scale is what
# keeps the signal in range. We train vanilla Swish and normalized Swish (static lambda at
# $q = 1$, and adaptive) with the same seed; the `cnn-quick` preset runs the full comparison with
# several seeds and statistics (`tinynormact reproduce --preset cnn-quick`).

# %%
from tinynormact.train import TrainConfig, train  # noqa: E402

epochs = size(15, 2)
data_options = {} if not FAST else {"num_samples": 1000}
histories = {}
for label, activation, options in (
    ("swish", "swish", {}),
    ("nswish static", "nswish", {"mode": "static"}),
    ("nswish adaptive", "nswish", {"mode": "adaptive"}),
):
    config = TrainConfig(
        dataset="mnist1d",
        dataset_options=data_options,
        architecture="resnet1d",
        activation=activation,
        activation_options=options,
        depth=1,
        width=size(32, 8),
        epochs=epochs,
        optimizer="adam",
        lr=1e-3,
        seed=0,
    )
    histories[label] = train(config, progress=False).history
    print(f"{label:>16}: test accuracy {histories[label]['test_acc'][-1]:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for label, history in histories.items():
    axes[0].plot(history["epoch"], history["train_loss"], label=label)
    axes[1].plot(history["epoch"], history["test_acc"], label=label)
axes[0].set_ylabel("train loss")
axes[1].set_ylabel("test accuracy")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
show(fig, "09_mnist1d_swish.png")
for history in histories.values():
    assert history["train_loss"][-1] < history["train_loss"][0], "training should lower the loss"

# %% [markdown]
# One seed says little: differences of a percent or two between these curves are within the
# seed-to-seed spread (the standard deviations over three seeds in the committed `cnn-quick`
# report, docs/reports/cnn-quick/report.md, are 0.6 to 1.6 points). That preset's report gives
# means over seeds, paired differences with confidence intervals and the number of diverged
# runs (its adaptive column is the plain reading `estimate="batch"`, the default when it ran).
# For reference, the
# MNIST-1D paper (Greydanus, 2020) reports 94% test accuracy for its CNN, 68% for an MLP and
# 32% for logistic regression on this dataset (4000 training examples).
#
# ## Summary
#
# - A convolution is a Linear layer on every window: im2col copies the windows into one matrix
#   and makes it one matrix product; col2im adds the gradients of overlapping windows back.
# - Fan-in is in_channels x prod(kernel); with it, E8 and E9 hold per position, and zero padding
#   makes the border differ from the interior by a computable amount.
# - Normalized activations drop into convolutional networks unchanged; an adaptive lambda is
#   one scalar per layer, over every element of the feature map.
#
# ## Exercises
#
# 1. Change `stride` and `padding` in section 1 and predict the shape of the columns matrix
#    before running it. When does a window read only padding?
# 2. Put `nn.BatchNorm1d` after every convolution of section 2. What happens to $q_l(p)$, at the
#    border and inside? (docs/THEORY.md: batch normalization pins $q = 1$ per channel.)
# 3. Replace tanh by relu with He weights ($\sigma_w^2 = 2$) in section 2 and compare with
#    `conv_profile("relu", ..., weight_var=2.0)`. Is the interior flat, and the border?
