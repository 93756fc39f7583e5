"""Per-layer variance tracking through the public hook API (THEORY E5, E6, E8-E10, E16-E18).

``VarianceTracker(model)`` watches every ``Linear``, ``Conv1d`` and ``Conv2d`` of a model, in
module order, together with the ``Activation`` that directly follows it (if any; a batch norm
layer in between is skipped over); that pair is "layer" l. The model may be
any ``Module``: an ``MLP`` of the library or a block a user wrote. It records, per layer and per
step, second moments of the forward signal and of the backward gradients, the measured gains
rho and rho' of the batch and the lambda of normalized activations::

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
- ``rho_prime``      E[phi'(h)^2], the batch backward gain (E6, E16), read from the gradients
                     during backward as (d loss / d h) / (d loss / d y) elementwise (lambda
                     included): a backward statistic (NaN until the step's backward reaches
                     the activation)
- ``lambda``         the lambda a NormalizedActivation applied in this step (E12-E16); NaN for
                     other activations
- ``delta_sq``       per-example E[delta_l^2], delta_l = d loss_b / d h (E9)
- ``grad_act_sq``    per-example E[(d loss_b / d y)^2]
- ``weight_grad_sq`` per-example E[(d loss_b / d W)_ij^2] (E10); ``weight_grad_var`` its
                     variance across the examples of the batch
- ``bias_grad_sq``, ``bias_grad_var``   the same for the bias (NaN without a bias)

Activation statistics are NaN for a Linear without a following activation (the last layer of
an ``MLP``). With a batch norm between the two, rho is measured across the activation alone
(its input is the normalized h), while ``preact_sq`` stays the conv's or Linear's own output.
Batch norm also couples the examples of a batch: then "example b's" gradients are the
contributions of example b's row (B g_b below), which equal the gradients of its own loss only
without such coupling. The per-example weight gradient of example b is g_b = delta_b x_b^T, so
without any loop over examples:

    mean_{b,i,j} g_bij^2 = mean_b( mean_i delta_bi^2 * mean_j x_bj^2 )
    variance across b    = that - mean_ij( (mean_b g_b)_ij^2 )

where mean_b g_b is the gradient the batch-mean loss gives the weight.

Convolutions. Every statistic keeps its meaning, "units" being channels times positions (h of
shape (B, out, *positions)). The per-example gradients of a convolution sum over positions:
example b's bias gradient is sum_p delta_b[:, p], and its weight gradient is
delta_b^T columns_b, with columns_b the im2col matrix of its input (``convolution.im2col``), so
the tracker forms all B of them with one batched matrix product (B x out x in * prod(kernel)
numbers, no loop over examples) when a recorded step's backward reaches the layer. THEORY E10
predicts only the per-position factor of these (docs/THEORY.md, "Convolutional networks").

How it listens: only through ``Module.register_forward_hook`` and ``Tensor.register_hook``.
Forward hooks on each Linear and Activation see x, h and y and compute the forward statistics.
In a recorded step they put tensor hooks on h, on y and on a Linear's input that requires a
gradient, each carrying that step, so a backward records into the step of the forward that made
its graph (two forwards then one backward, as a two-view loss does, record each graph in its own
step). rho' comes from the gradients: for an elementwise activation, d loss / d h = phi'(h) *
d loss / d y, so phi'(h) is their ratio wherever d loss / d y is not 0 (entries where it is 0
are left out of the mean). This is exact to rounding when the activation is the only consumer
of h (as in an MLP); with ``differentiate_lambda=True`` in training the gradient also flows
through the batch statistics and rho' stays NaN. It works for any elementwise activation module
and costs the same for every activation; recomputing phi'(h) in the forward hook instead costs
a fifth of it for tanh and relu and twice it for swish (docs/THEORY.md, "Tracking").
A hook on each weight (a leaf, held while attached) reads the batch weight gradient for
``weight_grad_var``; when one backward goes through several recorded forwards that gradient is
their sum, and ``weight_grad_var`` stays NaN for those steps. Every statistic costs at most one
pass over an array the step already holds: about eight passes per layer in all. A
detached tracker removes all of its hooks. ``benchmarks/bench_tracking.py`` measures the cost.

Storage: during a recorded step its values are written, as device scalars (no host transfer
per statistic), into one (len(STATISTICS), n_layers) array of the model's array module. The
array moves to the host once, as float64, when the step is complete: when the step after the
next recorded one starts (a backward may follow the next forward), or on ``detach``/``flush``;
``record.append(step, table)`` then stores it in the tracker's ``record``, a
``records.TrackRecord``: arrays in memory, or with ``path=`` streamed to disk (see ``records``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tinynormact.engine import backend, convolution
from tinynormact.engine.autograd import HookHandle, Tensor, is_grad_enabled, raw
from tinynormact.engine.backend import np
from tinynormact.infra.files import write_json_atomic, write_text_atomic
from tinynormact.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinynormact.nn.conv import Conv1d, Conv2d
from tinynormact.nn.init import as_generator
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Module
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.theory import MLPProfile
from tinynormact.tracking.records import FLUSH_EVERY, TrackRecord

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
(
    _INPUT_SQ,
    _INPUT_GRAD_SQ,
    _PREACT_SQ,
    _PREACT_VAR,
    _ACT_SQ,
    _RHO,
    _RHO_PRIME,
    _LAMBDA,
    _DELTA_SQ,
    _GRAD_ACT_SQ,
    _WEIGHT_GRAD_SQ,
    _WEIGHT_GRAD_VAR,
    _BIAS_GRAD_SQ,
    _BIAS_GRAD_VAR,
) = range(len(STATISTICS))
# What each group of hooks serves: the activation's forward hook, delta's hook, the input's rows.
_ACTIVATION_STATISTICS = frozenset({"act_sq", "rho", "rho_prime", "lambda", "grad_act_sq"})
_DELTA_STATISTICS = frozenset(
    {"delta_sq", "bias_grad_sq", "bias_grad_var", "weight_grad_sq", "weight_grad_var"}
)
_INPUT_ROW_STATISTICS = frozenset({"input_sq", "weight_grad_sq", "weight_grad_var"})


def _mean_square(array: Any) -> Any:
    """mean(array^2) as a 0-d array of the array's module: one dot product, no temporary."""
    flat = array.ravel()
    return flat.dot(flat) / flat.size


def _row_sums_of_squares(array: Any) -> Any:
    """sum_j array_bj^2 for every example b (all other axes flattened)."""
    rows = array.reshape(array.shape[0], -1)
    return backend.row_dots(rows, rows)


def _gradient_ratio_is_phi_prime(module: Activation, h: Any) -> bool:
    """Whether (d loss / d h) / (d loss / d y) is phi'(h): h is in the graph, and lambda is not
    differentiated (then the gradient also flows through the batch statistics)."""
    if not (isinstance(h, Tensor) and h.requires_grad):
        return False
    return not (getattr(module, "differentiate_lambda", False) and module.training)


class _Step:
    """One recorded step: its number and its (statistic, layer) table on the model's device.
    Hooks write only while it is open; closing moves the table to the host record."""

    __slots__ = ("number", "table", "open")

    def __init__(self, number: int, table: Any) -> None:
        self.number, self.table, self.open = number, table, True


class _Layer:
    """One tracked layer: a Linear and the Activation after it (or None), plus what hooks of
    one forward hand to each other."""

    def __init__(self, index: int, name: str, linear: Linear, activation: Activation | None) -> None:
        self.index, self.name, self.linear, self.activation = index, name, linear, activation
        self.preact: Any = None  # the recorded forward's h and its mean square, which the
        self.preact_sq: Any = math.nan  # activation hook reuses when its input is that same array
        self.weight_steps: list[_Step] = []  # steps whose delta hook ran in the current backward


_WEIGHTED = (Linear, Conv1d, Conv2d)
_BATCH_NORMS = (BatchNorm1d, BatchNorm2d)


def _find_layers(model: Module) -> list[_Layer]:
    """Every Linear and convolution in module order, each paired with an Activation that directly
    follows it, or follows a batch norm that directly follows it."""
    leaves = [(name, m) for name, m in model.named_modules() if not any(True for _ in m.children())]
    layers: list[_Layer] = []
    for k, (name, module) in enumerate(leaves):
        if isinstance(module, _WEIGHTED):
            after = [m for _, m in leaves[k + 1 : k + 3]]
            if after and isinstance(after[0], _BATCH_NORMS):
                after = after[1:]
            following = after[0] if after else None
            activation = following if isinstance(following, Activation) else None
            layers.append(_Layer(len(layers), name, module, activation))
    if not layers:
        raise ValueError(
            f"VarianceTracker: {type(model).__name__} contains no Linear, Conv1d or Conv2d layer to track"
        )
    return layers


class VarianceTracker:
    """Records per-layer, per-step second moments of a model through hooks (see the module
    docstring for the layers, the steps, the statistics and their convention).

    ``every=k`` records steps 0, k, 2k, ...; other steps cost one early-returning call per
    hook. ``statistics`` (default: all of ``STATISTICS``) chooses what to compute: the others
    stay NaN, and hooks that would serve only them are not attached. Use as a context manager
    (attach on enter, detach on exit) or call ``attach()`` and ``detach()``. Recorded data stays
    available after detaching. The cost is measured by ``benchmarks/bench_tracking.py``.

    The record is a ``records.TrackRecord`` (``self.record``): arrays in memory, or with
    ``path=FOLDER`` streamed to FOLDER (rows.npy, which ``numpy.load`` reads, and meta.json;
    a record already there is replaced), at least every ``flush_every`` recorded steps and on
    ``flush()`` and ``detach()``, keeping only those rows in memory. ``resume=True`` continues
    the record at ``path`` from ``start_step`` (rows from it on are cut; see ``records``).
    """

    def __init__(
        self,
        model: Module,
        every: int = 1,
        start_step: int = 0,
        statistics: Iterable[str] = STATISTICS,
        path: str | Path | None = None,
        resume: bool = False,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.statistics = tuple(statistics)
        unknown = sorted(set(self.statistics) - set(STATISTICS))
        if unknown or not self.statistics:
            raise ValueError(
                f"unknown statistics {unknown or self.statistics!r}; choose from {', '.join(STATISTICS)}"
            )
        wanted = frozenset(self.statistics)
        self._wants_preact_var = "preact_var" in wanted
        self._wants_input_rows = not wanted.isdisjoint(_INPUT_ROW_STATISTICS)
        self._wants_delta = not wanted.isdisjoint(_DELTA_STATISTICS)
        self._wants_input_grad = "input_grad_sq" in wanted
        self._wants_grad_act = "grad_act_sq" in wanted
        self._wants_activation = not wanted.isdisjoint(_ACTIVATION_STATISTICS)
        self._wants_weight_var = "weight_grad_var" in wanted
        self._wants_weight = not wanted.isdisjoint({"weight_grad_sq", "weight_grad_var"})
        self._wants_bias_var = "bias_grad_var" in wanted
        self._wants_rho_prime = "rho_prime" in wanted
        self.model, self.every = model, int(every)
        self._layers = _find_layers(model)
        self.record = TrackRecord(
            self.statistics,
            self.layer_names,
            table_rows=STATISTICS,
            path=path,
            flush_every=flush_every,
            every=self.every,
            resume_at=int(start_step) if resume else None,
        )
        self._handles: list[HookHandle] = []
        self._step = int(start_step) - 1  # the number of the current step (a resumed run starts later)
        self._current: _Step | None = None  # the step being recorded; None: this step is not
        self._open: list[_Step] = []  # recorded steps whose table is still on the device
        self._last_output: tuple[Any, Any, Any] | None = None  # see _input_rows
        self._watched: tuple[Any, list[Any], list[Any]] = (None, [], [])  # see _on_gradient
        self._ones: Any = None  # see _mean
        self._leaf_handles: list[HookHandle] = []  # hooks on reused inputs, see _on_gradient

    # ----- attaching --------------------------------------------------------------------------
    def attach(self) -> VarianceTracker:
        """Register the hooks (a no-op when already attached); returns self."""
        if self._handles:
            return self
        for layer in self._layers:
            self._handles.append(layer.linear.register_forward_hook(self._linear_hook(layer)))
            if self._wants_weight_var and isinstance(layer.linear, Linear):  # conv: see _delta_hook
                self._handles.append(layer.linear.weight.register_hook(self._weight_hook(layer)))
            if layer.activation is not None and self._wants_activation:
                self._handles.append(layer.activation.register_forward_hook(self._activation_hook(layer)))
        return self

    def detach(self) -> None:
        """Remove every hook and move the open steps to the record; the model is then exactly
        as fast as without a tracker."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._remove_leaf_hooks()
        self.flush()
        self._current, self._watched, self._last_output = None, (None, [], []), None
        for layer in self._layers:
            layer.preact, layer.weight_steps = None, []

    def flush(self) -> None:
        """Move every open step's table to the record (later hooks of those steps write nothing)
        and, when streaming, write the record to disk."""
        for step in self._open:
            self._close(step)
        self._open.clear()
        self.record.flush()

    def _close(self, step: _Step) -> None:
        step.open = False
        self.record.append(step.number, backend.to_numpy(step.table).astype(np.float64, copy=False))

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> VarianceTracker:
        return self.attach()

    def __exit__(self, *exc_info: Any) -> None:
        self.detach()

    # ----- the hooks --------------------------------------------------------------------------
    def _remove_leaf_hooks(self) -> None:
        for handle in self._leaf_handles:
            handle.remove()
        self._leaf_handles.clear()

    def _start_step(self, like: Any) -> None:
        """A new training forward: number it and, when recorded, open its table (on the device
        of ``like``); close the steps before the previous recorded one."""
        self._step += 1
        self._remove_leaf_hooks()
        self._current, self._watched, self._last_output = None, (None, [], []), None
        if self._step % self.every:
            return
        for step in self._open[:-1]:
            self._close(step)
        del self._open[:-1]
        xp = backend.get_array_module(like)
        self._current = _Step(self._step, xp.full((len(STATISTICS), len(self._layers)), math.nan))
        self._open.append(self._current)

    def _on_gradient(self, tensor: Tensor) -> tuple[list[tuple[int, int]], list[Callable[[Any], None]]]:
        """The (column, layer) targets and the actions of ``tensor``'s one hook in this step.

        During backward, just before backward goes through the op that made ``tensor``, the hook
        writes the per-example second moment of its gradient, B^2 mean(g^2), to every target of
        this step's table (one pass, however many targets: an activation's output is usually the
        next Linear's input), then calls each action with the gradient. It runs once and removes
        itself, so a graph kept for another backward or an input reused in later steps does not
        record twice; it is inert once its step is closed. A hook on a leaf (a reused input)
        whose backward never came goes at the next step.
        """
        watched, targets, actions = self._watched
        if watched is None or watched() is not tensor:
            step, targets, actions = self._current, [], []

            def hook(g: Any) -> None:
                handle.remove()
                if not step.open:
                    return
                if targets:
                    value = g.shape[0] ** 2 * _mean_square(g)
                    for column, l in targets:
                        step.table[column, l] = value
                for action in actions:
                    action(g)

            handle = tensor.register_hook(hook)
            if tensor.is_leaf:
                self._leaf_handles.append(handle)
            self._watched = (weakref.ref(tensor), targets, actions)
        return targets, actions

    def _input_rows(self, x: Any) -> tuple[Any, Any]:
        """(per-example sum_j x_bj^2, E[x^2]) of a layer's input; taken over, not recomputed, when
        x is the output the previous activation hook reduced (an MLP's hidden layers)."""
        if self._last_output is not None and self._last_output[0] is x:
            _, rows, mean = self._last_output
            self._last_output = None  # used: do not keep the array alive
            return rows, mean
        rows = _row_sums_of_squares(x)
        return rows, rows.sum() / x.size

    def _linear_hook(self, layer: _Layer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        l, paired = layer.index, layer.activation is not None and self._wants_activation

        def hook(module: Module, inputs: tuple[Any, ...], output: Tensor) -> None:
            if not is_grad_enabled():
                return
            x, h = inputs[0], output.data
            if l == 0:
                self._start_step(h)
            step = self._current
            if step is None:
                return
            table = step.table
            table[_PREACT_SQ, l] = q = _mean_square(h)  # always: rho needs it too
            if paired:
                layer.preact, layer.preact_sq = h, q
            if self._wants_preact_var:
                table[_PREACT_VAR, l] = q - self._mean(h) ** 2
            rows = None
            if self._wants_input_rows:
                rows, table[_INPUT_SQ, l] = self._input_rows(raw(x))
            if self._wants_input_grad and isinstance(x, Tensor) and x.requires_grad:
                self._on_gradient(x)[0].append((_INPUT_GRAD_SQ, l))
            if self._wants_delta and output.requires_grad and isinstance(module, Linear):
                output.register_hook(self._delta_hook(layer, step, rows))
            elif self._wants_delta and output.requires_grad:
                output.register_hook(self._conv_delta_hook(layer, step, raw(x)))

        return hook

    def _delta_hook(self, layer: _Layer, step: _Step, input_rows: Any) -> Callable[[Any], None]:
        """The hook on h of one recorded forward. g = delta / B is the gradient of the batch-mean
        loss reaching h (B examples, n outputs, m inputs). With r_b = sum_i g_bi^2 and
        s_b = sum_j x_bj^2 (the forward's input rows),

            E[delta^2] = B^2 sum_b r_b / (B n)             (E9; = bias_grad_sq)
            E[gW^2]    = B^2 sum_b r_b s_b / (B n m)       (E10, per-example gradients delta_b x_b^T)

        and the variances across examples subtract the squared batch gradients: sum_b g_b for the
        bias, the weight's gradient (read by the weight hook) for the weight."""
        l, module = layer.index, layer.linear

        def hook(g: Any) -> None:
            if not step.open:
                return
            table = step.table
            batch, outputs = g.shape
            rows = _row_sums_of_squares(g)
            table[_DELTA_SQ, l] = delta_sq = batch * rows.sum() / outputs
            if module.bias is not None:
                table[_BIAS_GRAD_SQ, l] = delta_sq
                if self._wants_bias_var:
                    table[_BIAS_GRAD_VAR, l] = delta_sq - _mean_square(g.sum(axis=0))
            if input_rows is not None:
                table[_WEIGHT_GRAD_SQ, l] = batch * rows.dot(input_rows) / (outputs * module.in_features)
                if self._wants_weight_var:
                    layer.weight_steps.append(step)

        return hook

    def _conv_delta_hook(self, layer: _Layer, step: _Step, x: Any) -> Callable[[Any], None]:
        """The hook on a convolution's output h (B, out, *positions) of one recorded forward, with
        g = delta / B. Example b's gradients sum over positions: its bias gradient is
        B sum_p g_b[:, p], its weight gradient B g_b^T columns_b (all B at once with
        ``convolution.per_example_weight_gradients``); the variances across examples subtract
        the squared batch gradients, the sums of those over b."""
        l, module = layer.index, layer.linear

        def hook(g: Any) -> None:
            if not step.open:
                return
            table, batch = step.table, g.shape[0]
            table[_DELTA_SQ, l] = batch * _row_sums_of_squares(g).sum() / (g.size // batch)
            if module.bias is not None:
                sums = g.reshape(batch, g.shape[1], -1).sum(axis=2)  # (B, out): sum over positions
                table[_BIAS_GRAD_SQ, l] = bias_sq = batch**2 * _mean_square(sums)
                if self._wants_bias_var:
                    table[_BIAS_GRAD_VAR, l] = bias_sq - _mean_square(sums.sum(axis=0))
            if self._wants_weight:
                per_example = convolution.per_example_weight_gradients(
                    x, g, module.kernel_size, module.stride, module.padding
                )
                table[_WEIGHT_GRAD_SQ, l] = weight_sq = batch**2 * _mean_square(per_example)
                if self._wants_weight_var:
                    table[_WEIGHT_GRAD_VAR, l] = weight_sq - _mean_square(per_example.sum(axis=0))

        return hook

    def _weight_hook(self, layer: _Layer) -> Callable[[Any], None]:
        """The hook on the weight (a leaf: it runs after every delta hook of the same backward)
        with the batch weight gradient, for weight_grad_var = E[gW^2] - mean(gW_batch^2)."""
        l = layer.index

        def hook(grad_weight: Any) -> None:
            steps, layer.weight_steps = layer.weight_steps, []
            if len(steps) == 1 and steps[0].open:  # several: the gradient is their sum
                table = steps[0].table
                table[_WEIGHT_GRAD_VAR, l] = table[_WEIGHT_GRAD_SQ, l] - _mean_square(grad_weight)

        return hook

    def _activation_hook(self, layer: _Layer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        l, normalized = layer.index, isinstance(layer.activation, NormalizedActivation)

        def hook(module: Activation, inputs: tuple[Any, ...], output: Tensor) -> None:
            step = self._current
            if step is None or not is_grad_enabled():
                return
            table = step.table
            h, y = raw(inputs[0]), output.data
            if self._wants_input_rows:  # reduce per example: the next Linear's input rows
                rows = _row_sums_of_squares(y)
                y_sq = rows.sum() / y.size
                self._last_output = (y, rows, y_sq)
            else:
                y_sq = _mean_square(y)
            table[_ACT_SQ, l] = y_sq
            h_sq = layer.preact_sq if h is layer.preact else _mean_square(h)
            layer.preact = None
            table[_RHO, l] = y_sq / h_sq
            if normalized:
                table[_LAMBDA, l] = raw(module.last_lambda)
            if not output.requires_grad:
                return
            targets, actions = self._on_gradient(output)
            if self._wants_grad_act:
                targets.append((_GRAD_ACT_SQ, l))
            if self._wants_rho_prime and _gradient_ratio_is_phi_prime(module, inputs[0]):
                grad_output: list[Any] = []  # d loss / d y, kept until backward reaches h
                actions.append(grad_output.append)
                inputs[0].register_hook(self._rho_prime_hook(l, step, grad_output))

        return hook

    @staticmethod
    def _rho_prime_hook(l: int, step: _Step, grad_output: list[Any]) -> Callable[[Any], None]:
        """rho' = mean(phi'(h)^2) (E6) with phi'(h) = (d loss / d h) / (d loss / d y), over the
        entries where d loss / d y is not 0."""

        def hook(grad_input: Any) -> None:
            if not (step.open and grad_output):
                return
            go = grad_output.pop()
            xp = backend.get_array_module(go)
            nonzero = go != 0
            ratio = (grad_input / xp.where(nonzero, go, xp.ones((), dtype=go.dtype))).ravel()
            step.table[_RHO_PRIME, l] = ratio.dot(ratio) / xp.count_nonzero(nonzero)

        return hook

    def _mean(self, array: Any) -> Any:
        """mean(array) as a 0-d array, the array seen as (examples, rest): a matrix-vector product
        with a kept vector of ones, then a sum over rows; three times as fast as ``array.sum()``
        in float32."""
        rows = array.reshape(array.shape[0], -1)
        ones = self._ones  # one per row length, dtype and array type (device), else replaced
        if not (type(ones) is type(rows) and len(ones) == rows.shape[1] and ones.dtype == rows.dtype):
            ones = self._ones = backend.get_array_module(rows).ones(rows.shape[1], dtype=rows.dtype)
        return rows.dot(ones).sum() / rows.size

    # ----- the record -------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """The dotted module names of the tracked Linear layers, in layer order."""
        return [layer.name for layer in self._layers]

    @staticmethod
    def _host(step: _Step) -> np.ndarray:
        """An open step's table, copied to the host without closing it."""
        return backend.to_numpy(step.table).astype(np.float64)

    @property
    def steps(self) -> list[int]:
        """The numbers of the recorded steps."""
        return self.record.steps.tolist() + [step.number for step in self._open]

    def to_dict(self) -> dict[str, np.ndarray]:
        """{"step": (S,) ints, statistic: (S, L) floats} for S recorded steps, L layers and each
        statistic the tracker records: the record's (from disk and memory when streaming), then
        the open steps'."""
        record = self.record.to_dict()
        if self._open:
            tables = [self._host(step) for step in self._open]
            record["step"] = np.concatenate([record["step"], [step.number for step in self._open]])
            for name in self.statistics:
                record[name] = np.concatenate([record[name], [table[_COLUMN[name]] for table in tables]])
        return record

    def profile(self, index: int = -1) -> dict[str, np.ndarray]:
        """{statistic: (L,) array} of one recorded step: ``index`` 0 is the first (at
        initialization when tracking started with training), -1 the latest. Comparable with
        ``theory_record(theory.mlp_profile(...))``."""
        stored, n = len(self.record), len(self.record) + len(self._open)
        if not n:
            raise ValueError("VarianceTracker.profile: no step has been recorded yet")
        if not -n <= index < n:
            raise IndexError(f"VarianceTracker.profile: index {index} out of range for {n} recorded steps")
        index %= n
        if index < stored:
            return self.record.row(index)
        table = self._host(self._open[index - stored])
        return {name: table[_COLUMN[name]] for name in self.statistics}

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
            u = as_generator(rng).standard_normal(out.shape)
            u /= math.sqrt(float(np.mean(u * u)))
            out.backward(backend.asarray(u / out.shape[0], dtype=out.dtype, device=out.device))
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    return tracker.profile(0)
