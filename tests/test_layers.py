"""The folders are layers (README, Layout) and each imports only those below it.

``ALLOWED`` is the house, bottom first: for each part of the package, the parts it may import
(itself always). A part is a module path prefix; the longest prefix naming a module decides.
The walk over the imports is ``tests.test_imports.import_graph`` (every import at any depth, so
a late import inside a function counts). A failure names the importing module, the module it
imports and the layer rule it breaks.

Then what loads at run time, in a fresh interpreter: the engine alone brings NumPy and the
engine, and ``import tinynormact`` brings neither the downloader nor tqdm, Dask, SciPy or
matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_imports import import_graph

_ENGINE = "tinynormact.engine"
_BACKEND = "tinynormact.engine.backend"
_VALIDATION = "tinynormact.infra.validation"
_INFRA = "tinynormact.infra"
_THEORY = "tinynormact.theory"
_ACTIVATIONS = "tinynormact.theory.activations"
_NN = "tinynormact.nn"
_TRACKING = "tinynormact.tracking"
_DATA = "tinynormact.data"
_TRAIN = "tinynormact.train"
_EXPERIMENTS = "tinynormact.experiments"

# part -> the parts it may import, bottom of the house first
ALLOWED: dict[str, set[str]] = {
    _VALIDATION: set(),  # checks of plain values: the foundation, nothing of the package
    _ENGINE: {_VALIDATION},
    _INFRA: {_BACKEND, _VALIDATION},  # files turn device arrays into JSON through the backend
    _ACTIVATIONS: {_BACKEND, _VALIDATION},
    _THEORY: {_BACKEND, _VALIDATION, _ACTIVATIONS},
    _NN: {_ENGINE, _VALIDATION, _THEORY},
    _TRACKING: {_ENGINE, _INFRA, _THEORY, _NN},
    _DATA: {_ENGINE, _INFRA},
    _TRAIN: {_ENGINE, _INFRA, _THEORY, _NN, _TRACKING, _DATA},
    _EXPERIMENTS: {_ENGINE, _INFRA, _THEORY, _NN, _TRACKING, _DATA, _TRAIN},
    "tinynormact.cli": {_ENGINE, _INFRA, _THEORY, _NN, _TRACKING, _DATA, _TRAIN, _EXPERIMENTS},
    "tinynormact": {_ENGINE},  # the root __init__; the other public names load lazily
}


def _part(module: str) -> str:
    """The longest key of ALLOWED that is ``module`` or a package above it."""
    parts = [key for key in ALLOWED if module == key or module.startswith(key + ".")]
    assert parts, f"{module} belongs to no layer of ALLOWED: add it to the house"
    return max(parts, key=len)


def _within(module: str, allowed: set[str]) -> bool:
    return any(module == key or module.startswith(key + ".") for key in allowed)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """'A imports B: A's layer (part) may import only ...' for every import against ALLOWED."""
    found = []
    for module, imported in sorted(graph.items()):
        part = _part(module)
        allowed = ALLOWED[part] | {part}
        for target in sorted(imported):
            if not _within(target, allowed) and target != "tinynormact":
                found.append(
                    f"{module} imports {target}: {part} may import only {', '.join(sorted(allowed))}"
                )
    return found


def test_every_import_goes_down_the_house() -> None:
    graph = import_graph()
    assert graph["tinynormact.engine.ops"] >= {"tinynormact.engine.autograd"}  # the walk sees imports
    assert layer_violations(graph) == []


def test_a_planted_upward_import_is_named() -> None:
    """The check can fail: the engine importing nn, or the theory importing the engine's
    autograd, is reported with both module names."""
    graph = import_graph()
    graph["tinynormact.engine.ops"] |= {"tinynormact.nn.module"}
    graph["tinynormact.theory.moments"] |= {"tinynormact.engine.autograd"}
    found = layer_violations(graph)
    assert len(found) == 2
    assert found[0].startswith("tinynormact.engine.ops imports tinynormact.nn.module: tinynormact.engine")
    assert found[1].startswith("tinynormact.theory.moments imports tinynormact.engine.autograd")


def _loaded_after(statement: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _top(modules: list[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in names}


_HEAVY = ("scipy", "matplotlib", "tqdm", "dask", "distributed")


def test_the_engine_loads_numpy_and_the_engine_only() -> None:
    loaded = _loaded_after("import tinynormact.engine")
    ours = {m for m in loaded if m.startswith("tinynormact")}
    assert ours and all(m == "tinynormact" or _within(m, {_ENGINE, _VALIDATION}) for m in ours), ours
    assert "numpy" in loaded and not _top(loaded, _HEAVY)


def test_import_tinynormact_loads_no_downloader_and_no_heavy_library() -> None:
    loaded = _loaded_after("import tinynormact")
    assert not _top(loaded, _HEAVY), _top(loaded, _HEAVY)
    assert "tinynormact.data.download" not in loaded and "urllib.request" not in loaded


def test_the_networks_and_the_theory_load_without_scipy_tqdm_or_matplotlib() -> None:
    """SciPy loads when a theory function seeks a root (brentq) or the CPU's erf is used."""
    loaded = _loaded_after("import tinynormact as tn\ntn.nn.MLP; tn.theory.rho('tanh'); tn.optim.SGD")
    assert not _top(loaded, _HEAVY), _top(loaded, _HEAVY)


def test_the_load_check_sees_a_heavy_import() -> None:
    """The check can fail: the experiments (a sweep's progress bar, the analysis's statistics)
    load tqdm and SciPy as they are imported."""
    loaded = _loaded_after("import tinynormact.experiments")
    assert {"tqdm", "scipy"} <= {m.split(".")[0] for m in _top(loaded, _HEAVY)}
