"""dvc.yaml declares every module a stage's results depend on: the static import closure of each stage's entry
point (lazy imports inside functions included) must be covered by the stage's declared deps, or DVC would skip
a re-run after a change that alters results."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autos.codebase import import_closure as codebase_closure
from autos.codebase import module_file

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# Functions ("*": every function of the file) whose imports only validate *other* sections' names and settings
# at load: every stage validates the whole params file, so a typo in transfer.methods fails before IRP runs. They
# cannot change a stage's results, so following them would make every stage depend on every module and re-run on
# any edit. Logging the scorer to MLflow (tracking.log_scorer_model) ships its code as an artifact and likewise
# changes no result. The composition root (autos.study) imports every registry to validate names; the settings it
# resolves are read by transfer (which depends on src/autos/pruners) and train_scorer (src/autos/scorer) only,
# whose own deps cover them.
VALIDATION_ONLY = {
    ("src/autos/config/*", "*"),
    ("src/autos/study.py", "*"),
    ("src/autos/tracking/tracker.py", "log_scorer_model"),
}
ROOTS = {"autos": SRC, "stages": REPO}


def _skip() -> dict[Path, set[str]]:
    skip: dict[Path, set[str]] = {}
    for pattern, function in VALIDATION_ONLY:
        for path in REPO.glob(pattern):
            skip.setdefault(path, set()).add(function)
    return skip


def _module_file(name: str) -> Path | None:
    return module_file(name, ROOTS)


def import_closure(entry: Path) -> set[Path]:
    return codebase_closure([entry], ROOTS, skip=_skip())


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
    assert "src/autos/training/loop.py" in closure and "src/autos/pipeline/context.py" in closure


@pytest.mark.parametrize("stage,module,deps", _stages(), ids=[s[0] for s in _stages()])
def test_no_code_dep_the_stage_does_not_import(stage: str, module: str, deps: list[str]) -> None:
    # an extra dep re-runs the stage (IRP is the expensive one) after edits that cannot change its results
    entry = _module_file(module)
    assert entry is not None
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(entry)}
    extra = [d for d in deps if d.endswith(".py") and d not in closure]
    assert not extra, f"dvc.yaml stage {stage!r} declares deps it does not import: {extra}"
