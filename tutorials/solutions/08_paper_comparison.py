"""Solutions to the exercises of tutorial 8 (the paper's comparison), each one checked.

Run it like a tutorial: ``python tutorials/solutions/08_paper_comparison.py``. The sweeps here
are small (a few epochs on 1000 examples): they show how to get each answer, and their numbers
mean little. The work sits under ``if __name__ == "__main__":`` as tutorial 8 explains, so that
the same file can run its sweeps on worker processes (``jobs > 1``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tutorials folder: _common

import dataclasses  # noqa: E402 (after the path)
import math  # noqa: E402

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
from _common import OUT, plt, show, size  # noqa: E402

from tinynormact import theory  # noqa: E402
from tinynormact.experiments import PRESETS, reproduce  # noqa: E402
from tinynormact.experiments.report import summary_rows  # noqa: E402

SEEDS = size((0, 1, 2), (0, 1))
SMALL = {  # a shrunken quick preset: one architecture, small data, few epochs
    "architectures": ("mlp",),
    "dataset_options": {"num_samples": 1000},
    "depths": {"mlp": (6,)},
    "widths": (32,),
    "epochs": size(4, 1),
    "propagation_depth": 6,
    "propagation_width": 64,
    "propagation_batch": 64,
}


# Exercise 1: sigmoid gains most from centring (kappa 0.153 -> kappa_c 1.03).
def centring() -> None:
    """Exercise 1: kappa_c against kappa for the quick preset's activations, then a run."""
    quick = PRESETS["quick"]
    gains = {a: (theory.kappa(a), theory.rho_prime(a) / theory.rho_c(a)) for a in quick.activations}
    gain = {a: abs(math.log(k)) - abs(math.log(kc)) for a, (k, kc) in gains.items()}
    best = max(gain, key=gain.get)
    print("1. |log kappa| - |log kappa_c| per activation:", {a: round(g, 3) for a, g in gain.items()})
    assert best == "sigmoid"  # 0.153 -> 1.03; relu, swish and gelu move away from 1
    preset = dataclasses.replace(quick, name="centred", activations=("sigmoid", "relu"), seeds=(0,), **SMALL)
    plain = reproduce(preset, OUT / "solution_08_plain", jobs=1, force=True, progress=False)
    centred = reproduce(
        dataclasses.replace(preset, center=True),
        OUT / "solution_08_centred",
        jobs=1,
        force=True,
        progress=False,
    )
    for name, results in (("uncentred", plain), ("centred", centred)):
        rows = {(r["activation"], r["form"]): r["mean_train_loss"] for r in results["aggregates"]}
        print(f"   {name}: mean train loss, static sigmoid {rows[('sigmoid', 'static')]:.3f}")


# Exercise 2: no trend can be read from three activations.
def paired_against_kappa() -> dict:
    """Exercise 2: paired difference (adaptive - vanilla) against |log kappa|, from results.json."""
    preset = dataclasses.replace(
        PRESETS["quick"],
        name="paired",
        activations=("relu", "tanh", "sigmoid"),
        seeds=SEEDS,
        **SMALL,
    )
    results = reproduce(preset, OUT / "solution_08_paired", jobs=1, force=True, progress=False)
    rows = [r for r in results["paired"] if r["architecture"] == "mlp" and r["form"] == "adaptive"]
    x = [abs(math.log(theory.kappa(r["activation"]))) for r in rows]
    y = [100 * r["diff_mean"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, y, "o")
    for r, xi, yi in zip(rows, x, y, strict=True):
        ax.annotate(r["activation"], (xi, yi), fontsize=8)
    ax.set_xlabel(r"$|\log\kappa(1)|$ of the vanilla activation")
    ax.set_ylabel("adaptive - vanilla (points)")
    show(fig, "solution_08_paired_vs_kappa.png")
    rho = scipy.stats.spearmanr(x, y).statistic
    print(
        f"2. Spearman of the paired difference against |log kappa|: {rho:+.2f} over {len(rows)} activations"
    )
    assert len(rows) == 3  # three points cannot show a trend: with n = 3 even |rho| = 1 has p = 0.33
    return results


# Exercise 3: 18 seeds.
def seeds_needed(sd: float = 2.0, difference: float = 1.0) -> int:
    """Exercise 3: the smallest n whose 95% t interval of the mean difference is below ``difference``."""
    n = 2
    while scipy.stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) >= difference:
        n += 1
    return n


if __name__ == "__main__":
    centring()
    results = paired_against_kappa()
    n = seeds_needed()
    normal_approximation = (1.96 * 2.0 / 1.0) ** 2  # 15.4: the t distribution needs a few more
    print(f"3. {n} seeds (the normal approximation says {normal_approximation:.1f})")
    assert n == 18 and n > normal_approximation

    # Exercise 4: with several seeds every paired row has one pair per seed and an interval; with
    # one seed there is one pair, no standard deviation, and so no interval and no test.
    header, _ = summary_rows(results)
    assert all(row["pairs"] == len(SEEDS) and np.isfinite(row["ci_low"]) for row in results["paired"])
    print(f"4. with {len(SEEDS)} seeds the table's paired columns get intervals:", header[-2:])
