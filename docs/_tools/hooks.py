"""MkDocs hooks that turn the repository's own files into the site, with nothing written twice.

- the nav is made from what exists: README.md (home), tutorials/ (executed by
  docs/_tools/tutorials.py into build/site-src/tutorials), docs/THEORY.md, every other
  docs/*.md and docs/guide/*.md, every Markdown file of docs/reports/*/ (a report folder without
  one gets a generated page of its scripts' descriptions, outputs and figures; the reports an
  overview page), and one API page per module of tinynormact and per test module of tests/;
- links between repository files become links between pages (a link to a file that is not a
  page, a script or a CSV, stays as its text);
- THEORY's plain-text equations are typeset (docs/_tools/plain_math.py) and every equation
  number gets an anchor ``eN``; every "E9" on every page links to it;
- the equation -> function -> test table of THEORY links each function and test to its API
  entry (after the build, when the API pages' anchors are known);
- KaTeX and iframe-worker (docs/_tools/fetch_assets.py) are copied into site/assets: the pages
  load nothing from the network.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_pages  # noqa: E402 (next to this file)
import equations  # noqa: E402
import fetch_assets  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GENERATED_TUTORIALS = ROOT / "build" / "site-src" / "tutorials"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def title_of(path: Path) -> str:
    """The first Markdown heading of a file, without its '#'s."""
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def tutorial_sources() -> list[Path]:
    return sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


# The repository files that become pages under another name (the rest of docs/ keeps its path).
RENAMED = {"README.md": "index.md", "tutorials/README.md": "tutorials/index.md"}
TUTORIAL_SCRIPT = re.compile(r"tutorials/\d\d_\w+\.py")


def site_path(repo_path: str) -> str | None:
    """Where a repository file is on the site, or None when it is not a page or an asset."""
    if repo_path in RENAMED:
        return RENAMED[repo_path]
    if TUTORIAL_SCRIPT.fullmatch(repo_path):
        return repo_path[:-3] + ".md"
    if repo_path.startswith("docs/") and repo_path[len("docs/"):] in generated_report_pages():
        return repo_path[len("docs/"):]
    if repo_path.startswith("docs/") and (ROOT / repo_path).is_dir():
        index = repo_path[len("docs/"):] + "/index.md"  # a folder: its index page, when it has one
        return index if index in generated_report_pages() or (DOCS / index).exists() else None
    if repo_path.startswith("docs/") and (ROOT / repo_path).exists():
        return repo_path[len("docs/"):]
    return api_pages.module_page(repo_path)


def relative(target: str, page: str) -> str:
    """``target`` (a site path) as a link from the page at site path ``page``."""
    up = page.count("/")
    return "../" * up + target


def rewrite_links(markdown: str, repo_path: str, page: str) -> str:
    """Links between repository files -> links between site pages, outside code fences."""
    base = Path(repo_path).parent

    def replace(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group()
        path, _, anchor = target.partition("#")
        resolved = (ROOT / base / path).resolve()
        try:
            repo_target = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            return text
        where = site_path(repo_target)
        if where is None:
            return text if bang == "" else match.group()
        return f"{bang}[{text}]({relative(where, page)}{'#' + anchor if anchor else ''})"

    return outside_fences(markdown, lambda chunk: LINK.sub(replace, chunk))


def outside_fences(markdown: str, change) -> str:
    """Apply ``change`` to the parts of ``markdown`` outside fenced code blocks."""
    out, chunk, fenced = [], [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            if not fenced:
                out.append(change("\n".join(chunk)))
                chunk = []
            fenced = not fenced
            out.append(line)
            continue
        (out if fenced else chunk).append(line)
    out.append(change("\n".join(chunk)))
    return "\n".join(part for part in out)


# ---------------------------------------------------------------- MkDocs events


def on_config(config):
    config["nav"] = build_nav()
    return config


# The guide pages in reading order; a page not named here comes after them, by name.
GUIDE_ORDER = [
    "tour", "tracking", "reproduction", "sweeps", "runs", "cifar", "gpu", "testing", "allocator", "site",
]


def build_nav() -> list:
    tutorials = [{title_of_generated(p): "tutorials/" + p.stem + ".md"} for p in tutorial_sources()]
    rank = {name: i for i, name in enumerate(GUIDE_ORDER)}
    guide = sorted(DOCS.glob("guide/*.md"), key=lambda p: (rank.get(p.stem, len(rank)), p.name))
    # every other docs/*.md, by name, with the findings first and the timings last
    first_last = {"findings": -1, "timings": 1}
    pages = sorted((p for p in DOCS.glob("*.md") if p.name != "THEORY.md"),
                   key=lambda p: (first_last.get(p.stem, 0), p.name))
    nav: list = [
        {"Home": "index.md"},
        {"Tutorials": [{"Overview": "tutorials/index.md"}, *tutorials]},
        {"Theory": "THEORY.md"},
        *[{title_of(p): p.relative_to(DOCS).as_posix()} for p in pages],
    ]
    if guide:
        nav.append({"Guide": [{title_of(p): p.relative_to(DOCS).as_posix()} for p in guide]})
    nav.append({"Reports": [{"Overview": "reports/index.md"}, *report_entries()]})
    nav.append({"API reference": api_pages.nav()})
    return nav


def report_folders() -> list[Path]:
    return sorted(p for p in (DOCS / "reports").glob("*/") if p.is_dir())


def report_index_uri(folder: Path) -> str:
    return folder.relative_to(DOCS).as_posix() + "/index.md"


@functools.cache
def generated_report_pages() -> dict[str, str]:
    """The reports' overview page, and a page for each report folder that has no Markdown of its
    own (a study's scripts, their printed outputs and figures)."""
    pages = {"reports/index.md": reports_overview()}
    for folder in report_folders():
        if any(folder.glob("*.md")):
            continue
        parts = [f"# Report: {folder.name}", "",
                 f"The files of `docs/reports/{folder.name}/`, as committed: each script's description, "
                 "the figures and the printed outputs.", ""]
        for script in sorted(folder.glob("*.py")):
            parts += [f"## `{script.name}`", "", script_summary(script), ""]
            outputs = folder / f"{script.stem}.txt"
            if outputs.exists():
                text = outputs.read_text().rstrip()
                parts += [f"Its output, `{outputs.name}`:", "", "```text", text, "```", ""]
        figures = sorted((folder / "figures").glob("*.png")) + sorted(folder.glob("*.png"))
        if figures:
            parts += ["## Figures", ""]
            parts += [f"![{f.stem}]({f.relative_to(folder).as_posix()})\n" for f in figures]
        pages[report_index_uri(folder)] = "\n".join(parts) + "\n"
    return pages


def report_entries() -> list[dict[str, str]]:
    """(name, site path) of every report: a report.md by its folder's path under docs/reports/
    (every report.md has the same title), another page by its title, a folder without Markdown by
    its generated page."""
    entries = []
    for folder in report_folders():
        files = sorted(folder.rglob("*.md"), key=lambda p: (p.parent.relative_to(folder).parts,
                                                              p.name != "report.md", p.name))
        for page in files:
            where = page.parent.relative_to(DOCS / "reports").as_posix()
            name = where if page.name == "report.md" else title_of(page)
            entries.append({name: page.relative_to(DOCS).as_posix()})
        if not files:
            entries.append({folder.name: report_index_uri(folder)})
    return entries


def reports_overview() -> str:
    """One line per report: its page, and its first sentence (what ran)."""
    lines = ["# Reports", "",
             "The reports committed under `docs/reports/`, each with its figures; a preset's folder also "
             "holds its `results.csv`, one line per run. [The findings](../findings.md) quotes them, "
             "every number recomputed from that data.", "",
             "| report | what ran |", "| --- | --- |"]
    for entry in report_entries():
        ((name, uri),) = entry.items()
        source = DOCS / uri
        summary = "a study: its scripts, their outputs and figures"
        if source.exists():
            blocks = source.read_text().split("\n\n")[1:]
            paragraphs = [p for p in blocks if not p.startswith(("#", "!", "|", "<"))]
            first = " ".join(paragraphs[0].split()) if paragraphs else ""  # "Grid `quick` on ..."
            summary = re.split(r", wall time|\. ", first)[0]  # times are stated once, in the report
        lines.append(f"| [{name}]({uri.removeprefix('reports/')}) | {summary} |")
    return "\n".join(lines) + "\n"


def script_summary(script: Path) -> str:
    """The module docstring of a script (what it does and how to run it), its ``<`` and ``>``
    outside code spans escaped (``collapse_<activation>.png`` is text, not a tag)."""
    docstring = ast.get_docstring(ast.parse(script.read_text())) or "(no description)"
    parts = re.split(r"(`+[^`]*`+)", docstring)
    return "".join(part if part.startswith("`") else part.replace("<", "&lt;").replace(">", "&gt;")
                   for part in parts)


def title_of_generated(source: Path) -> str:
    for line in source.read_text().splitlines():
        match = re.match(r"# # (.*)", line)
        if match:
            return match.group(1)
    return source.stem


def on_files(files: Files, config) -> Files:
    add = lambda uri, **kw: files.append(File.generated(config, uri, **kw))  # noqa: E731
    add("index.md", content=(ROOT / "README.md").read_text())
    add("tutorials/index.md", content=(ROOT / "tutorials" / "README.md").read_text())
    for source in tutorial_sources():
        page = GENERATED_TUTORIALS / f"{source.stem}.md"
        if not page.exists():
            raise SystemExit(f"{page} is missing: run docs/_tools/tutorials.py first (make docs does)")
        add(f"tutorials/{source.stem}.md", content=page.read_text())
        for figure in sorted((GENERATED_TUTORIALS / f"{source.stem}_files").glob("*")):
            add(f"tutorials/{source.stem}_files/{figure.name}", abs_src_path=str(figure))
    for uri, content in {**api_pages.pages(), **generated_report_pages()}.items():
        add(uri, content=content)
    return files


def repo_path_of(uri: str) -> str:
    """The repository file a page of the site (that is not an API page) is made from."""
    renamed = {page: repo for repo, page in RENAMED.items()}
    script = uri[:-3] + ".py"
    if uri in renamed:
        return renamed[uri]
    return script if TUTORIAL_SCRIPT.fullmatch(script) else "docs/" + uri


def on_page_markdown(markdown: str, page, config, files) -> str:
    uri = page.file.src_uri
    if uri == "THEORY.md":
        markdown = equations.typeset_theory(markdown)
    if re.fullmatch(r"tutorials/\d\d_\w+\.md", uri):
        markdown = re.sub(r"^# .*$", lambda m: f"{m.group()}\n\n{tutorial_note(uri)}", markdown, count=1,
                          flags=re.MULTILINE)
        markdown = outside_fences(markdown, fence_outputs)
    if uri == "tutorials/index.md":  # the table's `01_autograd.py` -> a link to its page
        markdown = re.sub(r"`(\d\d_\w+)\.py`", r"[`\1.py`](\1.md)", markdown)
    if uri.startswith("api/"):
        return markdown
    return rewrite_links(markdown, repo_path_of(uri), uri)


OUTPUT_BLOCK = re.compile(r"\A\n*((?: {4}.*\n?|\n(?= {4}))+)")


def fence_outputs(markdown: str) -> str:
    """nbconvert writes a cell's printed output as an indented block right after the cell's code
    fence; fence it as ```text so that the site styles outputs apart from code (site.css)."""

    def fence(match: re.Match) -> str:
        lines = [line[4:] for line in match.group(1).strip("\n").split("\n")]
        return "\n```{.text .cell-output}\n" + "\n".join(lines) + "\n```\n\n"

    return OUTPUT_BLOCK.sub(fence, markdown, count=1)


def tutorial_note(uri: str) -> str:
    mode = "fast mode (`TINYNORMACT_TUTORIAL_FAST=1`, small sizes)" if fast_build() else "full size"
    script = "tutorials/" + Path(uri).stem + ".py"
    return (f'!!! note "Executed when this site was built"\n    This page is `{script}`, run in its {mode} '
            f"when the site was built; every output below is from that run. Run the script yourself "
            f"for the full-size numbers: `python {script}`.\n\n")


def fast_build() -> bool:
    import os

    return os.environ.get("TINYNORMACT_TUTORIAL_FAST", "1") != "0"


def on_page_content(html: str, page, config, files) -> str:
    theory = relative("THEORY.html", page.file.src_uri)
    own = page.file.src_uri == "THEORY.md"
    return equations.link_equation_numbers(html, "" if own else theory, equations.theory_anchors())


def on_post_build(config) -> None:
    site = Path(config["site_dir"])
    for name, (inside, where) in fetch_assets.SITE_PARTS.items():
        source = fetch_assets.unpacked(name) / inside
        if not source.exists():
            raise SystemExit(f"{source} is missing: run docs/_tools/fetch_assets.py first (make docs does)")
        target = site / "assets" / where
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.mjs", "katex.js", "katex.css"))
    equations.link_table_to_api(site)

