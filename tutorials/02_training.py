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
# # Tutorial 2: Training a network
#
# Tutorial 1 computed gradients. Training is what they are for: repeat "compute the loss on a
# few examples, compute its gradient, move every parameter a small step against it" until the
# loss is low. Every later tutorial trains networks, with the library's building blocks; here
# we first write each block by hand on the engine of tutorial 1, check it against the library,
# and then use the library's version:
#
# - the data: MNIST-1D, looked at as pictures;
# - the loss for classification: softmax cross-entropy, and its gradient;
# - one step of stochastic gradient descent (SGD) written by hand, then `optim.SGD`, then Adam;
# - mini-batches (`DataLoader`), and what `model.train()` and `model.eval()` change;
# - the two checks of a training run: the loss decreases, and the test accuracy is far above
#   chance.

# %%
import inspect
import math

import numpy as np
from _common import fit, plt, show, size

import tinynormact as tn
from tinynormact import functional as F
from tinynormact import losses, nn, optim
from tinynormact.data import load_dataset

# %% [markdown]
# ## 1. The data
#
# MNIST-1D (Greydanus 2020) is a small 10-class benchmark built like MNIST's digits, but in one
# dimension: each class is a template signal of 12 points, which the generator stretches,
# shifts, adds correlated noise to, and samples at 40 positions. It is generated locally by the
# `mnist1d` package (installed with tinynormact) and cached: 4000 training and 1000 test examples of 40
# features. Ten classes means that guessing gives an accuracy of 0.1 and, with uniform
# probabilities, a cross-entropy of $\ln 10 \approx 2.30$.
#
# A picture says more than the shapes: three examples of each class as curves, and then 200
# training examples as rows of an image, sorted by class.

# %%
splits = load_dataset("mnist1d")
train_set, test_set = splits.train, splits.test
print("train:", train_set.x.shape, "test:", test_set.x.shape, "classes:", train_set.n_classes)
assert train_set.x.shape == (4000, 40) and test_set.x.shape == (1000, 40)

fig, axes = plt.subplots(2, 5, figsize=(12, 4.2), sharex=True, sharey=True)
for label, ax in enumerate(axes.flat):
    for example in np.flatnonzero(train_set.y == label)[:3]:
        ax.plot(train_set.x[example], lw=1)
    ax.set_title(f"class {label}", fontsize=9)
fig.suptitle("MNIST-1D: three training examples per class (40 features each)")
show(fig, "02_mnist1d_examples.png")

order = np.argsort(train_set.y[:200], kind="stable")
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.imshow(train_set.x[:200][order], aspect="auto", cmap="RdBu_r", interpolation="nearest")
ax.set_xlabel("feature (position in the signal)")
ax.set_ylabel("example, sorted by class")
starts = np.searchsorted(train_set.y[:200][order], range(10))  # first row of each class
ax.set_yticks(starts, [str(c) for c in range(10)])
ax.hlines(starts[1:] - 0.5, -0.5, 39.5, color="black", lw=0.8)
ax.set_title("200 training examples as rows, grouped by class")
show(fig, "02_mnist1d_image.png")

# %% [markdown]
# Within a class the rows share a pattern that moves left and right (the shift), which is what
# makes the task non-trivial for a network that sees 40 unrelated numbers.
#
# ## 2. Softmax cross-entropy, by hand
#
# A classifier outputs one number per class, the *logits* $z_1, \dots, z_{10}$. Softmax turns
# them into probabilities $p_k = e^{z_k} / \sum_j e^{z_j}$, and the loss of an example with label
# $y$ is the negative log-probability of the right class,
#
# $$\ell = -\log p_y = \log \sum_j e^{z_j} - z_y ,$$
#
# averaged over the batch. Its gradient is remarkably simple: $\partial \ell / \partial z_k =
# p_k - [k = y]$, the predicted probabilities minus the one-hot label (divided by the batch size
# $B$ for the mean). Computing $\log \sum_j e^{z_j}$ naively overflows for large logits; one
# subtracts $\max_j z_j$ first, which changes nothing mathematically. We write it with engine
# operations, check it and its gradient against `losses.softmax_cross_entropy`, and check the
# gradient against the formula.


# %%
def cross_entropy_by_hand(logits, labels):
    """Mean of log-sum-exp(z) - z_y over the batch, built from engine operations."""
    shift = logits.numpy().max(axis=1, keepdims=True)  # a constant: no gradient flows through it
    shifted = logits - shift
    log_sum_exp = shifted.exp().sum(axis=1).log()
    picked = (shifted * np.eye(logits.shape[1])[labels]).sum(axis=1)  # z_y - shift
    return (log_sum_exp - picked).mean()


rng = np.random.default_rng(0)
logits_data, labels = rng.standard_normal((8, 10)) * 3, rng.integers(0, 10, 8)
by_hand = tn.Tensor(logits_data, requires_grad=True)
library = tn.Tensor(logits_data, requires_grad=True)
cross_entropy_by_hand(by_hand, labels).backward()
losses.softmax_cross_entropy(library, labels).backward()
np.testing.assert_allclose(tn.backend.to_numpy(by_hand.grad), tn.backend.to_numpy(library.grad), rtol=1e-12)

probabilities = np.exp(logits_data) / np.exp(logits_data).sum(axis=1, keepdims=True)
formula = (probabilities - np.eye(10)[labels]) / len(labels)  # (p - onehot) / B
np.testing.assert_allclose(tn.backend.to_numpy(library.grad), formula, rtol=1e-12)
uniform = losses.softmax_cross_entropy(tn.Tensor(np.zeros((8, 10))), labels).item()
np.testing.assert_allclose(uniform, math.log(10), rtol=1e-12)
print("cross-entropy and its gradient: by hand = library = (p - onehot) / B;  equal logits give ln 10")

# %% [markdown]
# ## 3. A network and one SGD step, by hand
#
# Our first network is a two-layer MLP written out: $z = \tanh(x W_1 + b_1) W_2 + b_2$ with 64
# hidden units. We draw $W_1, W_2$ with variance $1/\text{fan-in}$ (LeCun's rule, tutorial 4
# explains why) and start the biases at 0. One step of **stochastic gradient descent** on a
# batch: compute the loss, `backward()`, then for every parameter $\theta \leftarrow \theta -
# \eta\, \partial L / \partial \theta$ with the *learning rate* $\eta$, and clear the gradients
# (they accumulate, tutorial 1). The update must not be recorded in the graph, so it changes
# `.data` directly.

# %%
HIDDEN, LR, BATCH = 64, 0.1, 128


def parameters_by_hand(seed):
    """W1, b1, W2, b2 of the two-layer MLP, LeCun-normal weights, zero biases."""
    draw = np.random.default_rng(seed)
    return [
        tn.Tensor(draw.standard_normal((40, HIDDEN)) / math.sqrt(40), requires_grad=True),
        tn.Tensor(np.zeros(HIDDEN), requires_grad=True),
        tn.Tensor(draw.standard_normal((HIDDEN, 10)) / math.sqrt(HIDDEN), requires_grad=True),
        tn.Tensor(np.zeros(10), requires_grad=True),
    ]


def forward_by_hand(params, x):
    w1, b1, w2, b2 = params
    return F.tanh(x @ w1 + b1) @ w2 + b2


def sgd_step_by_hand(params, x, y, lr=LR):
    """One SGD step on the batch (x, y); returns the loss before the step."""
    loss = cross_entropy_by_hand(forward_by_hand(params, x), y)
    loss.backward()
    for p in params:
        p.data = p.data - lr * p.grad  # not recorded: .data is the raw array
        p.zero_grad()
    return loss.item()


x_train, y_train = tn.Tensor(train_set.x), train_set.y
params = parameters_by_hand(seed=1)
first_batch = slice(0, BATCH)
before = cross_entropy_by_hand(forward_by_hand(params, x_train[first_batch]), y_train[first_batch]).item()
sgd_step_by_hand(params, x_train[first_batch], y_train[first_batch])
after = cross_entropy_by_hand(forward_by_hand(params, x_train[first_batch]), y_train[first_batch]).item()
print(f"loss on the batch: {before:.4f} before the step, {after:.4f} after")
assert after < before  # a small enough step against the gradient lowers the loss on that batch

# %% [markdown]
# ### Many steps: an epoch is one pass over the shuffled training set
#
# Training repeats the step over *mini-batches*: shuffle the training set, cut it into batches
# of 128, take one step per batch; one pass is an *epoch*. We record the mean loss of each
# epoch. The check of a training run is that this loss decreases: we assert that the last
# epoch's mean is below the first's by a clear margin (0.3) and below $\ln 10$.

# %%
EPOCHS = size(10, 4)
shuffle = np.random.default_rng(2)
epoch_losses = []
for _ in range(EPOCHS):
    order = shuffle.permutation(len(y_train))
    batch_losses = [
        sgd_step_by_hand(params, x_train[order[i : i + BATCH]], y_train[order[i : i + BATCH]])
        for i in range(0, len(order), BATCH)
    ]
    epoch_losses.append(float(np.mean(batch_losses)))
print("hand-written SGD, mean train loss per epoch:", np.round(epoch_losses, 3))
assert epoch_losses[-1] < epoch_losses[0] - 0.3 and epoch_losses[-1] < math.log(10)

# %% [markdown]
# ## 4. The same with the library: `nn`, `optim`, `DataLoader`
#
# The library packages each piece: `nn.MLP([40, 64, 10], "tanh")` is the same network
# (Linear, tanh, Linear, LeCun-normal weights, zero biases); `model.parameters()` lists its
# tensors; `optim.SGD(parameters, lr)` does the update of section 3 in `step()`, and
# `zero_grad()` clears the gradients; `DataLoader(dataset, batch_size, seed=...)` shuffles and
# cuts into batches, a new order each epoch. A `Linear` stores its weight as (out, in), as
# PyTorch does, and computes $x W^\top + b$, so our $W_1$ is its `weight` transposed. First we
# check that `optim.SGD` does exactly our hand-written update: one step from the same weights on
# the same batch gives the same weights.

# %%
model = nn.MLP([40, HIDDEN, 10], "tanh", dtype="float64", rng=1)
first, second = [layer for layer in model if isinstance(layer, nn.Linear)]
library_params = (first.weight, first.bias, second.weight, second.bias)
print("library weight shapes (out, in):", tuple(first.weight.shape), tuple(second.weight.shape))
as_by_hand = [p.numpy().T if p.ndim == 2 else p.numpy() for p in library_params]
params = [tn.Tensor(value.copy(), requires_grad=True) for value in as_by_hand]  # same weights, (in, out)
x, y = x_train[first_batch], y_train[first_batch]
sgd_step_by_hand(params, x, y)

optimizer = optim.SGD(model.parameters(), lr=LR)
loss = losses.softmax_cross_entropy(model(x), y)
optimizer.zero_grad()
loss.backward()
optimizer.step()
for mine, theirs in zip(params, library_params, strict=True):
    np.testing.assert_allclose(theirs.numpy(), mine.numpy().T, rtol=1e-12, atol=1e-15)
print("one optim.SGD step = one hand-written step, to rounding")

# %% [markdown]
# ## 5. Train and evaluate
#
# A full training loop with the library, and the second check: accuracy on the *test* set,
# examples the network never trained on. Evaluation needs no gradients, so it runs under
# `tn.no_grad()` (no graph is recorded, which saves memory and time), and in **evaluation
# mode**, `model.eval()`. The mode matters for layers that use batch statistics, such as batch
# normalization (tutorial 5) and the adaptive normalized activation: in training mode they
# normalize with the statistics of the current batch, in evaluation mode with running estimates
# collected during training, so that an example's prediction does not depend on which other
# examples share its batch. `model.train()` switches back. (Our tanh MLP has no such layer;
# the loop below is the one every later tutorial uses.)
#
# The loop is `fit` in `tutorials/_common.py`, so that the later tutorials share it; it is
# printed below: the loop of section 3, with a `DataLoader` for the batches and `optim` for the
# step. We train with **Adam**, which scales each parameter's step by a running estimate of the size
# of its own gradients (tutorial 6 shows when that matters), and assert that the test accuracy
# is far above chance: with 1000 test examples, an accuracy measured at chance level (0.1) has
# a standard error of $\sqrt{0.1 \cdot 0.9 / 1000} \approx 0.0095$, so 0.3 is more than 20
# standard errors above it.


# %%
def accuracy(model, dataset):
    """Fraction of ``dataset`` classified correctly, in evaluation mode and without a graph."""
    model.eval()
    with tn.no_grad():
        predictions = model(tn.Tensor(dataset.x)).numpy().argmax(axis=1)
    model.train()
    return float(np.mean(predictions == dataset.y))


print(inspect.getsource(fit))  # the loop every later tutorial uses, from _common.py


model = nn.MLP([40, 128, 128, 10], "tanh", rng=0)
print(f"test accuracy before training: {accuracy(model, test_set):.3f}")
history = fit(model, optim.Adam(model.parameters(), lr=3e-3), train_set, EPOCHS)
test_accuracy = accuracy(model, test_set)
print("Adam, mean train loss per epoch:", np.round(history, 3))
print(f"test accuracy after {EPOCHS} epochs: {test_accuracy:.3f} (train: {accuracy(model, train_set):.3f})")
assert history[-1] < history[0] - 0.3
assert test_accuracy > 0.3

# %% [markdown]
# Try changing the learning rate `lr=3e-3` to `3e-2` and to `3e-4`, or the width 128: too large
# a rate makes the loss jump around, too small a rate makes it fall slowly. The gap between the
# train and the test accuracy is *overfitting*: 4000 examples are few for a network with
# thousands of parameters.
#
# ### Why evaluation mode matters, shown with batch normalization
#
# **Batch normalization** (BN, Ioffe and Szegedy 2015) is the standard layer with batch
# statistics, and the later tutorials meet it again (tutorial 5 works out what it does to the
# variance theory). `nn.BatchNorm1d(features)` takes each feature (column) $u$ of its input,
# subtracts its mean over the batch and divides by its standard deviation over the batch,
# $\hat u = (u - \mathrm{mean}_b u) / \sqrt{\mathrm{var}_b u + \epsilon}$, and then applies a
# learnable per-feature scale and shift (starting at 1 and 0). Training mode uses the batch's
# own mean and variance and updates running estimates of them; evaluation mode uses the running
# estimates. So it computes different outputs for the same example in the two modes. We put
# an `nn.BatchNorm1d` into a small network and pass one set of 16 test examples twice, once
# alone and once together with 112 others. In training mode their outputs change with their
# batch companions; in evaluation mode they do not.

# %%
bn_model = nn.Sequential(
    nn.Linear(40, 32, rng=0), nn.BatchNorm1d(32), nn.activation("tanh"), nn.Linear(32, 10, rng=1)
)
fit(bn_model, optim.Adam(bn_model.parameters(), lr=3e-3), train_set, 1)  # fills the running estimates
few, many = tn.Tensor(test_set.x[:16]), tn.Tensor(test_set.x[:128])
with tn.no_grad():
    bn_model.train()
    train_mode_gap = np.max(np.abs(bn_model(few).numpy() - bn_model(many).numpy()[:16]))
    bn_model.eval()
    eval_mode_gap = np.max(np.abs(bn_model(few).numpy() - bn_model(many).numpy()[:16]))
print(
    f"largest change of an output when the batch changes: training mode {train_mode_gap:.2e}, "
    f"evaluation mode {eval_mode_gap:.2e}"
)
assert train_mode_gap > 1e-3 and eval_mode_gap < 1e-5

# %% [markdown]
# ## Summary
#
# - Softmax cross-entropy is $\log\sum_j e^{z_j} - z_y$; its gradient with respect to the
#   logits is $p - \text{onehot}(y)$ (divided by $B$ for the batch mean), and it is $\ln 10$ for
#   uniform predictions over 10 classes.
# - An SGD step is $\theta \leftarrow \theta - \eta\,\partial L/\partial \theta$ on a
#   mini-batch, then clearing the gradients; `optim.SGD` does exactly that, and `optim.Adam`
#   rescales each parameter's step.
# - A training run is checked by its loss decreasing and by its accuracy on held-out data.
# - `model.eval()` and `tn.no_grad()` for evaluation: layers with batch statistics then use their
#   running estimates, and no graph is recorded.
#
# Next, tutorial 3 asks what an activation function does to the *size* of the signals and
# gradients that flow through a network, the question the rest of the course is about.
#
# ## Exercises
#
# 1. Add momentum to the hand-written step (keep a velocity $v \leftarrow \mu v + g$ per
#    parameter and step by $-\eta v$) and check it against `optim.SGD(..., momentum=0.9)` for
#    three steps.
# 2. Train the hand-written network of section 3 with learning rates 0.01, 0.1 and 1. Which one
#    gives the lowest loss after the same number of epochs?
# 3. Replace tanh by relu in `fit`'s model (`nn.MLP([40, 128, 128, 10], "relu")`) and compare
#    the test accuracies. Then train for twice as many epochs: does the test accuracy keep
#    rising while the training loss falls?
# 4. Evaluate the model of section 5 in *training* mode, and then after replacing tanh by
#    `"nsigmoid"` with `{"mode": "adaptive"}`. Which of the two changes its test accuracy with
#    the mode, and why?
