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

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "anact.md"
STUDY = ROOT / "docs" / "reports" / "anact-study"
NETWORKS = {"mlp": "MLP, 20 layers", "resmlp": "ResMLP, 8 blocks"}
BN_NETWORKS = {"mlp-bn": "MLP+BN, 20 layers", "resmlp-bn": "ResMLP+BN, 8 blocks"}
STUDY_FORMS = ("vanilla", "static", "adaptive-gaussian", "adaptive-output")
RELU_GELU_FORMS = ("vanilla", "static", "adaptive-batch", "adaptive-gaussian", "adaptive-output")
FOUR = ("swish", "tanh", "relu", "gelu")
UNIT_FORMS = ("vanilla", "adaptive-output", "adaptive-output-units", "adaptive-batch", "adaptive-batch-units")
BN_FORMS = ("vanilla", "static", "adaptive-output", "adaptive-batch")


def rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv") as file:
        return list(csv.DictReader(file))


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
                    cells.append(f"{np.mean(trained):.1f} +- {np.std(trained, ddof=1):.1f}")
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
    """The study tables: swish and tanh (the preset), relu and gelu (its own grid), a lambda per
    unit and batch norm first (a grid each)."""
    first = study_lines(rows(STUDY), ("swish", "tanh"), STUDY_FORMS)
    first += study_lines(rows(STUDY / "relu-gelu"), ("relu", "gelu"), RELU_GELU_FORMS)
    first += study_lines(rows(STUDY / "per-unit"), FOUR, UNIT_FORMS)
    return first + study_lines(rows(STUDY / "batch-norm"), FOUR, BN_FORMS, BN_NETWORKS)


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
    assert missing(old_reading_lines(rows(STUDY / "old-reading")), page) == []


CHANGES = [
    ("| 0.984 |", "| 0.948 |"),
    ("66.9 +- 1.3", "66.9 +- 1.4"),
    ("| 2.303 | 15 |", "| 2.303 | 16 |"),
    ("30.9 (1/2 failed", "30.8 (1/2 failed"),
    ("| 67.7 +- 0.5 |", "| 67.8 +- 0.5 |"),  # a lambda per unit
    ("| 76.6 +- 0.7 |", "| 76.6 +- 0.8 |"),  # batch norm first
]


@pytest.mark.parametrize(("old", "new"), CHANGES)
def test_a_changed_cell_is_caught(old: str, new: str) -> None:
    page = PAGE.read_text()
    assert old in page
    changed = page.replace(old, new, 1)  # the first table holding it
    lines = done_when_lines(rows(STUDY / "done-when")) + all_study_lines()
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
    learned = re.search(r"adaptive form learned in (\d+) of its 100 runs \(the other (\d+) are", text)
    if learned is None or f"{100 - int(learned[1])} of its 100 runs ended at chance" not in findings:
        problems.append("README's count of adaptive runs that learned is not docs/findings.md's")
    elif int(learned[2]) != 100 - int(learned[1]):
        problems.append("README's adaptive counts do not add up to 100")
    none = re.search(r"none of its (\d+) differences against vanilla survives", text)
    if none is None or f"None of its {none[1]} differences against vanilla survives" not in findings:
        problems.append("README's adaptive differences are not docs/findings.md's")
    relu = re.search(r"relu in the 20-layer MLP \(([+-]\d+\.\d) points\)", text)
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
        ("learned in 95 of its", "learned in 96 of its"),
        ("none of its 20 differences", "none of its 19 differences"),
        ("(-11.4 points)", "(-11.5 points)"),
    ],
)
def test_a_changed_readme_number_is_caught(old: str, new: str) -> None:
    readme = " ".join(README.read_text().split())
    assert readme.count(old) == 1, old
    assert readme_problems(readme.replace(old, new)) != []


def test_the_pages_summary_of_the_full_rerun_is_its_data() -> None:
    """ "In short": the adaptive runs of docs/reports/full that learned (above chance), and those
    at chance all sigmoid MLPs."""
    data = [r for r in rows(ROOT / "docs" / "reports" / "full") if r["form"] == "adaptive"]
    at_chance = [r for r in data if float(r["final_test_acc"]) <= 0.13]
    assert {(r["architecture"], r["activation"]) for r in at_chance} == {("mlp", "sigmoid")}
    page = " ".join(PAGE.read_text().split())
    learned, n, chance = len(data) - len(at_chance), len(data), len(at_chance)
    assert f"learning in {learned} of its {n} runs, the other {chance}" in page
