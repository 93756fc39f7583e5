"""Equation numbers on the site: THEORY's anchors ``e1``, ``e2``, ..., its typeset equations, the
links from every "E9" to its anchor, and the links of the equation -> function -> test table."""

from __future__ import annotations

import functools
import html as html_lib
import re
from pathlib import Path

import plain_math

THEORY = Path(__file__).resolve().parents[1] / "THEORY.md"
NUMBER = re.compile(r"\bE(\d+)\b")
RANGE = re.compile(r"\bE(\d+)\s*[-–]\s*E(\d+)\b")
FENCE = re.compile(r"^\s*(```|~~~)")


def numbers_in(text: str) -> set[int]:
    """Every equation number a text names, ranges (E8-E10) expanded."""
    found = {int(n) for n in NUMBER.findall(text)}
    for low, high in RANGE.findall(text):
        found |= set(range(int(low), int(high) + 1))
    return found


def _covers(text: str, number: int) -> bool:
    return number in numbers_in(text)


def anchor_lines(lines: list[str]) -> dict[int, int]:
    """Equation number -> the line that defines it: a list item that starts with **EN, else a
    heading that starts with EN (or a range holding it), else a heading that names it, else the
    first line that names it."""
    wanted = numbers_in("\n".join(lines))
    rules = [
        lambda line, n: re.match(rf"\s*[-*] \*\*E{n}\b", line),
        lambda line, n: re.match(r"#+ E\d+", line) and _covers(re.split(r"[:(]", line)[0], n),
        lambda line, n: line.startswith("#") and _covers(line, n),
        lambda line, n: _covers(line, n),
    ]
    placed: dict[int, int] = {}
    for number in sorted(wanted):
        for rule in rules:
            index = next((i for i, line in enumerate(lines) if rule(line, number)), None)
            if index is not None:
                placed[number] = index
                break
    return placed


@functools.cache
def theory_anchors() -> frozenset[int]:
    return frozenset(anchor_lines(THEORY.read_text().splitlines()))


def add_anchors(lines: list[str]) -> list[str]:
    """Insert an empty element with id ``eN`` where each equation N is defined."""
    placed: dict[int, list[int]] = {}
    for number, index in anchor_lines(lines).items():
        placed.setdefault(index, []).append(number)
    out = []
    for index, line in enumerate(lines):
        spans = "".join(f'<span class="eq-anchor" id="e{n}"></span>' for n in placed.get(index, []))
        if not spans:
            out.append(line)
        elif line.startswith("#"):  # inside the heading: a jump to #e9 lands as one to the heading
            hashes, _, title = line.partition(" ")
            out.append(f"{hashes} {spans}{title}")
        else:
            item = re.match(r"(\s*(?:[-*]|\d+\.) )(.*)", line)
            out.append(item.group(1) + spans + item.group(2) if item else spans + line)
    return out


def typeset_theory(markdown: str) -> str:
    """THEORY with anchors and its equations as TeX (display blocks and inline runs)."""
    lines = add_anchors(markdown.split("\n"))
    out: list[str] = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            fenced = not fenced
        if fenced or FENCE.match(line):
            out.append(line)
            i += 1
            continue
        if line.startswith("    ") and (not out or not out[-1].strip()):
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i])
                i += 1
            out += render_block(block)
            continue
        out.append(prose_math(line))
        i += 1
    return "\n".join(out)


def render_block(block: list[str]) -> list[str]:
    """An indented block: display math when it holds equations, else left as code."""
    while block and not block[-1].strip():
        block = block[:-1]
    text = "\n".join(line[4:] for line in block)
    tail = [""]
    if not plain_math.is_equation_block(text):
        return [*block, *tail]
    return ["$$", plain_math.display_tex(text), "$$", *tail]


# code spans, raw HTML, link targets (a file, a URL or an anchor: "E[delta^2](p)" is mathematics)
PROTECTED = re.compile(r"(`+)(?:.*?)\1|<[^>]+>|\]\((?:[a-z]+:|#|[\w./-]+\.\w+)[^)]*\)|https?://\S+")


def prose_math(line: str) -> str:
    """Inline math in one line of prose: headings, raw HTML and code spans are left alone."""
    if line.startswith("#") or line.lstrip().startswith("<") and not line.lstrip().startswith("<span"):
        return line
    if line.lstrip().startswith("|"):
        if re.fullmatch(r"[\s|:-]+", line):
            return line
        return "|".join(prose_math(cell) for cell in line.split("|"))
    out, last = [], 0
    for match in PROTECTED.finditer(line):
        out += [plain_math.inline_math(line[last:match.start()]), match.group()]
        last = match.end()
    out.append(plain_math.inline_math(line[last:]))
    return "".join(out)


SKIPPED_TAGS = {"a", "code", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "script", "style", "title"}
TAG = re.compile(r"<(/?)([a-zA-Z0-9]+)[^>]*?(/?)>")


# arithmatex's math elements: their TeX may name an equation (\mathrm{E30}: ...) but holds no tags
MATH_ELEMENT = re.compile(r'<(span|div) class="arithmatex">.*?</\1>', re.DOTALL)


def link_equation_numbers(html: str, theory_url: str, anchors: frozenset[int]) -> str:
    """Every E9 in the text of ``html`` (not in links, code, headings or math) -> a link to #e9;
    a plain "docs/THEORY.md" there -> a link to THEORY's page."""
    out, last = [], 0
    for math in MATH_ELEMENT.finditer(html):
        out += [_link_outside_math(html[last:math.start()], theory_url, anchors), math.group()]
        last = math.end()
    out.append(_link_outside_math(html[last:], theory_url, anchors))
    return "".join(out)


THEORY_PATH = re.compile(r"(?<![\w/.])docs/THEORY\.md\b")


def _link_outside_math(html: str, theory_url: str, anchors: frozenset[int]) -> str:
    """The text of ``html`` outside links, code and headings: every E9 -> a link to #e9, and on
    other pages than THEORY's every plain mention of docs/THEORY.md -> a link to it."""
    out, depth, last = [], 0, 0

    def link(match: re.Match) -> str:
        number = int(match.group(1))
        if number not in anchors:
            return match.group()
        return f'<a class="eq-ref" href="{theory_url}#e{number}">{match.group()}</a>'

    def linked(text: str) -> str:
        text = NUMBER.sub(link, text)
        return THEORY_PATH.sub(f'<a href="{theory_url}">docs/THEORY.md</a>', text) if theory_url else text

    for tag in TAG.finditer(html):
        text = html[last:tag.start()]
        out.append(linked(text) if depth == 0 else text)
        out.append(tag.group())
        name = tag.group(2).lower()
        if name in SKIPPED_TAGS and not tag.group(3):
            depth += -1 if tag.group(1) else 1
            depth = max(depth, 0)
        last = tag.end()
    tail = html[last:]
    out.append(linked(tail) if depth == 0 else tail)
    return "".join(out)


# ------------------------------------------------- the equation -> function -> test table


def api_ids(site: Path) -> dict[str, str]:
    """Every documented object's id on the API pages -> its page (relative to the site)."""
    ids: dict[str, str] = {}
    for page in sorted((site / "api").rglob("*.html")):
        for found in re.findall(r'id="([A-Za-z_][\w.]*)"', page.read_text()):
            ids.setdefault(found, page.relative_to(site).as_posix())
    return ids


def resolve(name: str, ids: dict[str, str]) -> str | None:
    """Site link (page#id) of a name as the table writes it: ``theory.rho``, ``nn.BatchNorm1d``,
    ``test_theory.py::test_moments_*`` (a pattern links to the first match)."""
    name = name.strip("`").replace(".py::", ".").replace("::", ".").split(" ")[0].split("(")[0]
    parts = [re.escape(part).replace(r"\*", r"\w*") for part in name.split(".")]
    exact = r"\.".join(parts)
    spread = r"(?:\.\w+)*\.".join(parts)  # theory.rho -> tinynormact.theory.moments.rho
    for candidate in (rf"tinynormact\.{exact}", exact, rf"tinynormact(?:\.\w+)*\.{spread}"):
        for found, page in ids.items():
            if re.fullmatch(candidate, found):
                return f"{page}#{found}"
    return None


def link_table_to_api(site: Path) -> None:
    """Link the function and test names of THEORY's table to their API entries."""
    theory = site / "THEORY.html"
    html = theory.read_text()
    heading = html.find('id="equation-function-test"')
    if heading < 0:
        return
    start, end = html.find("<table>", heading), html.find("</table>", heading)
    ids = api_ids(site)
    rows = html[start:end].split("<tr>")
    linked = [rows[0]] + [_link_row(row, ids) for row in rows[1:]]
    theory.write_text(html[:start] + "<tr>".join(linked) + html[end:])


def _link_row(row: str, ids: dict[str, str]) -> str:
    module: str | None = None

    def replace(match: re.Match) -> str:
        nonlocal module
        name = html_lib.unescape(match.group(1))
        if ".py::" in name:
            module = name.split(".py::")[0].split("/")[-1]
        elif name.startswith("::") and module:
            name = module + name
        target = resolve(name, ids)
        if target is None:
            return match.group()
        return f'<a href="{target}">{match.group()}</a>'

    return re.sub(r"<code>([^<]+)</code>", replace, row)
