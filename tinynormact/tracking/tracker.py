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

The statistics, their convention (that of ``theory``: second moments, per example) and the
formulas that compute them are ``tracking.statistics``'s docstring.

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

import math
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tinynormact.engine import backend, convolution
from tinynormact.engine.autograd import HookHandle, Tensor, is_grad_enabled, raw
from tinynormact.engine.backend import np
from tinynormact.infra.validation import check_integer
from tinynormact.nn.layers import Activation, Linear
from tinynormact.nn.module import Module
from tinynormact.nn.normalized import NormalizedActivation
from tinynormact.tracking.layers import Step, TrackedLayer, find_layers
from tinynormact.tracking.records import FLUSH_EVERY, TrackRecord, write_csv, write_json
from tinynormact.tracking.statistics import (
    ACT_SQ,
    ACTIVATION_STATISTICS,
    BIAS_GRAD_SQ,
    BIAS_GRAD_VAR,
    COLUMN,
    DELTA_SQ,
    DELTA_STATISTICS,
    GRAD_ACT_SQ,
    INPUT_GRAD_SQ,
    INPUT_ROW_STATISTICS,
    INPUT_SQ,
    LAMBDA,
    PREACT_SQ,
    PREACT_VAR,
    RHO,
    STATISTICS,
    WEIGHT_GRAD_SQ,
    WEIGHT_GRAD_VAR,
    WEIGHT_STATISTICS,
    gradient_ratio_is_phi_prime,
    mean_square,
    rho_prime_hook,
    row_sums_of_squares,
)

__all__ = ["STATISTICS", "VarianceTracker"]


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
        check_integer("every", every, 1)
        self.statistics = tuple(statistics)
        unknown = sorted(set(self.statistics) - set(STATISTICS))
        if unknown or not self.statistics:
            raise ValueError(
                f"unknown statistics {unknown or self.statistics!r}; choose from {', '.join(STATISTICS)}"
            )
        self.wanted = frozenset(self.statistics)  # hooks serving none of these are not attached
        self.model, self.every = model, int(every)
        self._layers = find_layers(model)
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
        self._current: Step | None = None  # the step being recorded; None: this step is not
        self._open: list[Step] = []  # recorded steps whose table is still on the device
        self._last_output: tuple[Any, Any, Any] | None = None  # see _input_rows
        self._watched: tuple[Any, list[Any], list[Any]] = (None, [], [])  # see _on_gradient
        self._ones: Any = None  # see _mean
        self._leaf_handles: list[HookHandle] = []  # hooks on reused inputs, see _on_gradient

    def _wants(self, group: frozenset[str]) -> bool:
        """Whether the tracker records any statistic of ``group``."""
        return not self.wanted.isdisjoint(group)

    # ----- attaching --------------------------------------------------------------------------
    def attach(self) -> VarianceTracker:
        """Register the hooks (a no-op when already attached); returns self."""
        if self._handles:
            return self
        for layer in self._layers:
            self._handles.append(layer.linear.register_forward_hook(self._linear_hook(layer)))
            if "weight_grad_var" in self.wanted and isinstance(layer.linear, Linear):  # conv: see _delta_hook
                self._handles.append(layer.linear.weight.register_hook(self._weight_hook(layer)))
            if layer.activation is not None and self._wants(ACTIVATION_STATISTICS):
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

    def _close(self, step: Step) -> None:
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
        self._current = Step(self._step, xp.full((len(STATISTICS), len(self._layers)), math.nan))
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
                    value = g.shape[0] ** 2 * mean_square(g)
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
        rows = row_sums_of_squares(x)
        return rows, rows.sum() / x.size

    def _linear_hook(self, layer: TrackedLayer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        l, paired = layer.index, layer.activation is not None and self._wants(ACTIVATION_STATISTICS)
        wants_var, wants_rows = "preact_var" in self.wanted, self._wants(INPUT_ROW_STATISTICS)
        wants_input_grad, wants_delta = "input_grad_sq" in self.wanted, self._wants(DELTA_STATISTICS)

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
            table[PREACT_SQ, l] = q = mean_square(h)  # always: rho needs it too
            if paired:
                layer.preact, layer.preact_sq = h, q
            if wants_var:
                table[PREACT_VAR, l] = q - self._mean(h) ** 2
            rows = None
            if wants_rows:
                rows, table[INPUT_SQ, l] = self._input_rows(raw(x))
            if wants_input_grad and isinstance(x, Tensor) and x.requires_grad:
                self._on_gradient(x)[0].append((INPUT_GRAD_SQ, l))
            if wants_delta and output.requires_grad and isinstance(module, Linear):
                output.register_hook(self._delta_hook(layer, step, rows))
            elif wants_delta and output.requires_grad:
                output.register_hook(self._conv_delta_hook(layer, step, raw(x)))

        return hook

    def _delta_hook(self, layer: TrackedLayer, step: Step, input_rows: Any) -> Callable[[Any], None]:
        """The hook on h of one recorded forward. g = delta / B is the gradient of the batch-mean
        loss reaching h (B examples, n outputs, m inputs). With r_b = sum_i g_bi^2 and
        s_b = sum_j x_bj^2 (the forward's input rows),

            E[delta^2] = B^2 sum_b r_b / (B n)             (E9; = bias_grad_sq)
            E[gW^2]    = B^2 sum_b r_b s_b / (B n m)       (E10, per-example gradients delta_b x_b^T)

        and the variances across examples subtract the squared batch gradients: sum_b g_b for the
        bias, the weight's gradient (read by the weight hook) for the weight."""
        l, module = layer.index, layer.linear
        wants_bias_var, wants_weight_var = "bias_grad_var" in self.wanted, "weight_grad_var" in self.wanted

        def hook(g: Any) -> None:
            if not step.open:
                return
            table = step.table
            batch, outputs = g.shape
            rows = row_sums_of_squares(g)
            table[DELTA_SQ, l] = delta_sq = batch * rows.sum() / outputs
            if module.bias is not None:
                table[BIAS_GRAD_SQ, l] = delta_sq
                if wants_bias_var:
                    table[BIAS_GRAD_VAR, l] = delta_sq - mean_square(g.sum(axis=0))
            if input_rows is not None:
                table[WEIGHT_GRAD_SQ, l] = batch * rows.dot(input_rows) / (outputs * module.in_features)
                if wants_weight_var:
                    layer.weight_steps.append(step)

        return hook

    def _conv_delta_hook(self, layer: TrackedLayer, step: Step, x: Any) -> Callable[[Any], None]:
        """The hook on a convolution's output h (B, out, *positions) of one recorded forward, with
        g = delta / B. Example b's gradients sum over positions: its bias gradient is
        B sum_p g_b[:, p], its weight gradient B g_b^T columns_b (all B at once with
        ``convolution.per_example_weight_gradients``); the variances across examples subtract
        the squared batch gradients, the sums of those over b."""
        l, module = layer.index, layer.linear
        wants_bias_var, wants_weight_var = "bias_grad_var" in self.wanted, "weight_grad_var" in self.wanted
        wants_weight = self._wants(WEIGHT_STATISTICS)

        def hook(g: Any) -> None:
            if not step.open:
                return
            table, batch = step.table, g.shape[0]
            table[DELTA_SQ, l] = batch * row_sums_of_squares(g).sum() / (g.size // batch)
            if module.bias is not None:
                sums = g.reshape(batch, g.shape[1], -1).sum(axis=2)  # (B, out): sum over positions
                table[BIAS_GRAD_SQ, l] = bias_sq = batch**2 * mean_square(sums)
                if wants_bias_var:
                    table[BIAS_GRAD_VAR, l] = bias_sq - mean_square(sums.sum(axis=0))
            if wants_weight:
                per_example = convolution.per_example_weight_gradients(
                    x, g, module.kernel_size, module.stride, module.padding
                )
                table[WEIGHT_GRAD_SQ, l] = weight_sq = batch**2 * mean_square(per_example)
                if wants_weight_var:
                    table[WEIGHT_GRAD_VAR, l] = weight_sq - mean_square(per_example.sum(axis=0))

        return hook

    def _weight_hook(self, layer: TrackedLayer) -> Callable[[Any], None]:
        """The hook on the weight (a leaf: it runs after every delta hook of the same backward)
        with the batch weight gradient, for weight_grad_var = E[gW^2] - mean(gW_batch^2)."""
        l = layer.index

        def hook(grad_weight: Any) -> None:
            steps, layer.weight_steps = layer.weight_steps, []
            if len(steps) == 1 and steps[0].open:  # several: the gradient is their sum
                table = steps[0].table
                table[WEIGHT_GRAD_VAR, l] = table[WEIGHT_GRAD_SQ, l] - mean_square(grad_weight)

        return hook

    def _activation_hook(self, layer: TrackedLayer) -> Callable[[Module, tuple[Any, ...], Any], None]:
        l, normalized = layer.index, isinstance(layer.activation, NormalizedActivation)
        wants_rows, wants_grad_act = self._wants(INPUT_ROW_STATISTICS), "grad_act_sq" in self.wanted
        wants_rho_prime = "rho_prime" in self.wanted

        def hook(module: Activation, inputs: tuple[Any, ...], output: Tensor) -> None:
            step = self._current
            if step is None or not is_grad_enabled():
                return
            table = step.table
            h, y = raw(inputs[0]), output.data
            if wants_rows:  # reduce per example: the next Linear's input rows
                rows = row_sums_of_squares(y)
                y_sq = rows.sum() / y.size
                self._last_output = (y, rows, y_sq)
            else:
                y_sq = mean_square(y)
            table[ACT_SQ, l] = y_sq
            h_sq = layer.preact_sq if h is layer.preact else mean_square(h)
            layer.preact = None
            table[RHO, l] = y_sq / h_sq
            if normalized:
                lam = raw(module.last_lambda)
                table[LAMBDA, l] = lam.mean() if getattr(lam, "ndim", 0) else lam  # units: their mean
            if not output.requires_grad:
                return
            targets, actions = self._on_gradient(output)
            if wants_grad_act:
                targets.append((GRAD_ACT_SQ, l))
            if wants_rho_prime and gradient_ratio_is_phi_prime(module, inputs[0]):
                grad_output: list[Any] = []  # d loss / d y, kept until backward reaches h
                actions.append(grad_output.append)
                inputs[0].register_hook(rho_prime_hook(l, step, grad_output))

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
    def _host(step: Step) -> np.ndarray:
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
                record[name] = np.concatenate([record[name], [table[COLUMN[name]] for table in tables]])
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
        return {name: table[COLUMN[name]] for name in self.statistics}

    def to_json(self, path: str | Path) -> None:
        """Write the record as JSON (NaN as null), atomically (``records.write_json``)."""
        write_json(path, self.to_dict(), self.layer_names, self.every)

    def to_csv(self, path: str | Path) -> None:
        """Write the record in long format, one line per (step, layer) (``records.write_csv``)."""
        write_csv(path, self.to_dict(), self.layer_names, self.statistics)
