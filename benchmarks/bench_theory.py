"""The variance theory's speed: the whole gains table, and the profiles of deep networks.

The target (issue 3) is the gains table of every registered activation, all quantities, at
q = 1, in under 50 ms. The table printed last is the gains table itself.
"""

from __future__ import annotations

from benchmarks.timing import median_seconds
from tinynormact import activations, theory

TARGET_MS = 50.0


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
        print(f"{label.ljust(width)}  {1e3 * median_seconds(fn, 20):9.2f}")
    table_ms = 1e3 * median_seconds(theory.gains_table, 20)
    verdict = "meets" if table_ms < TARGET_MS else "MISSES"
    print(f"\ngains table: {table_ms:.2f} ms, {verdict} the {TARGET_MS:.0f} ms target\n")
    print(theory.format_gains_table(theory.gains_table()))
