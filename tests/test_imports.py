"""The package's imports run one way: a walk over every ``import`` in tinynormact/**/*.py (at
any depth, so a late import inside a function counts too; ``if TYPE_CHECKING:`` blocks do not)
finds no cycle. Also: ``autograd`` does not import ``ops``, ``nn.functional`` imports no layer
of ``nn``, and nn's layers and normalized activations do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinynormact"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _outside_type_checking(tree: ast.AST) -> list[ast.AST]:
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``name`` imports: ``from P import N`` names P.N when that is a
    module, else P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _outside_type_checking(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None (iterative three-colour DFS)."""
    colour = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the current path, 2 done
    for start in sorted(graph):
        if colour[start]:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        colour[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour[child] == 1:
                return [*path[path.index(child) :], child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 20 and graph["tinynormact.engine.ops"] >= {"tinynormact.engine.autograd"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    """The check can fail: the old autograd -> ops late import, planted back, is reported."""
    graph = import_graph()
    graph["tinynormact.engine.autograd"] = graph["tinynormact.engine.autograd"] | {"tinynormact.engine.ops"}
    cycle = find_cycle(graph)
    assert cycle is not None and {"tinynormact.engine.autograd", "tinynormact.engine.ops"} <= set(cycle)


def test_the_layering_the_design_names() -> None:
    graph = import_graph()
    assert "tinynormact.engine.ops" not in graph["tinynormact.engine.autograd"]
    nn_modules = {m for m in graph["tinynormact.nn.functional"] if m.startswith("tinynormact.nn")}
    assert nn_modules <= {"tinynormact.nn.losses"}  # functional: ops on tensors, no layers
    assert "tinynormact.nn.normalized" not in graph["tinynormact.nn.layers"]
