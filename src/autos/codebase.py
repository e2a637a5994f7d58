"""The project's own code as a graph of imports: which source files a piece of code can run.

Two things are keyed on it: DVC's code deps of each stage (``tests/test_dvc_deps.py`` checks ``dvc.yaml`` against
the import closure of the stage's entry point) and a sweep cell's code digest (``autos.sweep.cells``: a cell is
re-run when the code it runs changes, not when an unrelated method is added).

The analysis is static (``ast``): every ``import`` anywhere in a file counts, lazy imports inside functions
included, and ``from a.b import c`` also reaches ``a.b.c`` when that is a module. Importing ``a.b.c`` runs
``a/__init__`` and ``a/b/__init__`` too, so those are in the closure. A module listed as *opaque* is part of the
closure but its own imports are not followed: the method registry's package, whose ``__init__`` imports every
method so that names resolve, is opaque to a cell that runs one method.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]  # the folder holding the ``autos`` package


def module_file(name: str, roots: Mapping[str, Path]) -> Path | None:
    """The file of module ``name`` (``pkg/mod.py`` or ``pkg/mod/__init__.py``) under its top package's root."""
    base_dir = roots.get(name.split(".")[0])
    if base_dir is None:
        return None
    base = base_dir / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, roots: Mapping[str, Path]) -> str:
    for base_dir in roots.values():
        if path.is_relative_to(base_dir):
            parts = list(path.relative_to(base_dir).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is under none of the roots {sorted(map(str, roots.values()))}")


def imports_of(path: Path, roots: Mapping[str, Path], skip_functions: Collection[str] = ()) -> set[str]:
    """Own modules imported anywhere in ``path``, except inside the functions named in ``skip_functions``
    (``"*"``: every function of the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, roots)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = {id(inner) for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and ({node.name, "*"} & set(skip_functions))
               for inner in ast.walk(node)}
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
        for imported in names:
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                if module_file(".".join(parts[:i]), roots) is not None:
                    found.add(".".join(parts[:i]))
    return found


def import_closure(entries: Iterable[Path], roots: Mapping[str, Path], *, opaque: Collection[str] = (),
                   skip: Mapping[Path, Collection[str]] | None = None) -> set[Path]:
    """Every own source file reachable from ``entries`` by imports. ``opaque``: module names whose imports are not
    followed; ``skip``: per file, the functions whose imports are not followed (see ``imports_of``)."""
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if module_name(path, roots) in opaque:
            continue
        for imported in imports_of(path, roots, (skip or {}).get(path, ())):
            found = module_file(imported, roots)
            if found is not None:
                todo.append(found)
    return seen


def code_digest(modules: Iterable[str], *, opaque: Collection[str] = (), exclude: Collection[str] = (),
                src: Path = SRC) -> str:
    """sha256 over the source of the import closure of the ``autos`` modules ``modules`` (file paths and bytes, in
    path order), leaving out the modules in ``exclude`` (code that cannot change a result: log lines, progress).
    ``src``: the folder holding the ``autos`` package (another copy of the code, in tests)."""
    roots = {"autos": src}
    modules = list(modules)
    entries = [module_file(name, roots) for name in modules]
    missing = [name for name, path in zip(modules, entries, strict=True) if path is None]
    if missing:
        raise ValueError(f"no source file for module(s) {', '.join(missing)}")
    files = import_closure([p for p in entries if p is not None], roots, opaque=opaque)
    digest = hashlib.sha256()
    for path in sorted(files):
        if module_name(path, roots) in exclude:
            continue
        digest.update(path.relative_to(src).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
