"""Solutions to the exercises of tutorial 2 (training a network), each one checked.

Run it like a tutorial: ``python tutorials/solutions/02_training.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import math  # noqa: E402 (after the path)

import numpy as np  # noqa: E402
from _common import fit, size  # noqa: E402

import tinynormact as tn  # noqa: E402
from tinynormact import functional as F  # noqa: E402
from tinynormact import losses, nn, optim  # noqa: E402
from tinynormact.data import load_dataset  # noqa: E402

splits = load_dataset("mnist1d")
x_train, y_train = tn.Tensor(splits.train.x), splits.train.y
EPOCHS = size(6, 2)

# Exercise 1: momentum by hand (v <- mu v + g, theta <- theta - lr v) equals optim.SGD's.
model = nn.MLP([40, 32, 10], "tanh", dtype="float64", rng=0)
mine = [tn.Tensor(p.numpy().copy(), requires_grad=True) for p in model.parameters()]
velocity = [np.zeros(p.shape) for p in mine]
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for step in range(3):
    x, y = x_train[step * 64 : (step + 1) * 64], y_train[step * 64 : (step + 1) * 64]
    loss = losses.softmax_cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    w1, b1, w2, b2 = mine  # the library's layout: weights (out, in)
    mine_loss = losses.softmax_cross_entropy(F.tanh(x @ w1.T + b1) @ w2.T + b2, y)
    mine_loss.backward()
    for k, p in enumerate(mine):
        velocity[k] = 0.9 * velocity[k] + tn.backend.to_numpy(p.grad)
        p.data = p.data - 0.1 * velocity[k]
        p.zero_grad()
for p, theirs in zip(mine, model.parameters(), strict=True):
    np.testing.assert_allclose(theirs.numpy(), p.numpy(), rtol=1e-12, atol=1e-14)
print("1. hand-written momentum = optim.SGD(momentum=0.9) after three steps")


# Exercise 2: learning rates 0.01, 0.1 and 1 for plain SGD on the tutorial's two-layer network.
def final_loss(lr):
    model = nn.MLP([40, 64, 10], "tanh", rng=1)
    return fit(model, optim.SGD(model.parameters(), lr=lr), splits.train, EPOCHS)[-1]


by_rate = {lr: final_loss(lr) for lr in (0.01, 0.1, 1.0)}
print("2. last-epoch train loss by learning rate:", {k: round(v, 3) for k, v in by_rate.items()})
# 0.01 is too slow: it has hardly left ln 10 when the larger rates are well below it.
assert by_rate[0.01] > by_rate[0.1] and by_rate[0.01] > math.log(10) - 0.3


# Exercise 3: relu against tanh in the tutorial's Adam network.
def test_accuracy(activation):
    model = nn.MLP([40, 128, 128, 10], activation, rng=0)
    fit(model, optim.Adam(model.parameters(), lr=3e-3), splits.train, EPOCHS)
    model.eval()
    with tn.no_grad():
        return float(np.mean(model(tn.Tensor(splits.test.x)).numpy().argmax(axis=1) == splits.test.y))


accuracies = {act: test_accuracy(act) for act in ("tanh", "relu")}
print("3. test accuracy:", accuracies, "(both far above chance; which wins depends on the epochs)")
assert all(value > 0.3 for value in accuracies.values())

# Exercise 4: a tanh MLP has no layer with batch statistics, so its outputs do not depend on
# the mode; an adaptive normalized activation normalizes with the batch in training mode and
# with its running estimates in evaluation mode, so its outputs do.
for activation, options, depends in (("tanh", {}, False), ("nsigmoid", {"mode": "adaptive"}, True)):
    model = nn.MLP([40, 64, 10], activation, options, rng=0)
    x = tn.Tensor(splits.test.x[:200])
    with tn.no_grad():
        model.train()
        train_mode = model(x).numpy()
        model.eval()
        eval_mode = model(x).numpy()
    gap = float(np.max(np.abs(train_mode - eval_mode)))
    print(f"4. {activation} {options}: largest output change between the modes {gap:.1e}")
    assert (gap > 1e-4) == depends
