"""The variance theory's speed: the whole gains table, and the profiles of deep networks.

The target (issue 3) is the gains table of every registered activation, all quantities, at
q = 1, in under 50 ms. The table printed last is the gains table itself.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from tinynormact import activations, theory

TARGET_MS = 50.0


def _median_ms(fn: Callable[[], object], repeats: int = 20) -> float:
    fn()  # warm up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    cases = [
        (f"gains_table, {len(activations.names())} activations, q = 1", theory.gains_table),
        ("gaussian_moments(swish), 1000 values of q", lambda: theory.gaussian_moments("swish", [1.0] * 1000)),
        ("mlp_profile(tanh), depth 100", lambda: theory.mlp_profile("tanh", [256] * 101, 1.5)),
        ("residual_profile(relu), 50 blocks x 2", lambda: theory.residual_profile("relu", 256, 50, 2, 0.5)),
        ("critical_weight_var(tanh, bias_var=0.1)", lambda: theory.critical_weight_var("tanh", 0.1)),
        ("solve_selu()", theory.solve_selu),
    ]
    width = max(len(label) for label, _ in cases)
    print(f"{'computation'.ljust(width)}  median ms")
    for label, fn in cases:
        print(f"{label.ljust(width)}  {_median_ms(fn):9.2f}")
    table_ms = _median_ms(theory.gains_table)
    verdict = "meets" if table_ms < TARGET_MS else "MISSES"
    print(f"\ngains table: {table_ms:.2f} ms, {verdict} the {TARGET_MS:.0f} ms target\n")
    print(theory.format_gains_table(theory.gains_table()))
