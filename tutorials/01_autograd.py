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
# # Tutorial 1: Autograd from scratch
#
# Training a network means computing the gradient of a scalar loss with respect to every
# parameter. *Reverse-mode automatic differentiation* does this in two passes:
#
# 1. **forward**: compute the loss, and on the way record every operation together with a small
#    function that knows that operation's local derivative;
# 2. **backward**: start from d loss / d loss = 1 and walk the record backwards, applying the
#    chain rule at each operation: multiply the gradient arriving at an operation's output by
#    the operation's local derivative to get the gradient of each of its inputs.
#
# The cost of the backward pass is a small constant times the cost of the forward pass, however
# many parameters there are. That is why every deep-learning framework works this way.
#
# In this tutorial you will
#
# - build a small computation graph with `tinynormact.Tensor` and look inside it;
# - derive its gradients by hand, and check that the engine gets the same numbers;
# - see why broadcasting in the forward pass becomes a *sum* in the backward pass;
# - learn how a gradient check works, why it is run in float64, and watch it catch a bug.
#
# The engine lives in `tinynormact/engine/autograd.py` (the Tensor, the graph and `backward`: a
# topological order of the graph, then one call of each node's backward closure, with the other
# concerns in small named helpers below it) and `tinynormact/engine/ops.py` (one forward and one
# backward closure per operation; at its end, the operators `+`, `*`, `@`, ... are attached to
# Tensor, so `autograd` never imports `ops`). Both are short enough to read next to this
# tutorial: from `loss.backward()` to the closure of `mul` is a few dozen lines.

# %%
import numpy as np
from _common import plt, show

import tinynormact as tn
from tinynormact import functional as F
from tinynormact import ops

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A graph
#
# Our example is one layer of a network followed by a loss:
#
# $$h = x W + b, \qquad a = \tanh(h), \qquad L = \frac{1}{N} \sum_{i,j} a_{ij}^2 ,$$
#
# with a batch $x$ of 4 examples with 3 features, weights $W$ of shape (3, 2), a bias $b$ of
# shape (2,) and $N = 4 \cdot 2 = 8$ elements in $a$. Tensors that we want gradients for are
# created with `requires_grad=True`. We use float64 throughout this tutorial so that numerical
# comparisons can be tight.

# %%
x = tn.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
W = tn.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
b = tn.Tensor(rng.standard_normal(2), requires_grad=True)

h = x @ W + b
a = F.tanh(h)
loss = (a * a).mean()
print("loss =", loss.item(), "  dtype:", loss.dtype)

# %% [markdown]
# Every tensor produced by an operation has a *node* in the graph (`graph_node()`), which
# remembers the operation's name (`op`), the shape of its result and the nodes of its inputs (its
# *parents*). The graph is made of these small nodes rather than of the tensors themselves, so
# it keeps alive only what the backward functions need, not every intermediate array. The
# printout below starts at the loss and walks towards the inputs; the leaves are the tensors we
# created.

# %%
leaf_names = {id(x.graph_node()): "x", id(W.graph_node()): "W", id(b.graph_node()): "b"}


def print_graph(node, depth=0, seen=None):
    """Print ``node`` and, indented below it, the nodes it was computed from (each node once)."""
    seen = set() if seen is None else seen
    label = leaf_names.get(id(node), node.op)
    if id(node) in seen:
        print("    " * depth + f"{label}  (the same node as above)")
        return
    seen.add(id(node))
    print("    " * depth + f"{label}  shape={node.shape}")
    for parent in node.parents:
        print_graph(parent, depth + 1, seen)


print_graph(loss.graph_node())

# %% [markdown]
# Read it bottom-up and it is the forward computation: `matmul(x, W)`, `add` of `b`, the
# activation `tanh`, `mul` of `a` with itself (both parents are the same tensor), and `mean`.
# Note that `a` appears twice below `mul`: in the backward pass it will receive a gradient along
# both paths, and the engine adds them.

# %% [markdown]
# ## 2. Backward by hand
#
# Apply the chain rule from the loss down, one operation at a time. Write $\bar{v}$ for
# $\partial L / \partial v$, a tensor with the shape of $v$:
#
# - mean of squares: $\bar{a} = 2a / N$ (the factor 2 is the sum of the two paths into `mul`);
# - tanh, elementwise: $\bar{h} = \bar{a} \odot (1 - a^2)$, because $\tanh' = 1 - \tanh^2$;
# - $h = xW + b$ is linear, so $\bar{W} = x^\top \bar{h}$ and $\bar{x} = \bar{h} W^\top$
#   (check the shapes: (3, 4) @ (4, 2) and (4, 2) @ (2, 3));
# - the bias was *broadcast*: the same $b$ was added to all 4 rows, so each row contributes to
#   its gradient and $\bar{b} = \sum_{\text{rows}} \bar{h}$ (section 3 explains this rule).
#
# We compute these with plain NumPy on host copies of the arrays inside the tensors (`.numpy()`;
# `.data` is the array itself, which lives on the tensor's device, a GPU's memory for CuPy).

# %%
A = a.numpy()
N = A.size
grad_a = 2 * A / N
grad_h = grad_a * (1 - A**2)
by_hand = {
    "x": grad_h @ W.numpy().T,
    "W": x.numpy().T @ grad_h,
    "b": grad_h.sum(axis=0),
}

# %% [markdown]
# Now let the engine do it. `loss.backward()` fills `.grad` of every leaf that requires a
# gradient. The two must agree to rounding error (about 1e-16 relative in float64); we assert
# 1e-12.

# %%
loss.backward()
by_engine = {name: tn.backend.to_numpy(t.grad) for name, t in {"x": x, "W": W, "b": b}.items()}
for name in by_hand:
    difference = np.max(np.abs(by_hand[name] - by_engine[name]))
    print(f"d loss / d {name}: largest difference hand vs engine = {difference:.1e}")
    np.testing.assert_allclose(by_engine[name], by_hand[name], rtol=1e-12, atol=1e-15)

# %% [markdown]
# ### Two rules worth knowing
#
# **Gradients accumulate.** `backward()` *adds* into `.grad`. This is what you want when a
# parameter is used in several places, and it is why training loops call `zero_grad()` before
# every step. **The graph is freed by backward**, to release memory; a second `backward()`
# through the same graph raises an error that says what to do. Below we rebuild the graph,
# call backward twice with `retain_graph=True` on the first call, and watch `.grad` double.

# %%
W.zero_grad()
loss = (F.tanh(x @ W + b) ** 2).mean()
loss.backward(retain_graph=True)
once = tn.backend.to_numpy(W.grad)
loss.backward()
np.testing.assert_allclose(tn.backend.to_numpy(W.grad), 2 * once)
print("after two backward() calls, W.grad is twice the single gradient")

try:
    loss.backward()
except RuntimeError as error:
    print("a third backward() raises:", error)

# %% [markdown]
# **Hooks** let you look at a gradient as backward passes through a tensor, without keeping
# it: `h.register_hook(fn)` calls `fn(grad)` with the full gradient of $h$ (the same names and
# signature as PyTorch). It returns a handle; `handle.remove()` unregisters the hook. Modules
# have the other two hooks of the same API (`register_forward_hook`,
# `register_full_backward_hook`), which tutorial 4 uses, and on which the variance tracker of
# tutorial 6 is built. Here the hook sees $\bar{h}$, which we computed by hand above.

# %%
h = x @ W + b
seen = []
handle = h.register_hook(lambda grad: seen.append(grad.copy()))
(F.tanh(h) ** 2).mean().backward()
handle.remove()
np.testing.assert_allclose(tn.backend.to_numpy(seen[0]), grad_h, rtol=1e-12)
print("the hook saw d loss / d h, equal to the hand-derived one")

# %% [markdown]
# ## 3. Broadcasting becomes a sum
#
# NumPy broadcasting lets `x @ W + b` add a (2,) vector to a (4, 2) matrix: conceptually, $b$ is
# copied into 4 rows. Each copy influences the loss, so by the chain rule the gradient of $b$ is
# the sum of the gradients of its copies. The general rule, implemented once in
# `ops.unbroadcast`: **sum the output gradient over every axis along which the input was
# broadcast**, i.e. over the leading axes the input did not have, and over the axes where it had
# size 1 and the output did not, keeping those axes.
#
# A column vector $c$ of shape (4, 1) times a (4, 3) matrix is broadcast along axis 1, so its
# gradient is the row sum of (output gradient times the other factor), with shape (4, 1).

# %%
c = tn.Tensor(rng.standard_normal((4, 1)), requires_grad=True)
M = tn.Tensor(rng.standard_normal((4, 3)))  # a constant: no gradient needed
u = rng.standard_normal((4, 3))  # the gradient arriving at the output
(c * M).backward(u)

expected = (u * M.numpy()).sum(axis=1, keepdims=True)
print("c.grad shape:", c.grad.shape)
np.testing.assert_allclose(tn.backend.to_numpy(c.grad), expected, rtol=1e-12)
np.testing.assert_allclose(ops.unbroadcast(u * M.numpy(), (4, 1)), expected, rtol=1e-12)

# %% [markdown]
# Here we called `backward(u)` on a non-scalar output: for a tensor that is not a single
# number, you pass the gradient of the final objective with respect to it. This is the
# *vector-Jacobian product* that every operation's backward computes.

# %% [markdown]
# ## 4. Gradient checking
#
# How do we know an operation's backward is right? Compare it with a *finite difference*. For a
# scalar function $s$ of one number $\theta$,
#
# $$\frac{s(\theta + \epsilon) - s(\theta - \epsilon)}{2\epsilon} = s'(\theta)
#   + \frac{\epsilon^2}{6} s'''(\theta) + \dots$$
#
# so this *central* difference has a truncation error proportional to $\epsilon^2$. But
# $s(\theta \pm \epsilon)$ are computed in floating point, each with a rounding error of about
# $u |s|$, where $u$ is the unit roundoff (1.1e-16 in float64, 6e-8 in float32). Dividing by
# $2\epsilon$ turns that into an error of about $u |s| / \epsilon$. The total error
#
# $$\text{error}(\epsilon) \approx \frac{\epsilon^2}{6}|s'''| + \frac{u |s|}{\epsilon}$$
#
# is smallest near $\epsilon \approx u^{1/3}$: about 5e-6 in float64, where the error is of
# order $u^{2/3} \approx 2\times 10^{-11}$ (times the size of $s$ and its derivatives); in float32
# $u^{2/3}$ is about $1.5 \times 10^{-5}$, nearly a million times worse. That is why
# `tn.gradcheck` runs in float64 with $\epsilon = 10^{-6}$. Let us measure the curve for the
# derivative of our loss with respect to one weight, $W_{00}$, against the engine's gradient.


# %%
def loss_at(w00, dtype):
    """The loss with W[0, 0] replaced by w00, computed in ``dtype`` without recording a graph."""
    weights = W.numpy()
    weights[0, 0] = w00
    with tn.no_grad():
        xt, wt, bt = (tn.Tensor(v, dtype=dtype) for v in (x.numpy(), weights, b.numpy()))
        return float((F.tanh(xt @ wt + bt) ** 2).mean().item())


W.zero_grad()
(F.tanh(x @ W + b) ** 2).mean().backward()
exact = float(W.grad[0, 0])
w00 = float(W.data[0, 0])

epsilons = np.logspace(-13, -1, 49)
errors = {}
for dtype in ("float64", "float32"):
    central = [(loss_at(w00 + e, dtype) - loss_at(w00 - e, dtype)) / (2 * e) for e in epsilons]
    errors[dtype] = np.abs(np.array(central) - exact)
best = epsilons[np.argmin(errors["float64"])]
print(f"float64: smallest error {errors['float64'].min():.1e} at eps = {best:.0e}")
print(f"float32: smallest error {errors['float32'].min():.1e}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for dtype, marker in (("float64", "o"), ("float32", "s")):
    ax.loglog(epsilons, np.maximum(errors[dtype], 1e-17), marker, ms=3, label=dtype, linestyle="-")
ax.axvline(1e-6, color="gray", linestyle=":", label="gradcheck's eps = 1e-6")
ax.set_xlabel("finite-difference step eps")
ax.set_ylabel("|central difference - backward|")
ax.set_title("Central differences: rounding error (left) vs truncation error (right)")
ax.legend()
show(fig, "01_finite_difference_error.png")

# %% [markdown]
# What to look for: on the right both curves fall like $\epsilon^2$ as the step shrinks
# (truncation); further left they rise like $1/\epsilon$ (rounding). The float64 valley is deep
# and sits near $10^{-5}$; the float32 valley is shallow and sits near $10^{-2}$. Its best
# error, about $6 \times 10^{-7}$, looks small only because this derivative is small
# ($|s'| \approx 0.006$): relative to it, float32 gets about 1e-4, float64 about 1e-10.
#
# The flat float32 plateau on the left is rounding at its most extreme: the two float32 losses
# $s(W_{00} \pm \epsilon)$ come out *equal*, the difference is zero, and the error is the whole
# gradient. It has two causes. Below half the float32 spacing of $W_{00}$ (about $1.2 \times
# 10^{-7}$ here) the float32 number nearest to $W_{00} \pm \epsilon$ is $W_{00}$ itself. Above
# that the weight does change, but the loss changes by only about $\epsilon |s'|$, and while
# that is below the float32 rounding of the loss itself, $u|s| \approx 3.4 \times 10^{-8}$,
# the rounded losses stay equal: up to $\epsilon \approx u|s|/|s'| \approx 5 \times 10^{-6}$.
# The plateau indeed runs to about $2 \times 10^{-6}$, more than ten times past the first cause.
#
# We assert the shape of the float64 curve: its best error is below 1e-9 and both ends are at
# least a hundred times worse; that float32 cannot get anywhere near it (its best error between
# 4e-7 and 8e-7); and the plateau: the float32 losses are equal for every step up to 1e-6,
# including steps that do change the float32 weight, and differ for every step above
# $10\,u|s|/|s'|$; and the numbers quoted in this section, each to its stated precision.

# %%
assert errors["float64"].min() < 1e-9
assert errors["float64"][0] > 100 * errors["float64"].min()  # eps = 1e-13: rounding dominates
assert errors["float64"][-1] > 100 * errors["float64"].min()  # eps = 1e-1: truncation dominates
assert errors["float32"].min() > 100 * errors["float64"].min()
assert 4e-7 < errors["float32"].min() < 8e-7

s_value = loss_at(w00, "float64")
plateau_edge = 2.0**-24 * abs(s_value) / abs(exact)  # u |s| / |s'|, float32's u = 2^-24
float32_equal = np.array([loss_at(w00 + e, "float32") == loss_at(w00 - e, "float32") for e in epsilons])
weight_changes = np.float32(w00 + epsilons) != np.float32(w00)
print(f"float32 losses equal up to eps = {epsilons[float32_equal].max():.1e}; u|s|/|s'| = {plateau_edge:.1e}")
assert float32_equal[epsilons <= 1e-6].all()  # the plateau
assert (float32_equal & weight_changes).any()  # ... also where the float32 weight does change
assert epsilons[float32_equal].max() > 10 * abs(np.spacing(np.float32(w00))) / 2  # ten times past it
assert not float32_equal[epsilons > 10 * plateau_edge].any()
assert 1.5e-6 < epsilons[float32_equal].max() < 2.5e-6 and 4.5e-6 < plateau_edge < 6e-6  # "2e-6", "5e-6"
assert 1e-6 < epsilons[np.argmin(errors["float64"])] < 1e-4 < 1e-3 < epsilons[np.argmin(errors["float32"])]
relative = {dtype: errors[dtype].min() / abs(exact) for dtype in errors}  # "1e-4" and "1e-10"
assert 3e-5 < relative["float32"] < 3e-4 and 3e-11 < relative["float64"] < 3e-10
np.testing.assert_allclose(errors["float32"][float32_equal], abs(exact))  # the error is the whole gradient

# %% [markdown]
# `tn.gradcheck(fn, *inputs)` does this for every element of every input (or, for large inputs,
# along a few random directions), in float64. To check all outputs at once it contracts the
# output with a random vector $u$, so one backward pass gives $u^\top J$, which is compared with
# finite differences of the scalar $\langle u, f(\text{inputs}) \rangle$. It returns True or
# raises `GradcheckError` naming the input and the index that disagree.

# %%
assert tn.gradcheck(lambda x, W, b: (F.tanh(x @ W + b) ** 2).mean(), x, W, b)
print("gradcheck passed for the layer")

# %% [markdown]
# ### A check that can fail
#
# A check that always passes proves nothing, so let us write an operation with a bug. New
# operations are made with `Tensor.from_op(output, parents, backward, name)`, where `backward`
# maps the output gradient $g$ to one gradient per parent. For $y = x^3$ the local derivative is
# $3x^2$; we "forget" the 3 and write 2.


# %%
def cube(t, factor):
    """t ** 3 with backward g * factor * t ** 2 (factor 3 is right)."""
    return tn.Tensor.from_op(t.data**3, (t,), lambda g: (g * factor * t.data**2,), "cube")


z = tn.Tensor(rng.standard_normal(5), requires_grad=True)
try:
    tn.gradcheck(lambda t: cube(t, factor=2.0), z)
    raise AssertionError("gradcheck should have caught the wrong derivative")
except tn.GradcheckError as error:
    print("caught:", error)

assert tn.gradcheck(lambda t: cube(t, factor=3.0), z)
print("with the correct derivative 3 x^2, gradcheck passes")

# %% [markdown]
# ## Summary
#
# - The forward pass records a graph of operations; `backward()` walks it in reverse and applies
#   the chain rule, adding the gradients that reach a tensor along different paths.
# - Our hand-derived gradients equal the engine's to rounding error.
# - Broadcasting in the forward pass becomes a sum over the broadcast axes in the backward pass.
# - Central differences have an error that is smallest near $\epsilon = u^{1/3}$; in float64
#   they can check a backward to about 1e-10, which is what `tn.gradcheck` does.
#
# Next, tutorial 2 uses these gradients to train a network: a hand-written SGD step on this
# engine, then the library's optimizers, loss and data loader.
#
# ## Exercises
#
# 1. Add an operation `sin` with `Tensor.from_op` and check it with `tn.gradcheck`. Then check
#    `sin(x) * x` at x = 0, where the product rule matters.
# 2. Compute `y = x * x + x` for a tensor `x` and predict `x.grad` after `y.sum().backward()`.
#    How many paths lead from `y` to `x`? Verify your prediction.
# 3. Call `h.retain_grad()` on the intermediate `h = x @ W + b` before backward, and compare
#    `h.grad` with `grad_h` from section 2.
# 4. Run `tn.gradcheck` on the layer with float32 inputs. It still passes: why? (Hint: read
#    `_prepare` in `tinynormact/engine/gradcheck.py`.) What would go wrong if it did not convert?
# 5. Using the error model above, predict the best $\epsilon$ and the best error for a
#    *forward* difference $(s(\theta + \epsilon) - s(\theta)) / \epsilon$, whose truncation error
#    is proportional to $\epsilon$. Measure it and add it to the figure.
