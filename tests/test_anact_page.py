"""docs/anact.md against the data it quotes: its two tables are recomputed here from the committed
results.csv files (docs/reports/anact-study/ and its done-when/), with the test's own arithmetic,
not with ``tinynormact.experiments.analysis``; issue 21's done-when ratio is checked on the data.
``test_a_changed_cell_is_caught`` shows a wrong number on the page fails the comparison."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "anact.md"
STUDY = ROOT / "docs" / "reports" / "anact-study"
NETWORKS = {"mlp": "MLP, 20 layers", "resmlp": "ResMLP, 8 blocks"}
BN_NETWORKS = {"mlp-bn": "MLP+BN, 20 layers", "resmlp-bn": "ResMLP+BN, 8 blocks"}
FOUR = ("swish", "tanh", "relu", "gelu")
UNIT_FORMS = ("vanilla", "adaptive-output", "adaptive-output-units", "adaptive-batch", "adaptive-batch-units")
BN_FORMS = ("vanilla", "static", "adaptive-output", "adaptive-batch")


def rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv") as file:
        return list(csv.DictReader(file))


STUDY_FORMS = tuple(dict.fromkeys(r["form"] for r in rows(STUDY)))  # the study's forms, in the CSV's order


def done_when_lines(data: list[dict]) -> list[str]:
    """The page's done-when table rows: final test accuracy (%) and adaptive / vanilla by seed."""
    acc = {(r["activation"], r["form"], r["seed"]): float(r["final_test_acc"]) for r in data}
    lines = []
    for act in ("swish", "tanh"):
        for seed in ("0", "1"):
            vanilla, adaptive = acc[(act, "vanilla", seed)], acc[(act, "adaptive", seed)]
            lines.append(
                f"| {act} | {seed} | {100 * vanilla:.2f} | {100 * adaptive:.2f} | {adaptive / vanilla:.3f} |"
            )
    return lines


def study_lines(
    data: list[dict], activations: tuple[str, ...], forms: tuple[str, ...], networks: dict = NETWORKS
) -> list[str]:
    """The page's study table rows: mean +- sample std (ddof 1) of the runs that trained."""
    lines = []
    for arch, network in networks.items():
        for act in activations:
            cells = []
            for form in forms:
                group = [
                    r for r in data if (r["architecture"], r["activation"], r["form"]) == (arch, act, form)
                ]
                trained = [100 * float(r["final_test_acc"]) for r in group if r["outcome"] == "trained"]
                failed = len(group) - len(trained)
                if len(trained) > 1:
                    failures = f" ({failed}/{len(group)} failed to train)" if failed else ""
                    cells.append(f"{np.mean(trained):.1f} +- {np.std(trained, ddof=1):.1f}{failures}")
                elif trained:
                    cells.append(f"{trained[0]:.1f} ({failed}/{len(group)} failed to train)")
                else:
                    cells.append(f"{failed}/{len(group)} failed to train")
            lines.append(f"| {network} | {act} | " + " | ".join(cells) + " |")
    return lines


def old_reading_lines(data: list[dict]) -> list[str]:
    """The page's old-reading table rows: accuracy, final train loss and the epochs of the first
    flag and of the first lambda at its ceiling, read from the flags column."""
    lines = []
    for r in data:
        epochs = [int(e) for e in re.findall(r"\(epoch (\d+)\)", r["flags"])]
        ceiling = [int(e) for e in re.findall(r"\(epoch (\d+)\): lambda at its ceiling", r["flags"])]
        cells = [
            r["activation"],
            r["seed"],
            f"{100 * float(r['final_test_acc']):.2f}",
            f"{float(r['final_train_loss']):.4g}",
            str(min(epochs)),
            str(min(ceiling)) if ceiling else "none",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def all_study_lines() -> list[str]:
    """The study tables: the preset's, a lambda per unit and batch norm first (a grid each)."""
    first = study_lines(rows(STUDY), FOUR, STUDY_FORMS)
    first += study_lines(rows(STUDY / "per-unit"), FOUR, UNIT_FORMS)
    return first + study_lines(rows(STUDY / "batch-norm"), FOUR, BN_FORMS, BN_NETWORKS)


DEFAULT_READING = "adaptive-output-centred"


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, written here (the library's is analysis.holm)."""
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(sorted(range(len(p_values)), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def decision_lines(data: list[dict]) -> list[str]:
    """The page's decision table: per form, runs that trained and runs flagged of its 40, mean
    final test accuracy over all 40 (a failed run at its accuracy), and the paired difference
    from the default reading over the 40 (architecture, activation, seed) pairs: mean, 95% t
    interval and Holm's p across the other forms."""
    acc = {
        (r["architecture"], r["activation"], r["seed"], r["form"]): float(r["final_test_acc"])
        for r in data
    }
    pairs = sorted({key[:3] for key in acc})
    others = [form for form in STUDY_FORMS if form != DEFAULT_READING]
    stats = {}
    for form in others:
        d = 100 * np.array([acc[(*k, form)] - acc[(*k, DEFAULT_READING)] for k in pairs])
        se = np.std(d, ddof=1) / np.sqrt(len(d))
        half = scipy.stats.t.ppf(0.975, len(d) - 1) * se
        stats[form] = (d.mean(), half, 2 * scipy.stats.t.sf(abs(d.mean() / se), len(d) - 1))
    holm = dict(zip(others, _holm([stats[f][2] for f in others]), strict=True))
    lines = []
    for form in STUDY_FORMS:
        runs = [r for r in data if r["form"] == form]
        trained = sum(r["outcome"] == "trained" for r in runs)
        flagged = sum(bool(r["flags"]) for r in runs)
        mean = 100 * np.mean([float(r["final_test_acc"]) for r in runs])
        if form == DEFAULT_READING:
            against = "the default | |"
        else:
            m, half, _ = stats[form]
            against = f"{m:+.1f} [{m - half:+.1f}, {m + half:+.1f}] | {holm[form]:.2g} |"
        lines.append(f"| {form} | {trained} of {len(runs)} | {flagged} | {mean:.1f} | {against}")
    return lines


def missing(lines: list[str], page: str) -> list[str]:
    return [line for line in lines if line not in page.splitlines()]


def test_the_default_adaptive_form_ends_within_0_9x_of_vanilla_in_the_committed_data() -> None:
    """Issue 21's done-when: the full preset's 20-layer MLP, seeds 0-1, 30 epochs, no flag."""
    data = rows(STUDY / "done-when")
    assert {(r["activation"], r["form"], r["seed"]) for r in data} == {
        (a, f, s) for a in ("swish", "tanh") for f in ("vanilla", "adaptive") for s in ("0", "1")
    }
    assert all(r["config_hash"] and r["status"] == "completed" and r["flags"] == "" for r in data)
    assert all(float(line.split("|")[-2]) >= 0.9 for line in done_when_lines(data))
    old = rows(STUDY / "old-reading")  # the same runs with estimate="batch": at chance (10 classes)
    assert len(old) == 4 and all(0.08 <= float(r["final_test_acc"]) <= 0.13 for r in old)


def test_the_pages_tables_are_the_committed_data() -> None:
    page = PAGE.read_text()
    assert missing(done_when_lines(rows(STUDY / "done-when")), page) == []
    assert missing(all_study_lines(), page) == []
    assert missing(decision_lines(rows(STUDY)), page) == []
    assert missing(old_reading_lines(rows(STUDY / "old-reading")), page) == []


CHANGES = [
    ("| 1.045 |", "| 1.054 |"),
    ("| 66.6 +- 1.3 |", "| 66.6 +- 1.4 |"),
    ("| -1.3 [-2.3, -0.3] | 0.029 |", "| -1.3 [-2.3, -0.3] | 0.29 |"),  # the decision table
    ("| 2.303 | 15 |", "| 2.303 | 16 |"),
    ("28.4 +- 14.8 (1/5 failed", "28.4 +- 14.8 (2/5 failed"),
    ("| 68.4 +- 2.2 |", "| 68.5 +- 2.2 |"),  # a lambda per unit
    ("| 79.5 +- 0.8 |", "| 79.5 +- 0.9 |"),  # batch norm first
]


@pytest.mark.parametrize(("old", "new"), CHANGES)
def test_a_changed_cell_is_caught(old: str, new: str) -> None:
    page = PAGE.read_text()
    assert old in page
    changed = page.replace(old, new, 1)  # the first table holding it
    lines = done_when_lines(rows(STUDY / "done-when")) + all_study_lines() + decision_lines(rows(STUDY))
    lines += old_reading_lines(rows(STUDY / "old-reading"))
    assert len(missing(lines, changed)) == 1


# --- the README's summary ---------------------------------------------------------------------

README = ROOT / "README.md"
FINDINGS = ROOT / "docs" / "findings.md"


def readme_problems(readme: str) -> list[str]:
    """The README's short findings against their sources on docs/findings.md (whose numbers
    tests/test_findings_data checks against the committed data): each quoted paired difference,
    the first run's residual-MLP failure count, and the rerun's adaptive counts and shortfall."""
    text, findings = " ".join(readme.split()), " ".join(FINDINGS.read_text().split())
    full = FINDINGS.read_text().split("## The full preset", 1)[-1].split("\n## ", 1)[0]
    problems = []
    rows_of = {
        "elu": "| MLP | elu |",
        "softplus": "| MLP | softplus |",
        "gelu": "| ResMLP | gelu |",
        "softsign": "| ResMLP | softsign |",
    }
    pattern = r"static (elu|softplus|gelu|softsign) [^(]*\(([+-]\d+\.\d)(?: points)?, `([\w-]+)`\)"
    for act, number, preset in re.findall(pattern, text):
        section = FINDINGS.read_text().split(f"## The {preset} preset", 1)[-1].split("\n## ", 1)[0]
        row = next((line for line in section.splitlines() if line.startswith(rows_of[act])), "no row")
        if f"| {number} [" not in row:
            problems.append(f"README's static {act} {number} ({preset}) is not docs/findings.md's {row}")
    count = re.search(r"(\d+) of its 50 residual-MLP runs failed to train", text)
    if count is None or f"{count[1]} of the 50 runs failed to train" not in findings:
        problems.append("README's residual-MLP failure count is not docs/findings.md's")
    learned = re.search(r"adaptive form learned in (\d+) of its 100 runs, none flagged", text)
    at_chance = f"{100 - int(learned[1])} of its 100 runs ended at chance, and none" if learned else "?"
    if learned is None or at_chance not in findings:
        problems.append("README's count of adaptive runs that learned is not docs/findings.md's")
    survive = re.search(
        r"(\d+) of its (\d+)\s+differences against vanilla survive Holm's correction, both gains: the "
        r"sigmoid MLP \(([+-]\d+\.\d)\s+points; vanilla and static are at chance there\) and the softplus "
        r"MLP \(([+-]\d+\.\d)\)",
        text,
    )
    quoted = (
        f"{survive[1]} of its {survive[2]} differences against vanilla survive Holm's correction"
        if survive
        else ""
    )
    if survive is None or quoted not in findings:
        problems.append("README's surviving adaptive differences are not docs/findings.md's")
    else:
        for act, number in (("sigmoid", survive[3]), ("softplus", survive[4])):
            row = next((line for line in full.splitlines() if line.startswith(f"| MLP | {act} |")), "")
            if not row.rstrip().endswith(f"| {number} [" + row.rsplit("[", 1)[-1]):
                problems.append(f"README's adaptive {act} {number} is not docs/findings.md's {row}")
    relu = re.search(r"relu in the 20-layer MLP \(([+-]\d+\.\d) points, not established\)", text)
    row = next((line for line in full.splitlines() if line.startswith("| MLP | relu |")), "")
    if relu is None or not row.endswith(f"| {relu[1]} [" + row.rsplit("[", 1)[-1]):
        problems.append(f"README's adaptive relu shortfall is not docs/findings.md's {row}")
    return problems


def test_the_readme_summary_is_its_sources() -> None:
    readme = README.read_text()
    text = " ".join(readme.split())
    assert len(re.findall(r"static (?:elu|softplus|gelu|softsign) [^(]*\([+-]\d+\.\d", text)) == 4
    assert readme_problems(readme) == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("+15.7", "+15.8"),
        ("(-6.3,", "(-6.2,"),
        ("(-5.9,", "(-5.0,"),
        ("31 of its 50", "26 of its 50"),
        ("learned in 100 of its", "learned in 99 of its"),
        ("2 of its 20 differences", "3 of its 20 differences"),
        ("(+64.8 points;", "(+64.6 points;"),
        ("(-4.2 points, not", "(-4.3 points, not"),
    ],
)
def test_a_changed_readme_number_is_caught(old: str, new: str) -> None:
    readme = " ".join(README.read_text().split())
    assert readme.count(old) == 1, old
    assert readme_problems(readme.replace(old, new)) != []


def test_the_pages_summary_of_the_full_rerun_is_its_data() -> None:
    """ "In short": the adaptive runs of docs/reports/full that learned (above chance), whether
    any was flagged, and the differences against vanilla that survive Holm's correction (from
    the report's own table, whose numbers tests/test_findings_data.py recomputes)."""
    data = [r for r in rows(ROOT / "docs" / "reports" / "full") if r["form"] == "adaptive"]
    learned = [r for r in data if float(r["final_test_acc"]) > 0.13]
    page = " ".join(PAGE.read_text().split())
    assert f"learning in {len(learned)} of its {len(data)} runs, none flagged" in page
    assert not any(r["flags"] for r in data)
    report = (ROOT / "docs" / "reports" / "full" / "report.md").read_text()
    starred = re.findall(r"^\| (MLP|ResMLP) +\| (\w+) .*\|([^|]*)\|\s*$", report, re.M)
    cells = [(arch, act, cell.strip()) for arch, act, cell in starred[:20]]
    survivors = sorted((arch, act, cell[0]) for arch, act, cell in cells if cell.endswith("*"))
    assert survivors == [("MLP", "sigmoid", "+"), ("MLP", "softplus", "+")]
    assert "with two differences against vanilla surviving Holm's correction, both gains" in page


def small_network_quotes(text: str) -> list[str]:
    """The page's quotes of small_network.txt: ranges over seeds 0-3 at lr 2e-3, and the centred
    and uncentred accuracies at lr 3e-3 (seeds 0 and 1, and the largest gap in seeds 2 and 3)."""
    runs = {}
    for line in text.splitlines():
        lr, seed, name, rest = (part.strip() for part in line.split("|"))
        reading = "old" if name.startswith("old") else "uncentred" if "uncentred" in name else "centred"
        accuracy = 100 * float(re.search(r"test accuracy (\S+),", rest)[1])
        flags = int(re.search(r"flags (\d+)", rest)[1])
        runs[(lr.split()[1], int(seed.split()[1]), reading)] = (accuracy, flags)

    def span(lr: str, reading: str) -> str:
        values = [runs[(lr, s, reading)][0] for s in range(4)]
        return f"{min(values):.1f}-{max(values):.1f}%"

    def at(seed: int, reading: str) -> float:
        return runs[("0.003", seed, reading)][0]

    flagged = ", every run flagged" if all(runs[("0.002", s, "old")][1] > 0 for s in range(4)) else ""
    gap = max(abs(at(s, "centred") - at(s, "uncentred")) for s in (2, 3))
    return [
        f"seeds 0-3 ({span('0.002', 'centred')} and {span('0.002', 'uncentred')} test",
        f"ends near chance ({span('0.002', 'old')}{flagged})",
        f"ends at {at(0, 'centred'):.1f}% and {at(1, 'centred'):.1f}% in seeds 0 and 1, against "
        f"{at(0, 'uncentred'):.1f}% and {at(1, 'uncentred'):.1f}% uncentred, and within {gap:.1f} points",
    ]


def test_the_small_network_quotes_are_its_output() -> None:
    quotes = small_network_quotes((STUDY / "small_network.txt").read_text())
    page = " ".join(PAGE.read_text().split())
    assert [q for q in quotes if q not in page] == []
    changed = page.replace("47.6% and 56.8%", "47.6% and 58.6%")
    assert [q for q in quotes if q not in changed] != []


def test_the_batch_norm_and_per_unit_prose_is_their_data() -> None:
    """The counts the page quotes of the two 5-seed grids, from their CSVs and reports."""
    page = " ".join(PAGE.read_text().split())
    bn = rows(STUDY / "batch-norm")
    assert len(bn) == 160 and all(r["outcome"] == "trained" and not r["flags"] for r in bn)
    assert f"every reading trained, in all {len(bn)} runs, and no run was flagged" in page
    report = (STUDY / "batch-norm" / "report.md").read_text()
    tested = re.search(r"(\d+) of (\d+) differences have a paired t-test p < 0.05; 0 remain", report)
    assert tested
    quoted = f"{tested[1]} of the {tested[2]} differences against vanilla have an uncorrected"
    assert quoted in page
    unit = [r for r in rows(STUDY / "per-unit") if r["form"] == "adaptive-batch-units"]
    trained = sum(r["outcome"] == "trained" for r in unit)
    best = max(100 * float(r["final_test_acc"]) for r in unit)
    assert all("(epoch 1)" in r["flags"] for r in unit) and best < 17
    assert f"the raw batch gains trained {trained} of their {len(unit)} runs, none above 17%" in page


def test_the_wall_times_the_page_quotes_are_the_reports() -> None:
    page = " ".join(PAGE.read_text().split())
    quotes = ((STUDY, "They took {} s of wall time"), (STUDY / "done-when", "--jobs 1`, {} s of wall"))
    for folder, phrase in quotes:
        seconds = re.search(r"wall time (\d+) s", (folder / "report.md").read_text())[1]
        assert phrase.format(seconds) in page, (folder, seconds)
