"""The site's build tools on small inputs whose right output is written out by hand: the
typesetting of THEORY's plain-text notation, where equation anchors go, which links are rewritten,
and that a failing tutorial stops the build."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equations  # noqa: E402 (next to this file)
import hooks  # noqa: E402
import plain_math  # noqa: E402


@pytest.mark.parametrize(("text", "expected"), [
    ("rho = m2/q (forward gain)", r"$\rho = m_{2} / q$ (forward gain)"),
    ("lambda^2 = (1/rho + 1/rho')/2.", r"$\lambda^{2} = (1 / \rho + 1 / \rho') / 2$."),
    ("q_l = weight_var_l m2(q_{l-1})", r"$q_{l} = \mathrm{weight\_var}_{l} \, m_{2}(q_{l-1})$"),
    ("x ~ N(0, q) and E[phi'(x)^2]", r"$x \sim \mathcal{N}(0, q)$ and $\mathbb{E}[\phi'(x)^{2}]$"),
    ("chi_l = prod_{j=1..k} d2(q_j)", r"$\chi_{l} = \prod_{j=1}^{k} \, d_{2}(q_{j})$"),
    ("phi_hat at q* = 1.2", r"$\hat{\phi}$ at $q^{*} = 1.2$"),
])
def test_plain_notation_becomes_tex(text: str, expected: str) -> None:
    assert plain_math.inline_math(text) == expected


@pytest.mark.parametrize("prose", [
    "a Linear layer, as in E8-E10 and E19",          # English words, equation numbers
    "the layer's mean (over the batch), O(1/width)",  # a possessive, 'mean' as a word, O( prose )
    "5-10 layers, 1.00 +- 0.004",                      # numbers alone
])
def test_prose_without_mathematics_is_left_alone(prose: str) -> None:
    assert plain_math.inline_math(prose) == prose


def test_indented_equations_are_display_math_and_commands_are_not() -> None:
    assert plain_math.is_equation_block("q_l(p) = weight_var * window_mean(m2(q_{l-1}))(p) + bias_var")
    assert not plain_math.is_equation_block(".venv/bin/python -m pytest -m theory")
    two_rows = r"\begin{gathered}a = \sqrt{q} \\ b \le 2\end{gathered}"
    assert plain_math.display_tex("a = sqrt(q)\nb <= 2") == two_rows


def test_an_equation_is_anchored_where_it_is_defined() -> None:
    lines = [
        "# Theory",                               # 0
        "see E17 below",                          # 1: a mention, not the definition
        "### E1-E3: moments",                     # 2: a heading with a range
        "### E17-E18: residual networks",         # 3
        "- **E17 (forward).** x_{l+1} = ...",     # 4: the item that defines E17
        "- **E18 (backward).** ...",              # 5
        "## Convolutional networks (E2 per position)",  # 6: names E2 later
    ]
    assert equations.anchor_lines(lines) == {1: 2, 2: 2, 3: 2, 17: 4, 18: 5}
    anchored = equations.add_anchors(lines)
    item = anchored[anchored.index("### E17-E18: residual networks") + 1]
    assert item.startswith('- <span class="eq-anchor" id="e17"></span>**E17')
    heading = "".join(f'<span class="eq-anchor" id="e{n}"></span>' for n in (1, 2, 3))
    assert f"### {heading}E1-E3: moments" in anchored  # inside the heading, which a jump then shows


def test_equation_numbers_link_to_their_anchor_outside_code_and_links() -> None:
    html = '<p>By E9 (<code>E9</code>), <a href="x">E9</a>; E99.</p>'
    linked = equations.link_equation_numbers(html, "../THEORY.html", frozenset({9}))
    assert linked == ('<p>By <a class="eq-ref" href="../THEORY.html#e9">E9</a> (<code>E9</code>), '
                      '<a href="x">E9</a>; E99.</p>')
    # a link inside TeX would break it: the number in a math element stays as it is
    math = '<div class="arithmatex">\\[\n\\mathrm{E9}: q = 1\n\\]</div>'
    linked = equations.link_equation_numbers(math + "<p>E9</p>", "", frozenset({9}))
    assert linked == math + '<p><a class="eq-ref" href="#e9">E9</a></p>'
    mention = "<p>(docs/THEORY.md, E9) <code>docs/THEORY.md</code></p>"  # the tutorials' way of citing it
    assert equations.link_equation_numbers(mention, "../THEORY.html", frozenset({9})) == (
        '<p>(<a href="../THEORY.html">docs/THEORY.md</a>, <a class="eq-ref" href="../THEORY.html#e9">E9</a>) '
        "<code>docs/THEORY.md</code></p>")


def test_links_between_repository_files_become_links_between_pages() -> None:
    figure = "docs/reports/quick/figures/paired_difference.png"
    markdown = ("[theory](docs/THEORY.md#e9) [tracker](tinynormact/tracking.py) "
                f"[bench](benchmarks/bench_tracking.py) ![fig]({figure}) [web](https://arxiv.org)")
    assert hooks.rewrite_links(markdown, "README.md", "index.md") == (
        "[theory](THEORY.md#e9) [tracker](api/tinynormact.tracking.md) "
        f"bench ![fig]({figure.removeprefix('docs/')}) [web](https://arxiv.org)")
    tutorials_page = ("tutorials/README.md", "tutorials/index.md")
    from_tutorials = hooks.rewrite_links("[t](../docs/THEORY.md)", *tutorials_page)
    assert from_tutorials == "[t](../THEORY.md)"


def test_a_failing_tutorial_stops_the_build(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    import tutorials

    script = tmp_path / "99_broken.py"
    script.write_text("# %% [markdown]\n# # Tutorial 99: broken\n\n"
                      "# %%\nraise ValueError('wrong derivative')\n")
    with pytest.raises(RuntimeError, match=r"99_broken\.py failed(.|\n)*wrong derivative"):
        tutorials.build_one(script, tmp_path / "out")
    assert not (tmp_path / "out" / "99_broken.md").exists()


def test_report_folders_and_the_reports_folder_are_pages(tmp_path: Path) -> None:
    """Before: a link to docs/reports/ pointed at a folder (no page there, a broken link), and a
    study's folder without Markdown had no page at all."""
    generated = hooks.generated_report_pages()
    assert hooks.site_path("docs/reports") == "reports/index.md" and "reports/index.md" in generated
    for folder in hooks.report_folders():
        has_markdown = any(folder.glob("*.md"))
        assert (hooks.report_index_uri(folder) in generated) != has_markdown
        assert f"[{folder.name}]({folder.name}/" in generated["reports/index.md"]
    script = tmp_path / "study.py"
    script.write_text('"""Writes figures/collapse_<activation>.png; see `a<b`."""\n')
    assert hooks.script_summary(script) == "Writes figures/collapse_&lt;activation&gt;.png; see `a<b`."
