"""Solutions to the exercises of tutorial 1 (autograd from scratch), each one checked.

Run it like a tutorial: ``python tutorials/solutions/01_autograd.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import numpy as np  # noqa: E402 (after the path)

import tinynormact as tn  # noqa: E402
from tinynormact import functional as F  # noqa: E402

rng = np.random.default_rng(0)

# Exercise 1: sin with Tensor.from_op, checked by gradcheck; then sin(x) * x at x = 0.


def sin(t):
    """sin(t) with backward g * cos(t)."""
    return tn.Tensor.from_op(np.sin(t.data), (t,), lambda g: (g * np.cos(t.data),), "sin")


assert tn.gradcheck(sin, tn.Tensor(rng.standard_normal(6), requires_grad=True))
zero = tn.Tensor(np.zeros(1), requires_grad=True)
(sin(zero) * zero).sum().backward()
# d/dx [x sin x] = sin x + x cos x, which is 0 at x = 0: both terms of the product rule vanish.
assert float(zero.grad[0]) == 0.0
assert tn.gradcheck(lambda t: sin(t) * t, tn.Tensor(np.array([0.0, 0.3]), requires_grad=True))
print("1. sin passes gradcheck; d(x sin x)/dx = sin x + x cos x = 0 at x = 0")

# Exercise 2: y = x * x + x. Three uses of x, two paths (through mul, twice, and the direct
# one through add): the gradients add up to 2x + 1.
x = tn.Tensor(rng.standard_normal(5), requires_grad=True)
(x * x + x).sum().backward()
np.testing.assert_allclose(tn.backend.to_numpy(x.grad), 2 * x.numpy() + 1, rtol=1e-12)
print("2. x.grad = 2x + 1")

# Exercise 3: retain_grad on the intermediate h equals the hand-derived grad_h of section 2.
x = tn.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
W = tn.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
b = tn.Tensor(rng.standard_normal(2), requires_grad=True)
h = x @ W + b
h.retain_grad()
a = F.tanh(h)
(a * a).mean().backward()
A = a.numpy()
grad_h = 2 * A / A.size * (1 - A**2)
np.testing.assert_allclose(tn.backend.to_numpy(h.grad), grad_h, rtol=1e-12)
print("3. h.grad equals the hand-derived grad_h")

# Exercise 4: gradcheck with float32 inputs still passes, because gradcheck's _prepare makes
# float64 copies of every floating input before differencing. In float32 the central
# difference would carry a rounding error of about u |s| / eps = 6e-8 / 1e-6 = 6e-2 relative:
# the check would fail, or would need a tolerance too loose to catch real bugs.
inputs = [tn.Tensor(v.numpy().astype("float32"), requires_grad=True) for v in (x, W, b)]
assert inputs[0].dtype == np.float32
assert tn.gradcheck(lambda x, W, b: (F.tanh(x @ W + b) ** 2).mean(), *inputs)
print("4. gradcheck passes on float32 inputs: it converts them to float64")

# Exercise 5: a forward difference has truncation error (eps / 2) |s''| and rounding error
# about u |s| / eps, so its best eps is near sqrt(u) = 1.5e-8 in float64, with a best error of
# order sqrt(u) = 1e-8, far worse than the central difference's u^(2/3) = 2e-11.
W.zero_grad()
(F.tanh(x @ W + b) ** 2).mean().backward()
exact, w00 = float(W.grad[0, 0]), float(W.data[0, 0])


def loss_at(value):
    weights = W.numpy()
    weights[0, 0] = value
    with tn.no_grad():
        return float((F.tanh(x @ tn.Tensor(weights) + b) ** 2).mean().item())


epsilons = np.logspace(-13, -1, 49)
forward = np.array([abs((loss_at(w00 + e) - loss_at(w00)) / e - exact) for e in epsilons])
central = np.array([abs((loss_at(w00 + e) - loss_at(w00 - e)) / (2 * e) - exact) for e in epsilons])
best = epsilons[np.argmin(forward)]
print(f"5. forward difference: best error {forward.min():.1e} at eps = {best:.0e}")
print(f"   central difference: best error {central.min():.1e}")
assert 1e-10 <= best <= 1e-6
assert forward.min() > 10 * central.min()
