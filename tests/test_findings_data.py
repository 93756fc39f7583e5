"""docs/findings.md against the data it quotes: every table and every number taken from a report
is recomputed here from the committed results.csv (docs/reports/<preset>/), with the test's own
statistics (SciPy's t distribution and Spearman, its own Holm correction and permutation test),
not with ``tinynormact.experiments.analysis``.

A table is tied to its data by the comment line above it, ``<!-- data: PRESET accuracy -->``;
each of its cells is parsed and compared at the precision printed. A number in the prose is
tied to its data by ``check_claims``: a pattern that must match the page (its whitespace
collapsed) exactly once, and the values its groups must have. ``test_a_changed_number_is_caught``
changes numbers of the page and checks that each change is reported.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "findings.md"
REPORTS = ROOT / "docs" / "reports"
ARCH = {"MLP": "mlp", "ResMLP": "resmlp", "1-D ResNet": "resnet1d"}
FORMS = ("vanilla", "static", "adaptive")
PERMUTATIONS, SIGMAS = 20000, 5.0
CHANCE = (0.08, 0.13)  # "at chance" on the page: every run's test accuracy in this range (10 classes)


# --- the data, recomputed ---------------------------------------------------------------------


def load(preset: str) -> list[dict]:
    with open(REPORTS / preset / "results.csv") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for key in ("final_test_acc", "final_train_loss", "mean_train_loss", "seconds"):
            row[key] = float(row[key]) if row[key] else math.nan
        for key in ("gain_deviation", "log_kappa"):
            row[key] = abs(float(row[key]))
    return rows


def runs(rows, arch, act, form, trained=True):
    return [
        r
        for r in rows
        if (r["architecture"], r["activation"], r["form"]) == (arch, act, form)
        and (not trained or r["outcome"] == "trained")
    ]


def group_accuracy(rows, arch, act, form) -> tuple[list[float], int]:
    """(test accuracies in % of the runs that trained, number of runs)."""
    return [100 * r["final_test_acc"] for r in runs(rows, arch, act, form)], len(
        runs(rows, arch, act, form, False)
    )


def paired(rows, arch, act, form, column="final_test_acc", scale=100.0) -> list[float]:
    """form minus vanilla, seed by seed, over the seeds where both trained."""
    base = {r["seed"]: r[column] for r in runs(rows, arch, act, "vanilla")}
    return [scale * (r[column] - base[r["seed"]]) for r in runs(rows, arch, act, form) if r["seed"] in base]


def t_interval(diffs, level=0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the t interval, and nothing for fewer than 2 pairs."""
    n, mean = len(diffs), float(np.mean(diffs))
    half = scipy.stats.t.ppf(0.5 + level / 2, n - 1) * np.std(diffs, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def t_p_value(diffs) -> float:
    n = len(diffs)
    t = np.mean(diffs) / (np.std(diffs, ddof=1) / math.sqrt(n))
    return float(2 * scipy.stats.t.sf(abs(t), n - 1))


def holm_step_down(p: dict) -> dict:
    """Holm's correction, written out: sort, multiply the k-th smallest by m - k, keep monotone."""
    order, corrected, running = sorted(p, key=p.get), {}, 0.0
    for k, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * p[key]))
        corrected[key] = running
    return corrected


def differences(rows) -> dict:
    """{(arch, act, form): (pairs, mean, low, high, p, p_holm)} over every normalized form, Holm
    across the differences with two or more pairs."""
    groups = sorted({(r["architecture"], r["activation"], r["form"]) for r in rows if r["form"] != "vanilla"})
    table = {}
    for key in groups:
        diffs = paired(rows, *key)
        if len(diffs) >= 2:
            table[key] = (len(diffs), *t_interval(diffs), t_p_value(diffs))
        elif diffs:
            table[key] = (1, diffs[0], math.nan, math.nan, math.nan)
    holm = holm_step_down({k: v[4] for k, v in table.items() if v[0] >= 2})
    return {k: (*v, holm.get(k, math.nan)) for k, v in table.items()}


def mean_loss(rows, arch, act, form) -> float:
    losses = [r["mean_train_loss"] for r in runs(rows, arch, act, form)]
    return float(np.mean(losses)) if losses else math.nan


def permutation_p(points_by_form: dict, observed: float, rng, permutations: int) -> float:
    """Two-sided p of the mean within-form Spearman under random permutations within forms
    (Spearman as the Pearson correlation of ranks, all permutations at once)."""
    null = np.zeros(permutations)
    for x, y in points_by_form.values():
        rx, ry = scipy.stats.rankdata(x), scipy.stats.rankdata(y)
        shuffled = rng.permuted(np.broadcast_to(ry, (permutations, len(ry))), axis=1)
        cx, cy = rx - rx.mean(), shuffled - shuffled.mean(axis=1, keepdims=True)
        null += cy @ cx / np.sqrt((cx @ cx) * (cy * cy).sum(axis=1))
    null /= len(points_by_form)
    return (np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1) / (permutations + 1)


def property_tests(rows, permutations=None) -> dict:
    """{(arch, measure): (spearman per form, mean, p, p_holm, pooled, vanilla indicator)}."""
    rng, results = np.random.default_rng(11), {}
    for arch in dict.fromkeys(r["architecture"] for r in rows):
        for measure in ("gain_deviation", "log_kappa"):
            by_form, pooled_x, pooled_y, indicator = {}, [], [], []
            for form in FORMS:
                acts = [a for a in dict.fromkeys(r["activation"] for r in rows) if runs(rows, arch, a, form)]
                x = [runs(rows, arch, a, form)[0][measure] for a in acts]
                y = [mean_loss(rows, arch, a, form) for a in acts]
                pooled_x, pooled_y, indicator = (
                    pooled_x + x,
                    pooled_y + y,
                    indicator + [form == "vanilla"] * len(x),
                )
                if len(x) >= 3 and len(set(x)) > 1:
                    by_form[form] = (x, y)
            within = {f: scipy.stats.spearmanr(x, y).statistic for f, (x, y) in by_form.items()}
            mean = float(np.mean(list(within.values())))
            p = permutation_p(by_form, mean, rng, permutations or PERMUTATIONS)
            pooled = scipy.stats.spearmanr(pooled_x, pooled_y).statistic
            vanilla = scipy.stats.spearmanr(indicator, pooled_y).statistic
            results[arch, measure] = [within, mean, p, pooled, vanilla]
    holm = holm_step_down({k: v[2] for k, v in results.items()})
    return {k: (*v, holm[k]) for k, v in results.items()}


# --- the page, parsed ---------------------------------------------------------------------------

NUMBER = r"[+-]?\d+(?:\.\d+)?"


def close(printed: str, value: float) -> bool:
    """``printed`` is ``value`` at the precision printed (half a unit of its last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return math.isfinite(value) and abs(float(printed) - value) <= 0.5 * 10**-decimals + 1e-6


def check_group_cell(text: str, rows, arch, act, form) -> list[str]:
    accuracies, n = group_accuracy(rows, arch, act, form)
    failed, problems = n - len(accuracies), []
    match = re.fullmatch(
        rf"(?:(?P<mean>{NUMBER})(?: \+- (?P<std>{NUMBER}))?)?\s*"
        r"(?:\(?(?P<failed>\d+)/(?P<n>\d+) failed to train\)?)?(?P<chance> \(at chance\))?",
        text,
    )
    if not match:
        return [f"{arch} {act} {form}: cannot read {text!r}"]
    expected_failed = f"{failed}/{n}" if failed else None
    found_failed = f"{match['failed']}/{match['n']}" if match["failed"] else None
    if found_failed != expected_failed:
        problems.append(f"{arch} {act} {form}: {text!r} but {failed}/{n} failed to train")
    if accuracies and not (match["mean"] and close(match["mean"], np.mean(accuracies))):
        problems.append(f"{arch} {act} {form}: {text!r}, mean {np.mean(accuracies):.2f}")
    if len(accuracies) >= 2 and not (match["std"] and close(match["std"], np.std(accuracies, ddof=1))):
        problems.append(f"{arch} {act} {form}: {text!r}, std {np.std(accuracies, ddof=1):.2f}")
    if match["chance"] and not all(CHANCE[0] * 100 <= a <= CHANCE[1] * 100 for a in accuracies):
        problems.append(f"{arch} {act} {form}: 'at chance' but accuracies {accuracies}")
    return problems


def check_difference_cell(text: str, difference) -> list[str]:
    if difference is None:
        return [] if text == "n/a" else [f"{text!r} where no pair trained"]
    pairs, mean, low, high, _, holm = difference
    if pairs == 1:
        match = re.fullmatch(rf"({NUMBER}) \(1 pair\)", text)
        return [] if match and close(match[1], mean) else [f"{text!r}: one pair, {mean:+.2f}"]
    match = re.fullmatch(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\](\*?)", text)
    if not match:
        return [f"cannot read {text!r}"]
    printed = [match[1], match[2], match[3]]
    if not all(close(p, v) for p, v in zip(printed, (mean, low, high), strict=True)):
        return [f"{text!r}: {mean:+.2f} [{low:+.2f}, {high:+.2f}]"]
    if bool(match[4]) != (holm < 0.05):
        return [f"{text!r}: Holm p = {holm:.4f}"]
    return []


def tables(page: str):
    """(preset, kind, header, rows of cells) for every table under a data comment."""
    for match in re.finditer(r"<!-- data: (\S+) (\S+) -->\n((?:\|.*\|\n)+)", page):
        lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in match[3].splitlines()]
        yield match[1], match[2], lines[0], lines[2:]


def check_accuracy_table(preset: str, header, cells) -> list[str]:
    rows, problems = load(preset), []
    table = differences(rows)
    expected = {(r["architecture"], r["activation"]) for r in rows}
    seen = set()
    for line in cells:
        row = dict(zip(header, line, strict=True))
        arch, act = ARCH[row["arch"]], row["activation"]
        seen.add((arch, act))
        for form in FORMS:
            problems += check_group_cell(row[form], rows, arch, act, form)
        for column in header[5:]:
            form = column.split(" - ")[0]
            found = check_difference_cell(row[column], table.get((arch, act, form)))
            problems += [f"{arch} {act} {form}: {p}" for p in found]
    if seen != expected:
        problems.append(f"{preset}: table rows {sorted(seen ^ expected)} differ from the data's")
    return problems


# --- the numbers in the prose ---------------------------------------------------------------


def family(rows) -> dict:
    return {k: v for k, v in differences(rows).items() if v[0] >= 2}


def convergence(rows, arch, act, form) -> str:
    diffs = paired(rows, arch, act, form, "mean_train_loss", 1.0)
    _, low, high = t_interval(diffs)
    return "faster" if high < 0 else "slower" if low > 0 else "not distinguishable"


def verdicts(rows, arch, form="static") -> dict:
    acts = dict.fromkeys(r["activation"] for r in rows)
    out = defaultdict(list)
    for act in acts:
        out[convergence(rows, arch, act, form)].append(act)
    return out


def median_epochs(rows, arch, act, form) -> float:
    return float(
        np.median(
            [float(r["epochs_to_target"]) for r in runs(rows, arch, act, form) if r["epochs_to_target"]]
        )
    )


def probe() -> list[dict]:
    """docs/reports/full/batch-reading/probe_adaptive.txt: one line per (activation, option, seed)."""
    lines = (REPORTS / "full" / "batch-reading" / "probe_adaptive.txt").read_text().splitlines()
    out = []
    for line in lines:
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 6 and fields[2].startswith("seed"):
            numbers = [float(f.split()[-1]) for f in fields[3:]]
            out.append(
                {
                    "activation": fields[0],
                    "option": fields[1],
                    **dict(zip(("best", "final", "loss"), numbers, strict=True)),
                }
            )
    return out


def adaptive_mlp(rows, trained: bool | None = None) -> list[dict]:
    return [
        r
        for r in rows
        if r["architecture"] == "mlp"
        and r["form"] == "adaptive"
        and (trained is None or (r["outcome"] == "trained") == trained)
    ]


def lpt_minutes(seconds, workers: int) -> float:
    """Longest-first onto the least-loaded worker: the makespan in minutes."""
    loads = [0.0] * workers
    for t in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += t
    return max(loads) / 60


def words(names) -> str:
    """'a, b and c'."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


class PValue(float):
    """A permutation p-value: the report's rests on 20000 permutations and this test's on
    ``PERMUTATIONS``, so the two may differ by their Monte Carlo errors, times up to ``factor``
    after Holm's correction."""

    def __new__(cls, value: float, factor: int = 1):
        self = super().__new__(cls, value)
        self.factor = factor
        return self

    def tolerance(self) -> float:
        p = float(self)
        return SIGMAS * self.factor * math.sqrt(p * (1 - p) * (1 / 20000 + 1 / PERMUTATIONS))


def _quick_claims(q):
    fam, props = family(q), property_tests(q)
    failed = sorted((r for r in q if r["outcome"] != "trained"), key=lambda r: r["seed"])
    strong = [k for k, v in fam.items() if v[4] < 0.05 and v[5] >= 0.05]
    conv = [convergence(q, *k) for k in fam]
    return [
        (
            r"(\d+) differences have two or more pairs\. (\d+) of them have p < 0\.05 on their\s+own, "
            r"and (\d+) survive",
            [len(fam), sum(v[4] < 0.05 for v in fam.values()), sum(v[5] < 0.05 for v in fam.values())],
        ),
        (
            r"The\s+other (\d+) with p < 0\.05 point the same way in every seed",
            [len(strong) if all(len({np.sign(d) for d in paired(q, *k)}) == 1 for k in strong) else -1],
        ),
        (
            r"(\d+) of the (\d+) adaptive sigmoid MLPs failed to train",
            [len(failed), len(runs(q, "mlp", "sigmoid", "adaptive", False))],
        ),
        (
            r"train losses were (\d+) and (\d+), against (\S+) and (\S+) at initialization, and their "
            r"test accuracy\s+was (\S+)% and (\S+)%\.",
            [
                failed[0]["final_train_loss"],
                failed[1]["final_train_loss"],
                float(failed[0]["initial_train_loss"]),
                float(failed[1]["initial_train_loss"]),
                100 * failed[0]["final_test_acc"],
                100 * failed[1]["final_test_acc"],
            ],
        ),
        (r"faster than vanilla in (\d+) of the (\d+)\s+comparisons", [conv.count("faster"), len(conv)]),
        (
            r"The (static relu) MLP and the (adaptive sigmoid) residual MLP\s+are not distinguishable",
            [" ".join(k[::-1][:2]) for k, c in zip(fam, conv, strict=True) if c != "faster"],
        ),
        (r"corrected p = (\S+) for all four", [PValue(max(v[5] for v in props.values()), len(props))]),
        (r"gives a Spearman\s+correlation of (\S+) between", [props["mlp", "gain_deviation"][3]]),
        (r"alone already gives (\S+)\.", [props["mlp", "gain_deviation"][4]]),
        (
            r"mean within-form correlation is (\S+) to (\S+), with",
            [min(v[1] for v in props.values()), max(v[1] for v in props.values())],
        ),
        (
            r"correlation is (\S+) for \|rho - 1\| \+ \|rho' - 1\| and (\S+) for \|log kappa\|",
            [props["mlp", "gain_deviation"][0]["vanilla"], props["mlp", "log_kappa"][0]["vanilla"]],
        ),
    ]


def _count_names_losses(subset, rows) -> list:
    """[how many runs, their activations in the data's order as words, least and largest final loss]."""
    order = [r["activation"] for r in rows]
    names = sorted({r["activation"] for r in subset}, key=order.index)
    losses = [r["final_train_loss"] for r in subset]
    return [len(subset), words(names), min(losses), max(losses)]


def _full_claims(f):
    fam, props = family(f), property_tests(f)
    mlp_verdicts, res_verdicts = verdicts(f, "mlp"), verdicts(f, "resmlp")
    failed_mlp, trained_mlp = adaptive_mlp(f, False), adaptive_mlp(f, True)
    res = [r for r in f if r["architecture"] == "resmlp" and r["form"] == "adaptive"]
    res_diffs = [-v[1] for k, v in differences(f).items() if k[0] == "resmlp" and k[2] == "adaptive"]
    seconds = [r["seconds"] for r in f]
    gelu = {
        a: np.mean([r["seconds"] for r in f if (r["architecture"], r["activation"]) == (a, "gelu")])
        for a in ("mlp", "resmlp")
    }
    return [
        (
            r"That is (\d+) runs, of which (\d+) completed",
            [len(f), sum(r["status"] == "completed" for r in f)],
        ),
        (
            r"Two of its differences survive the correction across the (\d+)\.",
            [len(fam) if sum(v[5] < 0.05 for k, v in fam.items() if k[2] == "static") == 2 else -1],
        ),
        (
            r"point estimate is below vanilla\s+for (\d+) of the (\d+) activations",
            [sum(v[1] < 0 for k, v in differences(f).items() if k[0] == "resmlp" and k[2] == "static"), 10],
        ),
        (
            r"faster for (\d+) of the 10 activations \(([a-z,\s]+)\) and slower for (\w+)\.",
            [
                len(mlp_verdicts["faster"]),
                ", ".join(mlp_verdicts["faster"]),
                " ".join(mlp_verdicts["slower"]),
            ],
        ),
        (
            r"not distinguishable for (\d+) \(([a-z, ]+)\)\.",
            [len(mlp_verdicts["not distinguishable"]), ", ".join(mlp_verdicts["not distinguishable"])],
        ),
        (
            r"are (\d+), (\d+) and (\d+) for the static swish, gelu\s+and mish, against (\d+), (\d+) and "
            r"(\d+) for vanilla",
            [
                median_epochs(f, "mlp", a, form)
                for form in ("static", "vanilla")
                for a in ("swish", "gelu", "mish")
            ],
        ),
        (
            r"In the residual MLP it is slower for (\d+) of the 10, faster for (\w+) and not "
            r"distinguishable\s+for (\w+)\.",
            [
                len(res_verdicts["slower"]),
                " ".join(res_verdicts["faster"]),
                " ".join(res_verdicts["not distinguishable"]),
            ],
        ),
        (
            r"Each of its (\d+) plain-MLP runs ended at chance \(test accuracy\s+(\S+)% to (\S+)%\)",
            [
                len(adaptive_mlp(f))
                if all(CHANCE[0] <= r["final_test_acc"] <= CHANCE[1] for r in adaptive_mlp(f))
                else -1,
                100 * min(r["final_test_acc"] for r in adaptive_mlp(f)),
                100 * max(r["final_test_acc"] for r in adaptive_mlp(f)),
            ],
        ),
        (
            r"(\d+) failed to train \(([a-z,\s]+)\): the final train loss was (\d+) to\s+(\d+)\.",
            _count_names_losses(failed_mlp, f),
        ),
        (
            r"The other (\d+) \(([a-z,\s]+)\) collapsed to a constant output, with a\s+final train loss "
            r"of (\S+) to (\S+) \(ln 10",
            _count_names_losses(trained_mlp, f),
        ),
        (
            r"In the residual MLP, (\d+) of the (\d+) runs failed to train, and the rest ended (\d+) to "
            r"(\d+) points",
            [sum(r["outcome"] != "trained" for r in res), len(res), min(res_diffs), max(res_diffs)],
        ),
        (
            r"correlations are (\S+) to (\S+), with Holm-corrected permutation p-values from (\S+) to "
            r"(\S+)\.",
            [
                min(v[1] for v in props.values()),
                max(v[1] for v in props.values()),
                PValue(min(v[5] for v in props.values()), len(props)),
                PValue(max(v[5] for v in props.values()), len(props)),
            ],
        ),
        (
            r"The 300 runs took (\d+) run-seconds \((\S+) CPU-hours\), (\d+) to (\d+) s per run",
            [sum(seconds), sum(seconds) / 3600, min(seconds), max(seconds)],
        ),
        (
            r"at (\d+) s \(residual MLP\) and (\d+) s \(MLP\) per run on average",
            [gelu["resmlp"], gelu["mlp"]],
        ),
        (r"least-loaded of 16 workers gives (\S+) minutes", [lpt_minutes(seconds, 16)]),
    ]


SIGMOID_MLP = ("mlp", "sigmoid", "adaptive")


def _full_rerun_claims(f, first):
    """The rerun of the full preset with the centred output reading, and how it compares with
    the first run and with the uncentred output reading's adaptive column."""
    fam = family(f)
    adaptive = {k: v for k, v in fam.items() if k[2] == "adaptive"}
    mean = {k[:2]: v[1] for k, v in adaptive.items()}
    runs_of = [r for r in f if r["form"] == "adaptive"]
    at_chance = [r for r in runs_of if CHANCE[0] <= r["final_test_acc"] <= CHANCE[1]]
    flagged = [r for r in runs_of if r["flags"]]
    survive = {k[:2]: v[1] for k, v in adaptive.items() if v[5] < 0.05}
    survivors = {k[:2]: v[1] for k, v in fam.items() if k[2] == "static" and v[5] < 0.05}
    named = [("mlp", "softplus"), ("resmlp", "gelu"), ("resmlp", "softsign")]
    uncentred = family(load("full/output-reading"))

    def sigmoid_mlp(rows):
        return [r for r in rows if (r["architecture"], r["activation"], r["form"]) == SIGMOID_MLP]

    sigmoid_before, sigmoid_now = sigmoid_mlp(load("full/output-reading")), sigmoid_mlp(f)

    def key(r):
        return r["architecture"], r["activation"], r["form"], r["seed"]

    before = {key(r): r for r in first}
    normal_forms = [r for r in f if r["form"] != "adaptive"]
    differ = [r for r in normal_forms if r["final_train_loss"] != before[key(r)]["final_train_loss"]]
    (relu,) = [r for r in f if key(r) == ("mlp", "relu", "vanilla", "0")]
    seconds = [r["seconds"] for r in f]
    sigmoid_trains = all(r["final_test_acc"] > 0.5 for r in sigmoid_now)
    at_chance_before = all(CHANCE[0] <= r["final_test_acc"] <= CHANCE[1] for r in sigmoid_before)
    return [
        (
            r"The rerun has (\d+) runs, (\d+) of them completed",
            [len(f), sum(r["status"] == "completed" for r in f)],
        ),
        (
            r"(\d+) of its 100 runs ended at chance, and none was flagged\. (\d+) of\s+its (\d+) "
            r"differences",
            [len(at_chance) if not flagged else -1, len(survive), len(adaptive)],
        ),
        (
            r"in the MLP and both gains: sigmoid \((\S+) points\), where vanilla and static are at chance "
            r"and\s+the centred adaptive form trains all (\d+) seeds, and softplus \((\S+)\)",
            [
                survive.get(("mlp", "sigmoid")) if set(survive) == {("mlp", "sigmoid"), ("mlp", "softplus")}
                else None,
                len(sigmoid_now) if sigmoid_trains else -1,
                survive.get(("mlp", "softplus")),
            ],
        ),
        (
            r"below vanilla for (\d+) of the 10 MLP activations, the largest for relu \((\S+) points\), "
            r"and above\s+vanilla for (\d+) of the 10 residual-MLP",
            [
                sum(v < 0 for k, v in mean.items() if k[0] == "mlp"),
                mean["mlp", "relu"] if min(v for k, v in mean.items() if k[0] == "mlp") == mean["mlp", "relu"]
                else None,
                sum(v > 0 for k, v in mean.items() if k[0] == "resmlp"),
            ],
        ),
        (
            r"column had the sigmoid MLP at chance and relu (\S+) points below vanilla",
            [-uncentred[("mlp", "relu", "adaptive")][1] if at_chance_before else None],
        ),
        (
            r"survive the correction: softplus in the MLP\s+\((\S+) points\), gelu \((\S+)\) and softsign "
            r"\((\S+)\)",
            [survivors.get(pair) if set(survivors) == set(named) else None for pair in named],
        ),
        (
            r"ends at a train loss of\s+(\S+) here and (\S+) in the first run, and (\d+) of the 200",
            [relu["final_train_loss"], before[key(relu)]["final_train_loss"], len(differ)],
        ),
        (
            r"its 300 runs took (\d+) run-seconds, (\d+) to (\d+) s each",
            [sum(seconds), min(seconds), max(seconds)],
        ),
    ]


def _probe_claims():
    lines = probe()
    swish_other = [
        p
        for p in lines
        if p["activation"] == "swish" and not p["option"].startswith(("default", "differentiate"))
    ]
    swish_grad = [p for p in lines if p["activation"] == "swish" and p["option"].startswith("differentiate")]
    tanh = [p for p in lines if p["activation"] == "tanh"]
    return [
        (
            r"each ended swish at a\s+constant output \((\S+)% test accuracy, train loss (\S+)\)",
            [
                100 * max(p["final"] for p in swish_other)
                if len({p["final"] for p in swish_other}) == 1
                else -1,
                max(p["loss"] for p in swish_other) if len({p["loss"] for p in swish_other}) == 1 else -1,
            ],
        ),
        (
            r"kept swish learning: (\S+)% and\s+(\S+)% test accuracy at best, (\S+)% and (\S+)% at the end",
            [
                100 * swish_grad[0]["best"],
                100 * swish_grad[1]["best"],
                100 * swish_grad[0]["final"],
                100 * swish_grad[1]["final"],
            ],
        ),
        (
            r"no option trained: every run ended with a\s+final train loss of (\d+) to (\d+) and at "
            r"(\S+)% to (\S+)% test accuracy \(at best (\S+)% to (\S+)%\)",
            [
                min(p["loss"] for p in tanh),
                max(p["loss"] for p in tanh),
                100 * min(p["final"] for p in tanh),
                100 * max(p["final"] for p in tanh),
                100 * min(p["best"] for p in tanh),
                100 * max(p["best"] for p in tanh),
            ],
        ),
    ]


def _theory_claims():
    from tinynormact import theory

    def unstable(act, rule):
        return [
            p.q for p in theory.fixed_points(theory.normalized(act, rule), 1.0) if p.stability == "unstable"
        ][0]

    def slope(act):
        return theory.q_map_slope(theory.normalized(act, "forward"), 1.0)

    return [
        (
            r"unstable fixed point at q\* = (\S+) for swish and\s+(\S+) for gelu",
            [unstable("swish", "balanced"), unstable("gelu", "balanced")],
        ),
        (r"with slope chi_q = (\S+) \(swish\) and (\S+) \(gelu\)", [slope("swish"), slope("gelu")]),
        (
            r"Under the backward rule\s+q\* = (\S+) and (\S+)\.",
            [unstable("swish", "backward"), unstable("gelu", "backward")],
        ),
        (
            r"forward gain\s+rho = (\S+) but a backward gain rho' = (\S+):",
            [theory.rho("softplus"), theory.rho_prime("softplus")],
        ),
    ]


def report_wall_time(preset: str) -> float:
    return float(re.search(r"wall time (\d+) s", (REPORTS / preset / "report.md").read_text())[1])


def _cnn_claims(c):
    swish = {
        f: {r["seed"]: 100 * r["final_test_acc"] for r in runs(c, "resnet1d", "swish", f)} for f in FORMS
    }
    gains = [swish[f][s] - swish["vanilla"][s] for f in ("static", "adaptive") for s in swish["vanilla"]]
    fam = family(c)
    return [
        (r"(\d+) runs, all of which trained", [len(c) if all(r["outcome"] == "trained" for r in c) else -1]),
        (
            r"vanilla swish in every one of the (\d+) seeds, by (\S+) to (\S+) points",
            [len(swish["vanilla"]) if min(gains) > 0 else -1, min(gains), max(gains)],
        ),
        (
            r"None of the (\d+) differences survives",
            [len(fam) if all(v[5] >= 0.05 for v in fam.values()) else -1],
        ),
    ]


def check_claims(page: str) -> list[str]:
    quick = _quick_claims(load("quick"))
    first = load("full/batch-reading")
    full = _full_claims(first) + _full_rerun_claims(load("full"), first)
    claims = (
        quick
        + full
        + _cnn_claims(load("cnn-quick"))
        + _probe_claims()
        + _theory_claims()
        + [
            (r"The run took (\d+) s of wall time on the 2-core machine while", [report_wall_time("quick")]),
            (r"The report's wall time\s+is (\d+) s", [report_wall_time("full/batch-reading")]),
            (r"The rerun's report gives a wall time of (\d+) s", [report_wall_time("full")]),
            (
                r"The run took (\d+) s of wall time on the 2-core machine, niced",
                [report_wall_time("cnn-quick")],
            ),
        ]
    )
    problems, text = [], " ".join(page.split())  # the prose as one line: wrapping does not matter
    for pattern, expected in claims:
        matches = list(re.finditer(pattern, text))
        if len(matches) != 1:
            problems.append(f"{pattern!r} matches the page {len(matches)} times, not once")
            continue
        for printed, value in zip(matches[0].groups(), expected, strict=True):
            if isinstance(value, str):
                ok = " ".join(printed.split()) == value
            elif isinstance(value, PValue):
                ok = (
                    abs(float(printed) - value) <= 0.5 * 10 ** -len(printed.split(".")[1]) + value.tolerance()
                )
            else:
                ok = close(printed.rstrip(".").strip(), float(value))
            if not ok:
                problems.append(f"{pattern!r}: the page says {printed!r}, the data {value!r}")
    return problems


def check_page(page: str) -> list[str]:
    problems = []
    for preset, kind, header, cells in tables(page):
        assert kind == "accuracy", kind
        problems += check_accuracy_table(preset, header, cells)
    return problems + check_claims(page)


# --- the tests ------------------------------------------------------------------------------------


def test_every_quoted_number_matches_the_committed_data() -> None:
    page = PAGE.read_text()
    assert [preset for preset, *_ in tables(page)] == ["quick", "full", "full/batch-reading", "cnn-quick"]
    assert check_page(page) == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("| MLP | elu | 50.5 +- 0.6 |", "| MLP | elu | 50.6 +- 0.6 |"),  # a mean
        ("| 56.6 +- 1.5 |", "| 56.6 +- 1.4 |"),  # a std
        ("+5.2 [+5.1, +5.4]*", "+5.2 [+5.1, +5.5]*"),  # an interval
        ("-11.8 [-13.0, -10.5]*", "-11.8 [-13.0, -10.5]"),  # a Holm survivor
        ("| -6.0 [-11.2, -0.9] |", "| -6.0 [-11.2, -0.9]* |"),  # a star where Holm gives none
        ("25.7 +- 11.5 (2/5 failed to train)", "25.7 +- 11.5 (3/5 failed to train)"),  # a count
        ("9.6 +- 0.6 (at chance)", "9.9 +- 0.6 (at chance)"),
        ("In the residual MLP, 31 of the 50", "In the residual MLP, 26 of the 50"),  # the old error
        ("correlation of +0.73 between", "correlation of +0.75 between"),  # a correlation
        ("corrected p = 0.77 for all four", "corrected p = 0.57 for all four"),  # a permutation p
        ("faster than vanilla in 21 of the 23", "faster than vanilla in 23 of the 23"),
        ("and slower for selu.", "and slower for tanh."),  # a verdict
        ("q* = 1.20 for swish", "q* = 1.17 for swish"),  # a stability number
        ("and at 7.3% to 17.6%", "and at 7.3% to 9.2%"),  # the probe's "at chance" for tanh
        ("0 of its 100 runs ended at chance", "1 of its 100 runs ended at chance"),  # the rerun's count
        ("| -4.2 [-6.8, -1.6] |", "| -4.2 [-6.8, -1.6]* |"),  # the rerun's table: a star Holm does not give
        ("relu 11.4 points below vanilla", "relu 11.8 points below vanilla"),  # the uncentred column
        ("0.06584 here and 0.07602", "0.06584 here and 0.06584"),  # rerun against the first run
    ],
)
def test_a_changed_number_is_caught(old: str, new: str) -> None:
    page = PAGE.read_text()
    assert page.count(old) == 1, old
    assert check_page(page.replace(old, new)) != []
