"""The import graph of nasforge: no cycle among module-level imports, and every import points down the layers.

Issue 18's rule: ``types`` <- ``space``, ``store`` <- ``strategy``, ``schedule`` <- ``study`` <- the
``execute``/``evaluate`` drivers <- ``final``, ``report`` <- ``api`` <- ``cli``; nothing imports upwards.
Every module under ``src/nasforge`` is parsed with ``ast`` (nothing is imported): imports at module level
and inside functions count, imports under ``if TYPE_CHECKING:`` do not (they never run). Importing
``a.b.c`` also runs the packages ``a.b`` and ``a``, so those count as imported too (``nasforge`` itself
excepted: its names load on first use, PEP 562).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "nasforge"

# Each module's layer: the longest dotted prefix in this table decides (``nasforge.space`` covers
# ``nasforge.space.cell``). Lower layers never import higher ones; modules of one layer may import each other.
LAYERS: dict[str, int] = {
    # 0, foundations: typed records, errors, names and paths, formatting, atomic writes, Pareto ranking
    "nasforge.types": 0, "nasforge.errors": 0, "nasforge.paths": 0, "nasforge.fmt": 0, "nasforge.atomic": 0,
    "nasforge.pareto": 0,
    # 1, data and the training primitives (recipe, seeds, metrics, cost, the training step, timing): they know
    # tensors and networks, nothing of a search; spaces count a network's cost with them, screening and
    # references use them, so they sit below the spaces
    "nasforge.data": 1, "nasforge.evaluate": 1, "nasforge.evaluate.recipe": 1, "nasforge.evaluate.metrics": 1,
    "nasforge.evaluate.cost": 1, "nasforge.evaluate.trainer": 1, "nasforge.evaluate.timing": 1,
    # 2, what is searched and where it is kept
    "nasforge.space": 2, "nasforge.store": 2,
    # 3-5, what to try and how much each gets: strategies, schedulers (and stopping rules), and the
    # zero-cost screen beside the strategies (it chooses what trains); none of them trains or drives a search
    "nasforge.strategy": 3,
    "nasforge.schedule": 4,
    "nasforge.screen": 5,
    # 6, the one ask/tell object every driver loops over
    "nasforge.study": 6,
    # 7, the drivers and what runs trials: evaluators, executors, the search loop, the NB201 bench, the
    # test suite's simulate
    "nasforge.evaluate.torch_eval": 7, "nasforge.evaluate.tabular": 7, "nasforge.evaluate.memory": 7,
    "nasforge.execute": 7, "nasforge.loop": 7, "nasforge.bench": 7, "nasforge.testing": 7, "nasforge.transfer": 7,
    # 8, one-shot searches: they use the study, the evaluator and the data
    "nasforge.oneshot": 8,
    # 9, after the search: retraining, references, export
    "nasforge.final": 9,
    # 10, the config checks every section against its zone's registry (spaces, schedulers, stopping rules,
    # executors, screens, references), so it sits above them all; no zone below reads a Config, only
    # what turns one into a run or reads a stored one. ``stored`` opens a database and its config.
    "nasforge.config": 10, "nasforge.stored": 10,
    # 11, reading an experiment: the one read model and the report built on it
    "nasforge.result": 11, "nasforge.report": 11,
    # 12, the Python API, the plan that `nasforge auto` runs through it, and the Gymnasium env (it builds from a config)
    "nasforge.api": 12, "nasforge.autoplan": 12, "nasforge.gym": 12,
    # 13, the command line, and the package's public names
    "nasforge.cli": 13, "nasforge.__main__": 13, "nasforge": 13,
}

# Imports inside a function that may point upwards: (importer, imported) -> why. Keep it short: fix the
# code instead where possible.
LAZY_UPWARD: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def _with_parents(module: str, importer: str) -> Iterator[str]:
    """``module`` and the packages an import of it runs: not ``nasforge`` (it runs nothing), nor a package
    that holds the importer (Python ran it before the importer, so importing it again starts nothing)."""
    yield module
    parts = module.split(".")
    for i in range(len(parts) - 1, 1, -1):
        name = ".".join(parts[:i])
        if name in MODULES and not importer.startswith(name + "."):
            yield name


def _targets(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The nasforge modules one import statement runs."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package
            package = importer.split(".") if MODULES[importer].name == "__init__.py" else importer.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        # ``from pkg import mod`` imports the module ``pkg.mod``; ``from mod import name`` the module ``mod``
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    for name in names:
        if name == ROOT or name.startswith(ROOT + "."):
            yield from _with_parents(name, importer) if name != ROOT else (ROOT,)


class _Imports(ast.NodeVisitor):
    """Module-level and lazy (inside a function) imports of one module; ``if TYPE_CHECKING:`` bodies skipped."""

    def __init__(self, module: str) -> None:
        self.module, self.depth = module, 0
        self.top: set[str] = set()
        self.lazy: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for stmt in node.orelse:
                self.visit(stmt)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        found = set(_targets(self.module, node)) - {self.module}
        (self.lazy if self.depth else self.top).update(found)

    visit_ImportFrom = visit_Import


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level imports, imports inside functions), each module -> the nasforge modules it imports."""
    top: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        v = _Imports(module)
        v.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        top[module], lazy[module] = v.top, v.lazy - v.top
    return top, lazy


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None (depth first; ~100 modules)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for child in sorted(graph.get(node, ())):
            cycle = visit(child)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


TOP, LAZY = import_graph()


def test_every_module_has_a_layer_and_every_layer_entry_a_module():
    missing = [m for m in MODULES if not any(m == p or m.startswith(p + ".") for p in LAYERS)]
    assert not missing, f"give these modules a layer in LAYERS: {missing}"
    stale = [p for p in LAYERS if not any(m == p or m.startswith(p + ".") for m in MODULES)]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_the_graph_sees_imports_at_every_depth():
    """A check of the parser itself, on imports known to be there."""
    assert "nasforge.study" in TOP["nasforge.loop"]
    assert "nasforge.space" in TOP["nasforge.strategy.base"]  # the package, run by importing space.base
    assert "nasforge.api" in LAZY["nasforge.cli"]  # inside cmd_search
    assert "nasforge.space.chain_nn" in LAZY["nasforge.space.chain"]  # from nasforge.space import chain_nn
    assert not any("torch" in m for m in TOP["nasforge.space.chain"])  # only nasforge modules count


def test_no_cycle_among_module_level_imports():
    cycle = find_cycle(TOP)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_module_level_imports_point_down_the_layers():
    bad = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
           for a, targets in TOP.items() for b in sorted(targets) if layer(b) > layer(a)]
    assert not bad, "imports upwards:\n" + "\n".join(bad)


def test_lazy_imports_point_down_the_layers_unless_allowed():
    bad = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)}) inside a function"
           for a, targets in LAZY.items() for b in sorted(targets)
           if layer(b) > layer(a) and (a, b) not in LAZY_UPWARD]
    assert not bad, "imports upwards (fix the code, or add to LAZY_UPWARD with the reason):\n" + "\n".join(bad)


def test_every_allowed_upward_import_is_still_there():
    stale = [f"{a} -> {b}" for a, b in LAZY_UPWARD if not (b in LAZY.get(a, set()) and layer(b) > layer(a))]
    assert not stale, f"no longer upward imports, drop them from LAZY_UPWARD: {stale}"


def test_an_upward_import_is_caught(tmp_path):
    """What the rule is for: a space that imported the CLI would be refused, as a cycle and as an upward import."""
    top = {m: set(t) for m, t in TOP.items()}
    top["nasforge.space.base"].add("nasforge.cli")
    assert find_cycle(top) is not None
    assert layer("nasforge.cli") > layer("nasforge.space.base")
