"""The API reference: one page per module of tinynormact and per test module, found by walking
the source tree (so a module moved or added appears without editing anything here); mkdocstrings
renders each page from the module's docstrings."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tinynormact"
TESTS = ROOT / "tests"


def modules() -> list[str]:
    """Dotted names of every module of the package, packages first within their folder."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or "__pycache__" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(set(names), key=lambda name: name.split("."))


def test_modules() -> list[str]:
    return sorted(path.stem for path in TESTS.glob("test_*.py"))


def module_uri(module: str) -> str:
    return f"api/{module}.md"


def test_uri(module: str) -> str:
    return f"api/tests/{module}.md"


def module_page(repo_path: str) -> str | None:
    """The API page of a repository file (tinynormact/x/y.py, tests/test_z.py), or None."""
    path = Path(repo_path)
    if path.suffix != ".py":
        return None
    if path.parts[0] == "tinynormact":
        parts = path.with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        return module_uri(module) if module in modules() else None
    if path.parts[0] == "tests" and path.stem in test_modules():
        return test_uri(path.stem)
    return None


def pages() -> dict[str, str]:
    """Site path -> Markdown of every API page."""
    result = {"api/index.md": index_page()}
    for module in modules():
        result[module_uri(module)] = module_page_markdown(module)
    for module in test_modules():
        result[test_uri(module)] = (
            f"# `tests/{module}.py`\n\n::: {module}\n    options:\n      show_root_heading: false\n"
            "      show_source: true\n      filters: [\"^test_\", \"^Test\"]\n")
    return result


def is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").exists()


def module_page_markdown(module: str) -> str:
    """A module's page; a package's shows its docstring and links to its modules, whose pages
    document what it re-exports (so nothing is documented twice)."""
    if not is_package(module):
        return f"# `{module}`\n\n::: {module}\n"
    children = [m for m in modules() if m.rsplit(".", 1)[0] == module]
    listing = "\n".join(f"- [`{child}`]({child}.md)" for child in children)
    return f"# `{module}`\n\n::: {module}\n    options:\n      members: false\n\n## Modules\n\n{listing}\n"


def index_page() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings when the site is built. An equation number such as E9 "
             "links to its statement in [the theory](../THEORY.md).", "", "## Modules", ""]
    lines += [f"- [`{m}`]({m}.md)" for m in modules()]
    lines += ["", "## Tests", "",
              "Each test module with its tests' docstrings and source: what each test checks, "
              "against which oracle.", ""]
    lines += [f"- [`tests/{m}.py`](tests/{m}.md)" for m in test_modules()]
    return "\n".join(lines) + "\n"


def nav() -> list:
    groups: dict[str, list] = {}
    for module in modules():
        package = module if is_package(module) else module.rsplit(".", 1)[0]
        groups.setdefault(package, []).append({module: module_uri(module)})
    entries: list = [{"Overview": "api/index.md"}]
    entries += [{package: items} for package, items in groups.items()]
    entries.append({"Tests": [{f"tests/{m}.py": test_uri(m)} for m in test_modules()]})
    return entries
