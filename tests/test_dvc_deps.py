"""dvc.yaml declares every module a stage's results depend on: the static import closure of each stage's entry
point (lazy imports inside functions included) must be covered by the stage's declared deps, or DVC would skip
a re-run after a change that alters results."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
OWN_PACKAGES = ("autos", "stages")
# Functions ("*": every function of the file) whose imports only validate *other* sections' names and settings
# at load: every stage validates the whole params file, so a typo in transfer.methods fails before IRP runs. They
# cannot change a stage's results, so following them would make every stage depend on every module and re-run on
# any edit. Logging the scorer to MLflow (tracking.log_scorer_model) ships its code as an artifact and likewise
# changes no result. The composition root (autos.study) imports every registry to validate names; the settings it
# resolves are read by transfer (which depends on src/autos/pruners) and train_scorer (src/autos/scorer) only,
# whose own deps cover them.
VALIDATION_ONLY = {
    ("src/autos/config.py", "*"),
    ("src/autos/study.py", "*"),
    ("src/autos/tracking.py", "log_scorer_model"),
}


def _module_file(name: str) -> Path | None:
    base = (SRC if name.split(".")[0] == "autos" else REPO) / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC if path.is_relative_to(SRC) else REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Own modules imported anywhere in ``path`` (``from a.b import c`` also yields ``a.b.c`` if it is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    rel = path.relative_to(REPO).as_posix()
    skipped = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and ({(rel, node.name), (rel, "*")} & VALIDATION_ONLY) for inner in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in OWN_PACKAGES:
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                if _module_file(".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    return found


def import_closure(entry: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            module = _module_file(name)
            if module is not None:
                todo.append(module)
    return seen


def _stages() -> list[tuple[str, str, list[str]]]:
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in pipeline.items():
        body = stage.get("do", stage)
        cmd = body["cmd"]
        module = cmd.split("-m ", 1)[1].split()[0]
        deps = [d for d in body.get("deps", []) if "${" not in d]
        out.append((name, module, deps))
    return out


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage,module,deps", _stages(), ids=[s[0] for s in _stages()])
def test_every_imported_module_is_a_declared_dep(stage: str, module: str, deps: list[str]) -> None:
    entry = _module_file(module)
    assert entry is not None, f"{stage}: entry module {module} not found"
    missing = sorted(p.relative_to(REPO).as_posix() for p in import_closure(entry) if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps on: {missing}"


@pytest.mark.parametrize("stage,module,deps", _stages(), ids=[s[0] for s in _stages()])
def test_every_declared_code_dep_exists(stage: str, module: str, deps: list[str]) -> None:
    for dep in deps:
        if dep.startswith(("src/", "stages/")):
            assert (REPO / dep).exists(), f"{stage}: declared dep {dep} does not exist"


def test_closure_follows_lazy_imports(tmp_path: Path) -> None:
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(REPO / "stages" / "transfer.py")}
    assert "src/autos/training.py" in closure and "stages/common.py" in closure


@pytest.mark.parametrize("stage,module,deps", _stages(), ids=[s[0] for s in _stages()])
def test_no_code_dep_the_stage_does_not_import(stage: str, module: str, deps: list[str]) -> None:
    # an extra dep re-runs the stage (IRP is the expensive one) after edits that cannot change its results
    entry = _module_file(module)
    assert entry is not None
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(entry)}
    extra = [d for d in deps if d.endswith(".py") and d not in closure]
    assert not extra, f"dvc.yaml stage {stage!r} declares deps it does not import: {extra}"
