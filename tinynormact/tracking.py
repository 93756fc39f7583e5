"""Per-layer variance tracking through module hooks (THEORY E5, E6, E8-E10, E16-E18).

``VarianceTracker(model)`` watches every ``Linear`` of a model, in module order, together with
the ``Activation`` that directly follows it (if any); that pair is "layer" l. It records, per
layer and per step, second moments of the forward signal and of the backward gradients, the
measured gains rho and rho' of the batch and the lambda of normalized activations::

    with VarianceTracker(model, every=10) as tracker:
        for x, y in batches:
            optimizer.zero_grad()
            loss = losses.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    record = tracker.to_dict()          # {"step": (S,), statistic: (S, L)}

Steps. A step starts whenever the model's first Linear layer runs forward while autograd is
recording (``tn.is_grad_enabled()``), i.e. with every training forward of the model; forwards
under ``no_grad()`` (evaluation) neither count nor record. Steps are numbered 0, 1, 2, ... and
with ``every=k`` steps 0, k, 2k, ... are recorded. Each statistic is filled in when the hook that
measures it runs, so a step whose backward never happens keeps NaN for the backward statistics.

Statistics convention (the one of ``theory`` and docs/THEORY.md, "Statistics convention"):
every quantity is a second moment averaged over examples and units, and backward quantities are
*per example*. The model's loss must be the batch mean (1/B) sum_b loss_b, as the library's
losses are with ``reduction="mean"``; the gradient reaching an activation of example b is then
delta_b / B, so the tracker multiplies the gradients it sees by B. Measured numbers therefore
compare directly with ``theory.mlp_profile`` and ``theory.residual_profile``. The two variances
(``preact_var`` and the ``*_grad_var`` across examples) are population variances (ddof = 0).

The statistics (``STATISTICS``), for layer l with input x, pre-activation h = W x + b and output
y = phi(h) (B examples, n units):

- ``input_sq``       E[x^2] of the layer's input (E10's E[x_{l-1}^2]; E17's E[x_l^2] for the
                     first Linear of a residual branch)
- ``input_grad_sq``  per-example E[(d loss_b / d x)^2], the full gradient of the input (E18's
                     g_l for the first Linear of a residual branch); NaN for a constant input
- ``preact_sq``      q_l = E[h^2] (E8)
- ``preact_var``     the variance of h over examples and units
- ``act_sq``         E[phi(h)^2] (E8's m2(q_l))
- ``rho``            E[phi(h)^2] / E[h^2], the batch forward gain (E5, E16)
- ``rho_prime``      E[phi'(h)^2], the batch backward gain (E6, E16)
- ``lambda``         the lambda a NormalizedActivation applied in this step (E12-E16); NaN for
                     other activations
- ``delta_sq``       per-example E[delta_l^2], delta_l = d loss_b / d h (E9)
- ``grad_act_sq``    per-example E[(d loss_b / d y)^2]
- ``weight_grad_sq`` per-example E[(d loss_b / d W)_ij^2] (E10); ``weight_grad_var`` its
                     variance across the examples of the batch
- ``bias_grad_sq``, ``bias_grad_var``   the same for the bias (NaN without a bias)

Activation statistics are NaN for a Linear without a following activation (the last layer of
an ``MLP``). The per-example weight gradient of example b is g_b = delta_b x_b^T, so without any
loop over examples:

    mean_{b,i,j} g_bij^2 = mean_b( mean_i delta_bi^2 * mean_j x_bj^2 )
    variance across b    = that - mean_ij( (mean_b g_b)_ij^2 )

where mean_b g_b is the gradient the batch-mean loss gives the weight, read by a hook on the
weight during backward. A model without a tracker carries no hooks, so it pays nothing; a
detached tracker removes all of its hooks.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tinynormact import backend
from tinynormact.autograd import Tensor, is_grad_enabled
from tinynormact.backend import np
from tinynormact.files import write_json_atomic, write_text_atomic
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Module
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.theory import MLPProfile

__all__ = [
    "STATISTICS",
    "VarianceTracker",
    "measure_propagation",
    "read_json",
    "theory_record",
]

STATISTICS = (
    "input_sq",
    "input_grad_sq",
    "preact_sq",
    "preact_var",
    "act_sq",
    "rho",
    "rho_prime",
    "lambda",
    "delta_sq",
    "grad_act_sq",
    "weight_grad_sq",
    "weight_grad_var",
    "bias_grad_sq",
    "bias_grad_var",
)
_COLUMN = {name: k for k, name in enumerate(STATISTICS)}
# The statistics that need the activation's forward hook, and those that need delta's hook.
_ACTIVATION_STATISTICS = ("act_sq", "rho", "rho_prime", "lambda", "grad_act_sq")
_DELTA_STATISTICS = ("delta_sq", "bias_grad_sq", "bias_grad_var", "weight_grad_sq", "weight_grad_var")


def _mean_square(array: Any) -> float:
    """mean(array^2) as a Python float: one dot product, no temporary array."""
    flat = array.reshape(-1)
    return float(flat @ flat) / flat.size


def _row_mean_squares(array: Any) -> Any:
    """mean_j array_bj^2 for every row b (every example)."""
    xp = backend.get_array_module(array)
    return xp.einsum("ij,ij->i", array, array) / array.shape[1]


def _raw(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


class _Layer:
    """One tracked layer: a Linear and the Activation after it (or None), plus what the
    backward hooks of the step being recorded need from its forward."""

    def __init__(self, index: int, name: str, linear: Linear, activation: Activation | None) -> None:
        self.index, self.name, self.linear, self.activation = index, name, linear, activation
        self.input_rows: Any = None  # per-example E[x^2] of the recorded forward
        self.preact: Any = None  # the recorded pre-activation array h and its mean square, which
        self.preact_sq = math.nan  # the activation hook reuses when its input is that same array
        self.weight_row: Any = None  # the record row the weight hook writes into, once
        self.bias_row: Any = None


def _find_layers(model: Module) -> list[_Layer]:
    """Every Linear in module order, each paired with an Activation that directly follows it."""
    leaves = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    layers: list[_Layer] = []
    for k, (name, module) in enumerate(leaves):
        if isinstance(module, Linear):
            following = leaves[k + 1][1] if k + 1 < len(leaves) else None
            activation = following if isinstance(following, Activation) else None
            layers.append(_Layer(len(layers), name, module, activation))
    if not layers:
        raise ValueError(f"VarianceTracker: {type(model).__name__} contains no Linear layer to track")
    return layers


def _derivative_and_lambda(module: Activation, h: Any, y: Any) -> tuple[Any, float]:
    """(phi'(h), lambda) such that the derivative of what ``module`` applied is lambda * phi'(h).

    A plain activation: its own phi' (computed from the output y where the activation can, as
    autograd does) and lambda = 1. A NormalizedActivation: the base phi' and the lambda its
    forward just applied (E12-E16: static, running or batch value, correction included).
    """
    if not isinstance(module, NormalizedActivation):
        act = module.function
        return (act.df(h) if act.df_from_output is None else act.df_from_output(y)), 1.0
    return module.base.df(h), float(_raw(module.last_lambda))


class VarianceTracker:
    """Records per-layer, per-step second moments of a model through hooks (see the module
    docstring for the layers, the steps, the statistics and their convention).

    ``every=k`` records steps 0, k, 2k, ...; other steps cost one early-returning call per
    hook. ``statistics`` (default: all of ``STATISTICS``) chooses what to compute: the others
    stay NaN, and hooks that would serve only them are not attached, so recording every step
    of a few statistics costs little (``benchmarks/bench_tracking.py``). Use as a context manager
    (attach on enter, detach on exit) or call ``attach()`` and ``detach()``. Recorded data stays
    available after detaching.
    """

    def __init__(
        self, model: Module, every: int = 1, start_step: int = 0, statistics: Iterable[str] = STATISTICS
    ) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.statistics = tuple(statistics)
        unknown = sorted(set(self.statistics) - set(STATISTICS))
        if unknown or not self.statistics:
            raise ValueError(
                f"unknown statistics {unknown or self.statistics!r}; choose from {', '.join(STATISTICS)}"
            )
        self._wanted = frozenset(self.statistics)
        self.model, self.every = model, int(every)
        self._layers = _find_layers(model)
        self._removers: list[Callable[[], None]] = []
        self._step = int(start_step) - 1  # the number of the current step (a resumed run starts later)
        self._row: Any = None  # the record row of the current step, None when not recording
        self._last_gradient: tuple[Any, float] = (None, math.nan)  # see _record_gradient
        self._step_removers: list[Callable[[], None]] = []  # hooks on this step's tensors
        self._steps: list[int] = []
        self._rows: list[np.ndarray] = []

    # ----- attaching --------------------------------------------------------------------------
    def attach(self) -> VarianceTracker:
        """Register the hooks (a no-op when already attached); returns self."""
        if self._removers:
            return self
        for layer in self._layers:
            self._removers.append(layer.linear.register_forward_hook(self._linear_hook(layer)).remove)
            for which, parameter in (("weight", layer.linear.weight), ("bias", layer.linear.bias)):
                if parameter is not None and self._wants(f"{which}_grad_var"):
                    self._removers.append(parameter.register_hook(self._parameter_hook(layer, which)))
            if layer.activation is not None and self._wants(*_ACTIVATION_STATISTICS):
                hook = self._activation_hook(layer)
                self._removers.append(layer.activation.register_forward_hook(hook).remove)
        return self

    def _wants(self, *names: str) -> bool:
        """Whether any of ``names`` is among the statistics this tracker records."""
        return not self._wanted.isdisjoint(names)

    def detach(self) -> None:
        """Remove every hook; the model is then exactly as fast as without a tracker."""
        for remove in self._removers:
            remove()
        self._removers.clear()
        self._remove_step_hooks()
        self._row = None

    @property
    def attached(self) -> bool:
        return bool(self._removers)

    def __enter__(self) -> VarianceTracker:
        return self.attach()

    def __exit__(self, *exc_info: Any) -> None:
        self.detach()

    # ----- the hooks --------------------------------------------------------------------------
    def _hook_tensor(self, tensor: Tensor, hook: Callable[[Any], None]) -> None:
        """Hook one step's tensor; the hook goes at the next step or detach (an input tensor that
        is reused, a leaf, would otherwise collect hooks, since backward frees only graph nodes)."""
        self._step_removers.append(tensor.register_hook(hook))

    def _remove_step_hooks(self) -> None:
        for remove in self._step_removers:
            remove()
        self._step_removers.clear()

    def _start_step(self) -> None:
        self._step += 1
        self._remove_step_hooks()
        self._row, self._last_gradient = None, (None, math.nan)
        if self._step % self.every == 0:
            self._row = np.full((len(STATISTICS), len(self._layers)), np.nan)
            self._steps.append(self._step)
            self._rows.append(self._row)

    def _linear_hook(self, layer: _Layer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        def hook(module: Module, inputs: tuple[Any, ...], output: Tensor) -> None:
            if not is_grad_enabled():
                return
            if layer.index == 0:
                self._start_step()
            row = self._row
            if row is None:
                return
            x, h, l = inputs[0], output.data, layer.index
            row[_COLUMN["preact_sq"], l] = q = _mean_square(h)  # always: rho needs it too
            layer.preact, layer.preact_sq = h, q
            if self._wants("preact_var"):
                row[_COLUMN["preact_var"], l] = q - (float(h.sum()) / h.size) ** 2
            if self._wants("input_sq", "weight_grad_sq", "weight_grad_var"):
                layer.input_rows = _row_mean_squares(_raw(x))
                row[_COLUMN["input_sq"], l] = float(layer.input_rows.sum()) / len(layer.input_rows)
            if output.requires_grad and self._wants(*_DELTA_STATISTICS):
                self._hook_tensor(output, lambda g: self._record_delta(layer, row, g))
            if isinstance(x, Tensor) and x.requires_grad and self._wants("input_grad_sq"):
                self._hook_tensor(x, lambda g: self._record_gradient(row, "input_grad_sq", l, g))

        return hook

    def _record_delta(self, layer: _Layer, row: np.ndarray, g: Any) -> None:
        """delta = B * g per example (E9) and the per-example weight-gradient second moment (E10)."""
        l, batch = layer.index, g.shape[0]
        delta_rows = batch**2 * _row_mean_squares(g)
        row[_COLUMN["delta_sq"], l] = row[_COLUMN["bias_grad_sq"], l] = float(delta_rows.sum()) / batch
        layer.bias_row = row
        if layer.input_rows is not None:
            row[_COLUMN["weight_grad_sq"], l] = float(delta_rows @ layer.input_rows) / batch
            layer.weight_row = row

    def _parameter_hook(self, layer: _Layer, which: str) -> Callable[[Any], None]:
        """On the weight (bias): the batch gradient mean_b g_b arrives; variance = sq - mean^2."""
        slot, sq, var = f"{which}_row", _COLUMN[f"{which}_grad_sq"], _COLUMN[f"{which}_grad_var"]

        def hook(g: Any) -> None:
            row = getattr(layer, slot)
            if row is not None:
                setattr(layer, slot, None)
                row[var, layer.index] = row[sq, layer.index] - _mean_square(g)

        return hook

    def _activation_hook(self, layer: _Layer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        def hook(module: Activation, inputs: tuple[Any, ...], output: Tensor) -> None:
            row = self._row
            if row is None or not is_grad_enabled():
                return
            h, y, l = _raw(inputs[0]), output.data, layer.index
            row[_COLUMN["act_sq"], l] = y_sq = _mean_square(y)
            h_sq = layer.preact_sq if h is layer.preact else _mean_square(h)
            layer.preact = None
            row[_COLUMN["rho"], l] = y_sq / h_sq
            if isinstance(module, NormalizedActivation):
                row[_COLUMN["lambda"], l] = float(_raw(module.last_lambda))
            if self._wants("rho_prime"):  # phi'(h) costs a pass or two over h
                dphi, lam = _derivative_and_lambda(module, h, y)
                row[_COLUMN["rho_prime"], l] = lam**2 * _mean_square(dphi)
            if output.requires_grad and self._wants("grad_act_sq"):
                self._hook_tensor(output, lambda g: self._record_gradient(row, "grad_act_sq", l, g))

        return hook

    def _record_gradient(self, row: np.ndarray, statistic: str, layer: int, g: Any) -> None:
        """The per-example second moment of a gradient g of the batch-mean loss: B^2 mean(g^2).

        An activation's output is usually the next Linear's input, so two hooks see the same
        gradient array one after the other; it is reduced once."""
        if g is not self._last_gradient[0]:
            self._last_gradient = (g, g.shape[0] ** 2 * _mean_square(g))
        row[_COLUMN[statistic], layer] = self._last_gradient[1]

    # ----- the record -------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """The dotted module names of the tracked Linear layers, in layer order."""
        return [layer.name for layer in self._layers]

    @property
    def steps(self) -> list[int]:
        """The numbers of the recorded steps."""
        return list(self._steps)

    def to_dict(self) -> dict[str, np.ndarray]:
        """{"step": (S,) ints, statistic: (S, L) floats} for S recorded steps, L layers and each
        statistic the tracker records."""
        table = np.stack(self._rows) if self._rows else np.empty((0, len(STATISTICS), len(self._layers)))
        record = {"step": np.array(self._steps, dtype=np.int64)}
        record.update({name: table[:, _COLUMN[name], :] for name in self.statistics})
        return record

    def profile(self, index: int = -1) -> dict[str, np.ndarray]:
        """{statistic: (L,) array} of one recorded step: ``index`` 0 is the first (at
        initialization when tracking started with training), -1 the latest. Comparable with
        ``theory_record(theory.mlp_profile(...))``."""
        if not self._rows:
            raise ValueError("VarianceTracker.profile: no step has been recorded yet")
        return {name: self._rows[index][_COLUMN[name]].copy() for name in self.statistics}

    def to_json(self, path: str | Path) -> None:
        """Write the record as JSON (NaN as null), atomically; ``read_json`` reads it back."""
        record = self.to_dict()
        document = {
            "every": self.every,
            "layers": self.layer_names,
            "step": record.pop("step").tolist(),
            "statistics": {name: values for name, values in record.items()},
        }
        write_json_atomic(path, document, indent=None)

    def to_csv(self, path: str | Path) -> None:
        """Write the record in long format, one line per (step, layer): step, layer (index),
        name, then one column per statistic (NaN as "nan"), atomically."""
        record, text = self.to_dict(), io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["step", "layer", "name", *self.statistics])
        for s, step in enumerate(record["step"]):
            for l, name in enumerate(self.layer_names):
                writer.writerow(
                    [int(step), l, name, *(repr(float(record[k][s, l])) for k in self.statistics)]
                )
        write_text_atomic(path, text.getvalue())


def read_json(path: str | Path) -> dict[str, Any]:
    """A record written by ``VarianceTracker.to_json``: the arrays of ``to_dict`` plus
    "layers" (the layer names) and "every"."""
    document = json.loads(Path(path).read_text())
    record: dict[str, Any] = {"step": np.array(document["step"], dtype=np.int64)}
    layers = len(document["layers"])
    for name, values in document["statistics"].items():
        record[name] = np.array(values, dtype=float).reshape(-1, layers)  # null -> nan
    record["layers"], record["every"] = document["layers"], document["every"]
    return record


def theory_record(profile: MLPProfile) -> dict[str, np.ndarray]:
    """``theory.mlp_profile``'s prediction (E8-E10) under the tracker's statistic names:
    preact_sq (q), input_sq, delta_sq, weight_grad_sq, bias_grad_sq, all per layer."""
    return {
        "preact_sq": profile.q,
        "input_sq": profile.weight_grad_sq / profile.delta_sq,  # E10: E[gW^2] = E[delta^2] E[x^2]
        "delta_sq": profile.delta_sq,
        "weight_grad_sq": profile.weight_grad_sq,
        "bias_grad_sq": profile.bias_grad_sq,
    }


def measure_propagation(model: Module, x: Any, rng: int | Any = 0) -> dict[str, np.ndarray]:
    """Signal propagation at the model's current weights: one forward and backward, tracked.

    The backward pass is seeded as the batch mean of per-example losses whose output gradients
    u_b are independent N(0, 1), rescaled so that mean(u^2) = 1 exactly: the per-example
    gradient second moment at the output is 1, the ``grad_out_sq=1`` of ``theory.mlp_profile``.
    Returns ``VarianceTracker.profile``'s per-layer arrays. The parameters' ``.grad`` are left
    as they were; an adaptive layer in training mode updates its running statistics, as in any
    training forward. ``rng`` is a seed or a NumPy Generator.
    """
    if not is_grad_enabled():
        raise RuntimeError("measure_propagation needs autograd: call it outside no_grad()")
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with VarianceTracker(model) as tracker:
            out = model(x if isinstance(x, Tensor) else Tensor(x))
            rng = rng if isinstance(rng, np.random.Generator) else backend.default_rng(rng)
            u = rng.standard_normal(out.shape)
            u /= math.sqrt(float(np.mean(u * u)))
            out.backward(backend.asarray(u / out.shape[0], dtype=out.dtype, device=out.device))
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    return tracker.profile(0)
