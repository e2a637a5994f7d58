"""The shape of the code a newcomer reads: no import cycle between the library's modules (lazy imports inside
functions included), no module over 400 lines and no function over 80, stages that are argument parsing plus one
library call."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autos.codebase import SRC, module_file, module_name

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"autos": SRC}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _library_files() -> list[Path]:
    return sorted((SRC / "autos").rglob("*.py"))


def _direct_imports(path: Path) -> set[str]:
    """The own modules ``path`` names in an import anywhere in it: ``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``. A parent package imported only as the way to a submodule is not counted: that is how
    Python loads any submodule, not a dependency of the importer on the package's ``__init__``."""
    tree = ast.parse(path.read_text())
    name = module_name(path, ROOTS)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append(full if module_file(full, ROOTS) is not None else base)
        found |= {t for t in targets if t.split(".")[0] == "autos" and module_file(t, ROOTS) is not None}
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_library_modules() -> None:
    graph = {module_name(p, ROOTS): _direct_imports(p) for p in _library_files()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("folder", ["src/autos", "stages"])
def test_modules_and_functions_fit_on_a_screen(folder: str) -> None:
    files = sorted((REPO / folder).rglob("*.py"))
    long_modules = [f"{p.relative_to(REPO)} ({n} lines)" for p in files
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long_modules == []
    assert [f for p in files for f in _long_functions(p)] == []


def test_stages_are_argument_parsing_and_one_library_call() -> None:
    for stage in sorted((REPO / "stages").glob("*.py")):
        if stage.name == "__init__.py":
            continue
        tree = ast.parse(stage.read_text())
        defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
        assert defined == [], f"{stage.name} defines {defined}: its work belongs in autos.pipeline"
        calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert calls.count("run_stage") == 1, stage.name
