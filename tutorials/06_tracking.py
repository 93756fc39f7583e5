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
# # Tutorial 6: Tracking gradient variance during training, and reading the plots
#
# Tutorials 4 and 5 predicted, at initialization, how the second moments of signals and
# gradients change from layer to layer. Training changes the weights, so the predictions stop
# applying after a few steps; from then on we can only *measure*. `tinynormact.tracking`
# measures, per layer and per step, everything the theory talks about:
#
# - forward: $q_l = E[h_l^2]$ (`preact_sq`, [E8](../docs/THEORY.md#e8)), $E[\phi(h_l)^2]$
#   (`act_sq`), and the batch gains $\rho_b = E[\phi(h)^2]/E[h^2]$ (`rho`,
#   [E5](../docs/THEORY.md#e5)) and $\rho'_b = E[\phi'(h)^2]$ (`rho_prime`,
#   [E6](../docs/THEORY.md#e6)), with the $\lambda$ a normalized activation applied (`lambda`);
# - backward: $E[\delta_l^2]$ (`delta_sq`, [E9](../docs/THEORY.md#e9)) and the weight gradient's
#   second moment $E[g_W^2]$ (`weight_grad_sq`, [E10](../docs/THEORY.md#e10)) together with its
#   variance across the examples of the batch (`weight_grad_var`).
#
# It works through the public hooks of tutorial 4 and nothing else: a forward hook
# (`register_forward_hook`) on every `Linear` and on the activation after it, and tensor hooks
# (`Tensor.register_hook`) on their outputs and on the weights. So it tracks any model built
# from `Linear` and activation layers, one you write yourself included. A model without a
# tracker carries no hooks and pays nothing.
#
# **Statistics convention** (docs/THEORY.md): every number is a second moment averaged over
# units and examples, and backward numbers are *per example*. The training loss is the batch
# mean, so the gradient that reaches example $b$'s activations is $\delta_b / B$; the tracker
# multiplies by $B$ to undo that. Its numbers therefore compare directly with
# `theory.mlp_profile`, which we check first. Then we train three deep sigmoid networks and read
# the plots.

# %%
import math

import numpy as np
from _common import OUT, fit, show, size

import tinynormact as tn
from tinynormact import losses, nn, optim, theory, tracking
from tinynormact.data import DataLoader, load_dataset
from tinynormact.tracking import plots

# %% [markdown]
# ## 1. At initialization, the tracker agrees with the theory
#
# `tracking.measure_propagation(model, x)` runs one tracked forward and backward pass and
# returns the per-layer profile. It seeds the backward pass with independent standard normal
# output gradients, so the per-example gradient at the output has second moment 1, as
# `mlp_profile` assumes. `tracking.theory_record(profile)` renames the theory's arrays to the
# tracker's statistic names.
#
# We measure a tanh MLP and its statically normalized version (`"ntanh"`, balanced rule) with
# standard normal inputs, averaging $R$ independently drawn networks, and accept with the
# tolerance derived in tutorial 4: 5 standard errors over the networks plus the finite-width
# allowance $2L/n$ for $L$ nonlinear layers of width $n$.

# %%
WIDTH, DEPTH, BATCH, NETWORKS = size((512, 12, 256, 6), (256, 6, 128, 4))
widths = [WIDTH] * (DEPTH + 1)
STATS = ("preact_sq", "delta_sq", "weight_grad_sq")
activation_of = {"tanh": "tanh", "ntanh": theory.normalized("tanh")}  # what mlp_profile should use

measured, predicted = {}, {}
for label, act in activation_of.items():
    runs = []
    for seed in range(NETWORKS):
        model = nn.MLP(widths, label, dtype="float64", rng=seed)
        x = np.random.default_rng(100 + seed).standard_normal((BATCH, WIDTH))
        profile = tracking.measure_propagation(model, tn.Tensor(x), rng=seed)
        runs.append([profile[s] for s in STATS])
    measured[label] = np.array(runs)  # (networks, statistic, layer)
    theory_profile = tracking.theory_record(theory.mlp_profile(act, widths))
    predicted[label] = np.array([theory_profile[s] for s in STATS])

allowance = 2 * (DEPTH - 1) / WIDTH
for label in activation_of:
    mean = measured[label].mean(axis=0)
    standard_error = measured[label].std(axis=0, ddof=1) / math.sqrt(NETWORKS)
    tolerance = 5 * standard_error + allowance * np.abs(predicted[label])
    print(f"{label:6s} measured / theory, E[delta^2] per layer:", np.round(mean[1] / predicted[label][1], 3))
    assert np.all(np.abs(mean - predicted[label]) <= tolerance), f"{label}: tracker disagrees with E8-E10"
    assert not np.all(np.abs(mean - 1.1 * predicted[label]) <= tolerance), "the check cannot fail"

# %% [markdown]
# `plots.plot_signal_propagation` draws such profiles: markers for measurements, lines for the
# theory, one color per network, forward on the left and backward on the right, both on log
# scales.

# %%
fig = plots.plot_signal_propagation(
    {label: {s: runs.mean(axis=0)[k] for k, s in enumerate(STATS)} for label, runs in measured.items()},
    {label: {s: values[k] for k, s in enumerate(STATS)} for label, values in predicted.items()},
    title=f"tanh vs ntanh at initialization: width {WIDTH}, mean of {NETWORKS} networks",
)
show(fig, "06_signal_propagation.png")

# %% [markdown]
# The command line does the same measurement:
# `tinynormact propagate --activations tanh ntanh --depth 12 --width 512 --out propagation.png`.
#
# Reading it: vanilla tanh's $q_l$ decays towards 0 with LeCun initialization (its fixed point
# is $q^* = 0$ for $\sigma_w^2 = 1$, tutorial 4), and its gradient shrinks towards the input.
# The normalized tanh keeps $q_l$ near 1, and its gradient grows mildly towards the input (the
# $\kappa > 1$ of tanh, which normalization cannot remove, tutorial 5).

# %% [markdown]
# ## 2. Tracking a training run
#
# Now a real task: MNIST-1D (Greydanus 2020), a small but non-trivial 10-class benchmark of 1-D
# signals with 40 features that trains in seconds on a CPU (generated locally by the `mnist1d`
# package, installed with tinynormact). We train three MLPs with 10 hidden sigmoid layers:
# vanilla sigmoid, statically normalized sigmoid, and adaptively normalized sigmoid (the
# library's default reading of E16, the centred output estimate, tutorial 5), with Adam; and a fourth
# with the first, plain reading of the adaptive form (`estimate="batch"`), which section 3 and
# tutorial 7 come back to.
#
# Wrapping the training loop (`fit`, tutorial 2) in `with tracking.VarianceTracker(model,
# every=k):` is all it takes. A step starts with every training forward (evaluation under
# `tn.no_grad()` is not counted), and
# `every=k` records steps 0, k, 2k, ...: the other steps pay one early return per hook. (From
# the command line, `tinynormact train ... --track-every 5 --out runs/mine` does the same and
# keeps the record in the run's checkpoint.)

# %%
EPOCHS = size(15, 3)
EVERY = 5
splits = load_dataset("mnist1d")  # 5000 examples: 4000 to train, 1000 to test
print("MNIST-1D:", splits.train.x.shape, "train,", splits.test.x.shape, "test")

variants = {
    "sigmoid": ("sigmoid", {}),
    "nsigmoid static": ("nsigmoid", {}),
    "nsigmoid adaptive": ("nsigmoid", {"mode": "adaptive"}),
    "nsigmoid adaptive, batch": ("nsigmoid", {"mode": "adaptive", "estimate": "batch", "center": False}),
}


def train(activation, options, optimizer=lambda parameters: optim.Adam(parameters, lr=1e-3)):
    """Train a 10-hidden-layer MLP with a tracker; return the tracker, epoch losses and model."""
    model = nn.MLP([40] + [64] * 10 + [10], activation, options, rng=0)
    with tracking.VarianceTracker(model, every=EVERY) as tracker:
        epoch_losses = fit(model, optimizer(model.parameters()), splits.train, EPOCHS)
    return tracker, epoch_losses, model


results = {name: train(*spec) for name, spec in variants.items()}
for name, (_, epoch_losses, _) in results.items():
    print(f"{name:24s} train loss per epoch:", np.round(epoch_losses, 3))

# %% [markdown]
# `tracker.to_dict()` holds `"step"` (the recorded step numbers) (try changing `EVERY` to 1: five
# times the records, and a finer heatmap) and one array of shape
# (steps, layers) per statistic; `to_json` and `to_csv` save it (atomically) and
# `tracking.read_json` reads it back. Layer $l$ is the $l$-th `Linear` with the activation
# after it; the last `Linear` has none, so its activation statistics are NaN. The tracker names
# each layer by the position of its `Linear` in the `Sequential` (`"0"`, `"2"`, ...: the
# activations sit in between); the plots number them 1 to 11.

# %%
tracker = results["sigmoid"][0]
record = tracker.to_dict()
names = tracker.layer_names
print(f"layers 1 to {len(names)}: the Linear modules at positions {', '.join(names)} of the MLP")
print("recorded steps:", record["step"][:6], "...", record["step"][-1])
print("weight_grad_sq has shape (steps, layers) =", record["weight_grad_sq"].shape)

tracker.to_json(OUT / "06_tracker_sigmoid.json")
saved = tracking.read_json(OUT / "06_tracker_sigmoid.json")
np.testing.assert_array_equal(saved["weight_grad_sq"], record["weight_grad_sq"])  # NaNs compare equal
print("saved to", OUT / "06_tracker_sigmoid.json", "and read back unchanged")

# %% [markdown]
# ## 3. Reading the gradient heatmap
#
# `plots.plot_gradient_heatmap(record, statistic)` draws one statistic as a picture: training
# steps along x, layers along y (layer 1, next to the input, at the bottom), and the value as a
# color on a **log** scale. Two directions to read:
#
# - **vertically** (one column = one step): how different the layers are. A smooth band of
#   one color means every layer gets gradients of the same size; a ramp from dark at the bottom
#   to bright at the top is a vanishing gradient: the first layers hardly learn;
# - **horizontally** (one row = one layer): how a layer's gradient changes as training
#   proceeds.

# %%
for name in ("sigmoid", "nsigmoid static"):
    fig = plots.plot_gradient_heatmap(
        results[name][0].to_dict(), "weight_grad_sq", title=f"{name}: E[(dloss/dW)^2] per example"
    )
    show(fig, f"06_heatmap_{name.replace(' ', '_')}.png")

# %% [markdown]
# The vanilla sigmoid network's first layer receives weight gradients about eleven orders of
# magnitude smaller than its last hidden layer. By [E11](../docs/THEORY.md#e11) the ratio
# between neighbouring layers is $\kappa(q_l)$ at the $q_l$ each layer sees, and that is not
# $\kappa(1) = 0.15$ nine times ($0.15^9 \approx 4.5 \times 10^{-8}$, a thousand times too
# large): only the first layer sees $q = 1$; after it $q_l$ falls to sigmoid's fixed point $q^*
# \approx 0.265$ (tutorial 5, section 4), where $\kappa(q^*) \approx 0.056$. The product of the
# nine $\kappa(q_l)$ is the $1.6 \times 10^{-11}$ that `mlp_profile` predicts, and the network
# shows $1.3 \times 10^{-11}$.
#
# For the first epochs its loss sits at $\ln 10 \approx 2.30$, the loss of guessing uniformly
# among 10 classes. Adam rescales each parameter's step by the size of its own gradient, so in
# the full 15-epoch run it eventually moves even the first layers and the network starts to
# learn, late (its epoch loss first falls below 2.25 in epoch 8). Plain SGD does not rescale:
# trained the same way with `optim.SGD(lr=0.1)`, the network stays at $\ln 10$ for every epoch
# (we train it below). With
# the normalized sigmoid the spread at initialization is about $3 \times 10^{-5}$: still large
# (normalization cannot change $\kappa$), but small enough for Adam to train every layer from
# the start; and during training the spread shrinks by more than a factor of 10.
#
# The adaptive network with the default reading trains like the static one. With the plain
# reading (`estimate="batch"`) the first epoch is different: its mean loss, about 4.5, is far
# *above* $\ln 10$: in its first steps the batch $\lambda$ and the $q$ it measures feed on each
# other before training settles. [Tutorial 7](07_adaptive_form.py) follows this failure of the
# plain reading, layer by layer, to the point where whole runs collapse, and derives why the
# default reading does not feed on itself.
#
# We assert these statements: for the vanilla and the static network, the spread between the
# first and the last hidden layer at step 0 agrees with E11's prediction (the ratio of
# `mlp_profile`'s weight-gradient second moments, equal to the product of the $\kappa(q_l)$)
# within a factor of 2, which covers the finite-width allowance $2L/n \approx 28\%$ on each of
# the two numbers of one network of width 64; that the vanilla network is still near $\ln 10$
# after 3 epochs while the static and the default adaptive network are at least 0.1 lower;
# that they also end at least 0.1 lower; the plain reading's first epoch above $\ln 10 + 1$;
# that plain SGD leaves the vanilla network at $\ln 10$; and, in the full run, that Adam's
# vanilla network does learn in the end, in epoch 8. (The adaptive networks are not covered by
# E11's static check: already at step 0 they apply each layer's batch $\lambda_b$, not the
# static $\lambda$.)

# %%
widths_trained = [40] + [64] * 10 + [10]
for name, act in (("sigmoid", "sigmoid"), ("nsigmoid static", theory.normalized("sigmoid"))):
    w = results[name][0].to_dict()["weight_grad_sq"]
    spread = w[0, 0] / w[0, -2]  # step 0: first layer / last hidden layer
    profile = theory.mlp_profile(act, widths_trained)
    expected = profile.weight_grad_sq[0] / profile.weight_grad_sq[-2]
    print(f"{name:24s} spread at step 0: measured {spread:.2e}, E11 predicts {expected:.2e}")
    assert 0.5 < spread / expected < 2.0
    np.testing.assert_allclose(expected, np.prod(theory.kappa(act, profile.q[:-2])), rtol=1e-9)  # E11
    if name == "sigmoid":
        assert spread < theory.kappa("sigmoid", 1.0) ** 9 / 1000  # not kappa(1) nine times
        np.testing.assert_allclose(theory.kappa("sigmoid", profile.q[-2]), 0.0557, rtol=2e-3)  # at q*
        assert 1.5e-11 < expected < 1.7e-11 and 1.25e-11 < spread < 1.45e-11  # 1.6e-11 and 1.3e-11
    else:
        assert 2.5e-5 < spread < 3.5e-5  # about 3e-5

static_w = results["nsigmoid static"][0].to_dict()["weight_grad_sq"]
assert static_w[-1, 0] / static_w[-1, -2] > 10 * static_w[0, 0] / static_w[0, -2]  # the spread shrinks

history = {name: run_losses for name, (_, run_losses, _) in results.items()}
assert history["sigmoid"][2] > 2.2  # after 3 epochs: still near ln 10
for name in ("nsigmoid static", "nsigmoid adaptive"):
    assert history[name][2] < history["sigmoid"][2] - 0.1
    assert history[name][-1] < history["sigmoid"][-1] - 0.1
assert history["nsigmoid adaptive, batch"][0] > math.log(10) + 1  # the plain reading's bad first epoch
if EPOCHS >= 15:
    assert history["sigmoid"][-1] < 2.1  # Adam moves the vanilla network in the end
    assert np.flatnonzero(np.array(history["sigmoid"]) < 2.25)[0] + 1 == 8  # ... from epoch 8


_, sgd_losses, _ = train("sigmoid", {}, optimizer=lambda parameters: optim.SGD(parameters, lr=0.1))
print("vanilla sigmoid, plain SGD, train loss per epoch:", np.round(sgd_losses, 3))
assert all(abs(value - math.log(10)) < 0.03 for value in sgd_losses[1:])  # stuck at ln 10

# %% [markdown]
# ## 4. Reading the gains over training
#
# `plots.plot_gains_over_training(record)` draws the measured gains $\rho$ (left) and $\rho'$
# (right) of every layer against the training step, one line per layer colored by depth, with
# a dashed line at 1. For a normalized activation these are the gains of $\hat\phi$, i.e. with
# $\lambda$ included.
#
# For the **adaptive** versions there are exact statements. With the default reading
# (`estimate="output"`, E25, centred) each layer removes its batch mean and scales its output so
# that its variance is the centred static form's at $q = 1$, $\lambda_b^2\,\mathrm{var}(\phi(h))
# = \lambda_c^2 v(1)$; the output has mean 0, so that is also its second moment: the
# tracker's `act_sq` is that constant *at every step in every layer*, however much the weights
# change, and its forward gain $\hat\rho = $ `act_sq` / $q_l$ moves exactly inversely to the
# layer's $q_l$. With the plain reading (`estimate="batch"`) each layer computes $\lambda_b$
# from the very batch it normalizes, with the balanced rule $\lambda_b^2 = (1/\rho_b +
# 1/\rho'_b)/2$; the gains it then shows are $\lambda_b^2 \rho_b$ and $\lambda_b^2 \rho'_b$,
# so $\frac12 (1/\hat\rho + 1/\hat\rho') = 1$ holds at every step in every layer. The
# **static** version satisfies either only while the pre-activations keep the $q = 1$ that
# $\lambda$ was computed for. The plots and the assertions below show all three.
#
# What to look for in the static plot: layer 1 (the darkest line) sees inputs with $q \approx
# 1$ (MNIST-1D's features are standardized and the weights LeCun's) and sits near the balanced
# rule's gains there, $\hat\rho = 3.77$ and $\hat\rho' = 0.58$ (E14 at $q = 1$, tutorial 5);
# deeper layers see a larger $q$ and lower gains, and all of them move as the weights train.

# %%
for name in ("nsigmoid static", "nsigmoid adaptive"):
    title = f"{name}: measured gains per layer"
    fig = plots.plot_gains_over_training(results[name][0].to_dict(), title=title)
    show(fig, f"06_gains_{name.replace(' ', '_')}.png")

static_sigmoid = theory.normalized("sigmoid")  # balanced rule at q = 1
moments = theory.gaussian_moments(static_sigmoid, 1.0)
print(f"balanced nsigmoid at q = 1: rho_hat = {moments.m2:.3f}, rho_hat' = {moments.d2:.3f}")
np.testing.assert_allclose((moments.m2, moments.d2), (3.77, 0.577), rtol=2e-3)
step0 = results["nsigmoid static"][0].to_dict()
print(f"static layer 1 at step 0: q = {step0['preact_sq'][0, 0]:.3f}, rho = {step0['rho'][0, 0]:.3f}")
assert abs(step0["rho"][0, 0] / moments.m2 - 1) < 0.05  # near 3.77: its q is near 1


def hidden(record, statistic):
    """A statistic per step and hidden layer (the last Linear has no activation)."""
    return record[statistic][:, :-1]


def balance(record):
    """(1/rho + 1/rho') / 2 per step and hidden layer."""
    return 0.5 * (1 / hidden(record, "rho") + 1 / hidden(record, "rho_prime"))


records = {name: results[name][0].to_dict() for name in results}
# lambda_c^2 v(1): the output's second moment the default (centred) reading holds
held = theory.gaussian_moments(theory.normalized("sigmoid", center=True), 1.0).m2
for name in ("nsigmoid adaptive", "nsigmoid static"):
    act_sq = hidden(records[name], "act_sq")
    print(f"{name:17s} E[phi_hat(h)^2] from {act_sq.min():.3f} to {act_sq.max():.3f} (held: {held:.3f})")
batch_balance = balance(records["nsigmoid adaptive, batch"])
static_balance = balance(records["nsigmoid static"])
print(f"plain reading: (1/rho + 1/rho')/2 within {np.max(np.abs(batch_balance - 1)):.1e} of 1 at every step")
print(f"static:        (1/rho + 1/rho')/2 from {static_balance.min():.2f} to {static_balance.max():.2f}")
np.testing.assert_allclose(hidden(records["nsigmoid adaptive"], "act_sq"), held, rtol=1e-4)  # float32
np.testing.assert_allclose(batch_balance, 1.0, rtol=1e-4)
assert np.max(np.abs(hidden(records["nsigmoid static"], "act_sq") / held - 1)) > 0.1
assert np.max(np.abs(static_balance - 1)) > 0.1

# %% [markdown]
# ## 5. Gradient signal and gradient noise
#
# Two weight-gradient statistics are recorded: `weight_grad_sq`, the second moment of the
# *per-example* gradients $g_b$, and `weight_grad_var`, their variance across the examples of
# the batch. The gradient the optimizer uses is their mean, $\bar g = \frac1B \sum_b g_b$, and
# for every weight $\frac1B\sum_b g_b^2 = \mathrm{Var}_b(g) + \bar g^2$. So the difference of
# the two statistics is the mean square of the batch gradient, which we can read off `.grad`
# directly. The ratio $\mathrm{Var}/E[g^2]$ says how much of what each example contributes is
# noise that averaging over the batch cancels: close to 1 means each step's direction is mostly
# noise.

# %%
model = results["nsigmoid static"][2]
x, y = next(iter(DataLoader(splits.train, batch_size=128, seed=1)))
with tracking.VarianceTracker(model) as one_step:
    loss = losses.softmax_cross_entropy(model(x), y)
    model.zero_grad()
    loss.backward()
profile = one_step.profile()
linears = [layer for layer in model if isinstance(layer, nn.Linear)]
batch_grad_sq = np.array([np.mean(tn.backend.to_numpy(layer.weight.grad) ** 2) for layer in linears])
signal = profile["weight_grad_sq"] - profile["weight_grad_var"]
np.testing.assert_allclose(signal, batch_grad_sq, rtol=1e-3, atol=1e-6 * batch_grad_sq.max())
noise_fraction = profile["weight_grad_var"] / profile["weight_grad_sq"]
print("noise fraction Var / E[g^2] per layer:", np.round(noise_fraction, 3))
assert np.all(noise_fraction > 0.9)  # "close to 1" in every layer

# %% [markdown]
# After training, most of each example's gradient is noise in every layer: the fraction is
# close to 1, so the batch gradient is a small average of large, mostly cancelling
# contributions.
#
# ## Summary
#
# - `VarianceTracker(model, every=k)` records per-layer forward and backward second moments,
#   the measured gains and $\lambda$, per example, in the convention of `theory`.
# - At initialization its measurements agree with E8-E10 within a derived tolerance.
# - The gradient heatmap shows vanishing gradients as a vertical color ramp; the gains plot
#   shows how far each layer's $\rho$ and $\rho'$ are from 1 as training proceeds. Adaptive
#   normalization keeps its balance condition exactly at every step.
# - `weight_grad_sq - weight_grad_var` is the mean square of the batch gradient.
#
# ## Exercises
#
# 1. Track the same networks with `"tanh"` and `"ntanh"` instead of sigmoid. Does E11 still
#    predict the spread at step 0, and does normalization still help?
# 2. Use `every=1` and time an epoch with and without the tracker (`time.perf_counter`). Then
#    leave the `with` block (or call `tracker.detach()`) and check that no hook is left.
# 3. Train with SGD with momentum (`optim.SGD(..., lr=0.05, momentum=0.9)`) instead of Adam.
#    Which networks still train? Relate the answer to the heatmaps: SGD, unlike Adam, does not
#    rescale small gradients.
# 4. Read a saved record back with `tracking.read_json` and plot the noise fraction
#    `weight_grad_var / weight_grad_sq` of every layer over training.
