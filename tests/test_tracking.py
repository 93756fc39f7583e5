"""VarianceTracker: what it records, against brute force and hand-written formulas; steps and
thinning; attaching and detaching; export. (Monte Carlo checks against the theory are in
test_tracking_montecarlo.py.)"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import tinynormact as tn
from tests.helpers import host
from tinynormact import losses, nn, optim, theory, tracking
from tinynormact.infra import files
from tinynormact.tracking.tracker import STATISTICS, VarianceTracker

BATCH = 7


def small_mlp(activation: str = "tanh", **options) -> nn.MLP:
    return nn.MLP([6, 5, 4, 3], activation, options or None, dtype="float64", rng=3)


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, 6)), rng.standard_normal((BATCH, 3))


def per_example_brute_force(model: nn.MLP, x: np.ndarray, y: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    """One backward per example b of its own loss loss_b. Returns, keyed by (kind, layer),
    arrays (B, ...) of the per-example gradients: "weight", "bias", "delta" (d loss_b / d h)
    and "grad_act" (d loss_b / d phi(h))."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    acts = [m for m in model if isinstance(m, nn.Activation)]
    captured: dict[tuple[str, int], np.ndarray] = {}

    def capture(kind: str, i: int):
        return lambda module, grad_input, grad_output: captured.__setitem__((kind, i), host(grad_output[0]))

    handles = [m.register_full_backward_hook(capture("delta", i)) for i, m in enumerate(linears)]
    handles += [m.register_full_backward_hook(capture("grad_act", i)) for i, m in enumerate(acts)]
    rows = []
    for b in range(len(x)):
        model.zero_grad()
        losses.mse_loss(model(tn.Tensor(x[b : b + 1])), tn.Tensor(y[b : b + 1])).backward()
        rows.append(dict(captured))
        for i, m in enumerate(linears):
            rows[-1][("weight", i)], rows[-1][("bias", i)] = host(m.weight.grad), host(m.bias.grad)
    for handle in handles:
        handle.remove()
    model.zero_grad()
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def test_gradient_statistics_match_a_per_example_loop():
    """Per-example second moments and across-example variances, computed without loops by the
    tracker, against a loop that backpropagates each example's own loss."""
    model, (x, y) = small_mlp(), batch()
    brute = per_example_brute_force(model, x, y)
    with VarianceTracker(model) as tracker:
        losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y)).backward()  # the batch-mean loss
    got = tracker.profile()
    for l in range(3):
        g_w, g_b = brute["weight", l], brute["bias", l]
        np.testing.assert_allclose(got["weight_grad_sq"][l], np.mean(g_w**2), rtol=1e-10)
        np.testing.assert_allclose(got["weight_grad_var"][l], np.mean(g_w.var(axis=0)), rtol=1e-9)
        np.testing.assert_allclose(got["bias_grad_sq"][l], np.mean(g_b**2), rtol=1e-10)
        np.testing.assert_allclose(got["bias_grad_var"][l], np.mean(g_b.var(axis=0)), rtol=1e-9)
        np.testing.assert_allclose(got["delta_sq"][l], np.mean(brute["delta", l] ** 2), rtol=1e-10)
    for l in range(2):
        np.testing.assert_allclose(got["grad_act_sq"][l], np.mean(brute["grad_act", l] ** 2), rtol=1e-10)
        np.testing.assert_allclose(got["input_grad_sq"][l + 1], got["grad_act_sq"][l], rtol=1e-12)
    assert np.isnan(got["input_grad_sq"][0])  # the data does not require a gradient
    assert np.isnan(got["grad_act_sq"][2]) and np.isnan(got["rho"][2])  # the last Linear has no activation


def test_forward_statistics_and_gains_match_hand_computed_values():
    """preact_sq/var, act_sq, rho = mean(phi(h)^2)/mean(h^2) (E5) and rho' = mean(phi'(h)^2) (E6)
    of a static normalized swish, with phi_hat = lambda * swish written here. The forward
    statistics are there after the forward; rho' and the gradients only after the backward."""
    model, (x, y) = small_mlp("nswish"), batch()
    seen = {}
    model[0].register_forward_hook(lambda m, i, out: seen.setdefault("h", out.numpy()))
    with VarianceTracker(model) as tracker:
        loss = losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y))
        forward_only = tracker.profile()
        loss.backward()
    assert np.isnan(forward_only["delta_sq"]).all() and np.isnan(forward_only["rho_prime"]).all()
    got, h, lam = tracker.profile(), seen["h"], model[1].lambda_
    s = 1.0 / (1.0 + np.exp(-h))
    phi, dphi = lam * h * s, lam * (s + h * s * (1.0 - s))
    np.testing.assert_allclose(got["input_sq"][0], np.mean(x**2), rtol=1e-12)
    np.testing.assert_allclose(got["preact_sq"][0], np.mean(h**2), rtol=1e-12)
    np.testing.assert_allclose(got["preact_var"][0], np.var(h), rtol=1e-10)
    np.testing.assert_allclose(got["act_sq"][0], np.mean(phi**2), rtol=1e-12)
    np.testing.assert_allclose(got["rho"][0], np.mean(phi**2) / np.mean(h**2), rtol=1e-12)
    np.testing.assert_allclose(got["rho_prime"][0], np.mean(dphi**2), rtol=1e-12)
    np.testing.assert_allclose(got["lambda"][:2], [lam, model[3].lambda_], rtol=1e-12)
    for name in ("input_sq", "preact_sq", "preact_var", "act_sq", "rho", "lambda"):
        np.testing.assert_array_equal(forward_only[name], got[name])


def test_adaptive_layer_records_the_batch_lambda_it_applied():
    """In training mode an adaptive layer applies lambda_b of E16 (balanced rule E14 here),
    recomputed in the test from the batch."""
    model, (x, y) = small_mlp("ntanh", mode="adaptive", estimate="batch", center=False), batch()
    seen = {}
    model[0].register_forward_hook(lambda m, i, out: seen.setdefault("h", out.numpy()))
    with VarianceTracker(model) as tracker:
        losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y)).backward()
    h = seen["h"]
    rho_b, rho_prime_b = np.mean(np.tanh(h) ** 2) / np.mean(h**2), np.mean((1 - np.tanh(h) ** 2) ** 2)
    lam = math.sqrt((1 / rho_b + 1 / rho_prime_b) / 2)
    got = tracker.profile()
    assert abs(lam - model[1].lambda_) > 1e-3  # the batch lambda is not the running one
    np.testing.assert_allclose(got["lambda"][0], lam, rtol=1e-10)
    np.testing.assert_allclose(got["rho_prime"][0], lam**2 * rho_prime_b, rtol=1e-10)
    np.testing.assert_allclose(got["rho"][0], lam**2 * rho_b, rtol=1e-10)


def train(model: nn.Module, steps: int, evaluate_every: int = 0) -> None:
    """``steps`` SGD steps on a fixed batch; with ``evaluate_every``, a no_grad forward after
    every so many steps."""
    x, y = (tn.Tensor(a) for a in batch())
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    for step in range(steps):
        optimizer.zero_grad()
        losses.mse_loss(model(x), y).backward()
        optimizer.step()
        if evaluate_every and step % evaluate_every == 0:
            with tn.no_grad():
                model(x)


def test_steps_are_training_forwards_and_every_thins_them():
    model = small_mlp()
    with VarianceTracker(model, every=3) as tracker:
        train(model, steps=8, evaluate_every=2)
    record = tracker.to_dict()
    assert tracker.steps == [0, 3, 6] and record["step"].tolist() == [0, 3, 6]
    for name in STATISTICS:
        assert record[name].shape == (3, 3)
    assert np.isfinite(record["weight_grad_var"]).all() and np.isfinite(record["delta_sq"]).all()
    assert tracker.layer_names == ["0", "2", "4"]


def test_detaching_removes_every_hook():
    model = small_mlp("nswish")
    modules, params = list(model.modules()), list(model.parameters())
    tracker = VarianceTracker(model)
    weights = [m.weight for m in modules if isinstance(m, nn.Linear)]
    tracker.attach().attach()  # attaching twice registers once
    assert tracker.attached and sum(len(m._forward_hooks) for m in modules) == 5
    assert [len(w._node.hooks) for w in weights] == [1, 1, 1]  # for weight_grad_var
    assert all(not m._backward_hooks for m in modules)
    train(model, steps=2)
    tracker.detach()
    assert not tracker.attached
    assert all(not m._forward_hooks and not m._backward_hooks for m in modules)
    assert all(p._node is None or not p._node.hooks for p in params)  # nor on the leaves
    train(model, steps=2)
    assert tracker.steps == [0, 1]  # nothing recorded while detached


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        VarianceTracker(small_mlp(), every=0)
    with pytest.raises(ValueError, match="no Linear, Conv1d or Conv2d layer"):
        VarianceTracker(nn.Sequential(nn.Activation("relu")))
    with pytest.raises(ValueError, match="no step has been recorded"):
        VarianceTracker(small_mlp()).profile()


def test_json_and_csv_exports_round_trip(tmp_path):
    model = small_mlp()
    with VarianceTracker(model, every=2) as tracker:
        train(model, steps=5)
    record = tracker.to_dict()
    tracker.to_json(tmp_path / "record.json")
    back = tracking.read_json(tmp_path / "record.json")
    assert back["layers"] == tracker.layer_names and back["every"] == 2
    np.testing.assert_array_equal(back["step"], record["step"])
    for name in STATISTICS:
        np.testing.assert_array_equal(back[name], record[name])  # NaN in the same places

    tracker.to_csv(tmp_path / "record.csv")
    with open(tmp_path / "record.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 * 3 and list(rows[0]) == ["step", "layer", "name", *STATISTICS]
    for row in rows:
        s, l = record["step"].tolist().index(int(row["step"])), int(row["layer"])
        assert row["name"] == tracker.layer_names[l]
        for name in STATISTICS:
            np.testing.assert_array_equal(float(row[name]), record[name][s, l])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.csv", "record.json"]  # no temporaries


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def failing(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomically(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_measure_propagation_seeds_unit_per_example_gradients_and_keeps_grads():
    model, (x, _) = small_mlp(), batch()
    first = next(model.parameters())
    first.grad = np.full(first.shape, 7.0)
    profile = tracking.measure_propagation(model, x, rng=1)
    assert (first.grad == 7.0).all()
    assert all(p.grad is None for p in list(model.parameters())[1:])
    # at the output Linear, delta is the seed: per-example second moment exactly 1
    np.testing.assert_allclose(profile["delta_sq"][-1], 1.0, rtol=1e-12)
    with tn.no_grad(), pytest.raises(RuntimeError, match="outside no_grad"):
        tracking.measure_propagation(model, x)


def test_theory_record_names_the_profile_in_the_trackers_terms():
    profile = theory.mlp_profile("tanh", [4, 5, 6], weight_var=1.5, q0=2.0)
    record = tracking.theory_record(profile)
    np.testing.assert_allclose(record["input_sq"], [2.0, profile.x_sq[0]], rtol=1e-12)
    np.testing.assert_array_equal(record["preact_sq"], profile.q)
    np.testing.assert_array_equal(record["delta_sq"], profile.delta_sq)


def test_hooks_on_a_reused_input_do_not_pile_up():
    """A leaf input reused every step carries one tracker hook per forward, which goes when its
    backward has run, or at the next step when no backward came, and at detach."""
    model = nn.MLP([6, 5, 3], "tanh", rng=0)
    x = tn.Tensor(np.random.default_rng(0).standard_normal((4, 6)), requires_grad=True)
    with VarianceTracker(model) as tracker:
        for _ in range(3):
            loss = losses.mse_loss(model(x), np.zeros((4, 3)))
            assert len(x._node.hooks) == 1
            loss.backward()
            assert len(x._node.hooks) == 0
        for _ in range(3):
            model(x)  # forwards with autograd on and no backward
            assert len(x._node.hooks) == 1
    assert len(x._node.hooks) == 0
    assert tracker.to_dict()["input_grad_sq"].shape == (6, 2)
    assert np.isfinite(tracker.to_dict()["input_grad_sq"][:3]).all()


def test_an_every_third_step_tracker_records_what_an_every_step_tracker_does():
    """Two trackers on one model, every step and every third: the thinned one's steps 0, 3, 6
    hold exactly the values of the full one's (nothing from the steps in between leaks in)."""
    model = small_mlp("ntanh", mode="adaptive")
    with VarianceTracker(model) as full, VarianceTracker(model, every=3) as thin:
        train(model, steps=8, evaluate_every=2)
    assert thin.steps == [0, 3, 6] and full.steps == list(range(8))
    for k, step in enumerate(thin.steps):
        for name in STATISTICS:
            np.testing.assert_array_equal(thin.profile(k)[name], full.profile(step)[name], err_msg=name)


@pytest.mark.parametrize("a_first", [True, False])
def test_two_forwards_then_one_backward_record_each_graph_in_its_own_step(a_first):
    """Two training forwards (steps 0 and 1) and one backward of the sum of their losses, as a
    two-view loss does: in either order of the sum, each step's backward statistics are those of
    its forward alone, since each graph's hooks carry the table of the forward that made it.
    The one exception is weight_grad_var: the weights' gradient is then the sum over both
    graphs, so it stays NaN rather than being wrong."""
    model = small_mlp("ntanh", mode="adaptive")
    views = [batch(seed) for seed in (0, 1)]

    def loss(view: tuple[np.ndarray, np.ndarray]) -> tn.Tensor:
        return losses.mse_loss(model(tn.Tensor(view[0])), tn.Tensor(view[1]))

    alone = []
    for view in views:
        with VarianceTracker(model) as tracker:
            loss(view).backward()
        alone.append(tracker.profile(0))
    with VarianceTracker(model) as tracker:
        first, second = loss(views[0]), loss(views[1])
        (first + second if a_first else second + first).backward()
    for step in (0, 1):
        for name in ("delta_sq", "grad_act_sq", "weight_grad_sq", "bias_grad_var", "rho_prime"):
            np.testing.assert_allclose(tracker.profile(step)[name], alone[step][name], rtol=1e-10)
        assert np.isnan(tracker.profile(step)["weight_grad_var"]).all()
        assert np.isfinite(alone[step]["weight_grad_var"]).all()
    assert not np.allclose(alone[0]["delta_sq"], alone[1]["delta_sq"])  # the views differ


def test_a_graph_kept_for_another_backward_records_its_step_once():
    """An input made by an op (not a leaf) and reused every step with backward(retain_graph=True)
    sees one backward per step; each step's hook runs once, so later steps, whose gradients
    differ, do not overwrite step 0's record."""
    model = nn.MLP([6, 5, 3], "tanh", dtype="float64", rng=0)
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    x = tn.Tensor(np.random.default_rng(0).standard_normal((4, 6)), requires_grad=True) * 2.0
    with VarianceTracker(model) as tracker:
        for step in range(3):
            optimizer.zero_grad()
            losses.mse_loss(model(x), np.ones((4, 3))).backward(retain_graph=True)
            optimizer.step()
            assert len(x._node.hooks) == 0
            if step == 0:
                first = tracker.profile(0)["input_grad_sq"].copy()
    np.testing.assert_array_equal(tracker.profile(0)["input_grad_sq"], first)
    assert not np.allclose(tracker.profile(2)["input_grad_sq"], first)  # later steps differ


@pytest.mark.parametrize(
    "statistics",
    [("preact_sq", "delta_sq", "weight_grad_var"), ("bias_grad_var",), ("rho_prime", "grad_act_sq")],
)
def test_a_chosen_subset_is_recorded_exactly_and_alone(statistics):
    """A tracker of a few statistics records them with the values of the per-example loop (and
    of hand-computed gains), nothing else, and attaches no hook that serves only the others."""
    model, (x, y) = small_mlp(), batch(seed=4)
    brute = per_example_brute_force(model, x, y)
    h1 = x @ host(model[0].weight).T + host(model[0].bias)  # the first pre-activation, by hand
    with VarianceTracker(model, statistics=statistics) as tracker:
        needs_activation = not {"rho_prime", "grad_act_sq"}.isdisjoint(statistics)
        assert bool(model[1]._forward_hooks) == needs_activation
        weight_node = model[0].weight._node
        assert bool(weight_node and weight_node.hooks) == ("weight_grad_var" in statistics)
        losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y)).backward()
    got = tracker.profile()
    assert set(got) == set(statistics)
    expected = {
        "preact_sq": np.mean(h1**2),
        "delta_sq": np.mean(brute["delta", 0] ** 2),
        "weight_grad_var": np.mean(brute["weight", 0].var(axis=0)),
        "bias_grad_var": np.mean(brute["bias", 0].var(axis=0)),
        "rho_prime": np.mean((1 - np.tanh(h1) ** 2) ** 2),
        "grad_act_sq": np.mean(brute["grad_act", 0] ** 2),
    }
    for name in statistics:
        np.testing.assert_allclose(got[name][0], expected[name], rtol=1e-9)


def test_unknown_statistics_are_named():
    with pytest.raises(ValueError, match=r"unknown statistics \['rho_b'\]; choose from input_sq"):
        VarianceTracker(small_mlp(), statistics=("rho", "rho_b"))


class SkipBlock(nn.Module):
    """A block a user might write (not a library builder): two Linear-activation pairs, a skip
    connection around the second, an output Linear whose input is a sum, not an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 5, rng=11, dtype="float64")
        self.soft = nn.Activation("softplus")
        self.mix = nn.Linear(5, 5, rng=12, dtype="float64")
        self.squash = nn.Activation("tanh")
        self.head = nn.Linear(5, 3, rng=13, dtype="float64")

    def forward(self, x):
        y = self.soft(self.embed(x))
        return self.head(self.squash(self.mix(y)) + y)


def test_a_user_defined_module_matches_brute_force_per_example_statistics():
    """Every statistic of a user-written block with a skip connection, against a loop over the
    examples that backpropagates each example's own loss and keeps every intermediate gradient,
    with phi' in closed form (softplus' = logistic, tanh' = 1 - tanh^2)."""
    model, (x, y) = SkipBlock(), batch(seed=7)
    per_example: dict[str, list] = {}
    for b in range(BATCH):
        model.zero_grad()
        xb = tn.Tensor(x[b : b + 1], requires_grad=True)
        h0 = model.embed(xb)
        y0 = model.soft(h0)
        h1 = model.mix(y0)
        y1 = model.squash(h1)
        s = y1 + y0
        h2 = model.head(s)
        for t in (h0, y0, h1, y1, s, h2):
            t.retain_grad()
        losses.mse_loss(h2, tn.Tensor(y[b : b + 1])).backward()
        values = {"x": x[b], "h0": h0, "y0": y0, "h1": h1, "y1": y1, "s": s, "h2": h2}
        for key, value in values.items():
            per_example.setdefault(key, []).append(host(value).ravel())
            if key != "x":
                per_example.setdefault("d" + key, []).append(host(value.grad).ravel())
        for l, linear in enumerate((model.embed, model.mix, model.head)):
            per_example.setdefault(f"gW{l}", []).append(host(linear.weight.grad))
            per_example.setdefault(f"gb{l}", []).append(host(linear.bias.grad))
    ex = {key: np.array(value) for key, value in per_example.items()}
    with VarianceTracker(model) as tracker:
        losses.mse_loss(model(tn.Tensor(x)), tn.Tensor(y)).backward()
    got = tracker.profile()
    inputs, preacts, outputs = ("x", "y0", "s"), ("h0", "h1", "h2"), ("y0", "y1", None)
    sigmoid = 1 / (1 + np.exp(-ex["h0"]))
    dphi = (sigmoid, 1 - np.tanh(ex["h1"]) ** 2, None)
    for l in range(3):
        h = ex[preacts[l]]
        expected = {
            "input_sq": np.mean(ex[inputs[l]] ** 2),
            "preact_sq": np.mean(h**2),
            "preact_var": np.var(h),
            "delta_sq": np.mean(ex["d" + preacts[l]] ** 2),
            "weight_grad_sq": np.mean(ex[f"gW{l}"] ** 2),
            "weight_grad_var": np.mean(ex[f"gW{l}"].var(axis=0)),
            "bias_grad_sq": np.mean(ex[f"gb{l}"] ** 2),
            "bias_grad_var": np.mean(ex[f"gb{l}"].var(axis=0)),
        }
        if l > 0:  # the data is constant; y0 and s get gradients (y0's through two paths)
            expected["input_grad_sq"] = np.mean(ex["d" + inputs[l]] ** 2)
        if outputs[l] is not None:
            out = ex[outputs[l]]
            expected.update(
                act_sq=np.mean(out**2),
                rho=np.mean(out**2) / np.mean(h**2),
                rho_prime=np.mean(dphi[l] ** 2),
                grad_act_sq=np.mean(ex["d" + outputs[l]] ** 2),
            )
        for name in STATISTICS:
            if name in expected:
                np.testing.assert_allclose(got[name][l], expected[name], rtol=1e-9, err_msg=f"{name} {l}")
            else:
                assert np.isnan(got[name][l]), f"{name} {l}"
    assert tracker.layer_names == ["embed", "mix", "head"]


def test_storage_is_one_table_per_recorded_step_handed_to_the_record(monkeypatch):
    """The storage contract: each recorded step reaches ``record.append(step, table)`` once, as
    a host float64 (statistics, layers) array, when the step after the next recorded one starts
    (so that a late backward still lands) or at detach."""
    model = small_mlp()
    tracker = VarianceTracker(model, every=2)
    calls, append = [], tracker.record.append

    def spy(step, table):
        calls.append((step, table.copy()))
        append(step, table)

    monkeypatch.setattr(tracker.record, "append", spy)
    with tracker:
        train(model, steps=5)  # records steps 0, 2, 4
        assert [step for step, _ in calls] == [0]  # 2 and 4 still open
        assert tracker.steps == [0, 2, 4]
    assert [step for step, _ in calls] == [0, 2, 4]
    for _, table in calls:
        assert isinstance(table, np.ndarray) and table.dtype == np.float64
        assert table.shape == (len(STATISTICS), 3) and np.isfinite(table[_delta_row()]).all()


def _delta_row() -> int:
    return STATISTICS.index("delta_sq")
