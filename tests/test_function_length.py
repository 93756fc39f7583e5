"""No function of the package is longer than 60 lines (from ``def`` to its last line, docstring
and comments included), except the report templates named in ``TEMPLATES``: a long function
is several jobs sharing one name. Shown to fail on a planted long function."""

from __future__ import annotations

import ast
from pathlib import Path

import tinynormact

PACKAGE = Path(tinynormact.__file__).parent
LIMIT = 60
# (module path, function): text templates, one long f-string document each
TEMPLATES = {("experiments/report.py", "markdown_report")}


def long_functions(source: str, limit: int = LIMIT) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function in ``source`` longer than ``limit`` lines."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and length > limit:
                    found.append((name, length))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_no_function_is_longer_than_sixty_lines() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        long = [(name, n) for name, n in long_functions(path.read_text()) if (module, name) not in TEMPLATES]
        if long:
            found[module] = long
    assert found == {}


def test_the_templates_exempted_still_exist() -> None:
    """An exemption for a function that is gone or short again would hide nothing: drop it."""
    for module, name in TEMPLATES:
        lengths = dict(long_functions((PACKAGE / module).read_text()))
        assert name in lengths, f"{module}: {name} is no longer over {LIMIT} lines"


def test_a_planted_long_function_is_found_with_its_length() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    method = body.replace("    x", "        x")
    planted = f"class Model:\n    def forward(self):\n{method}\n\ndef short():\n    pass\n"
    assert long_functions(planted) == [("Model.forward", 61)]
    assert long_functions(f"def f():\n{body}") == [("f", 61)]
    assert long_functions(f"def f():\n{body[: -len('    x59 = 59') - 1]}") == []
