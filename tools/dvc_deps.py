"""Rewrite the code deps of every stage in dvc.yaml from the stage's import closure (``autos.codebase``).

    python tools/dvc_deps.py            # prints what would change
    python tools/dvc_deps.py --write    # rewrites the code deps in dvc.yaml (data deps are kept as they are)

A package folder is listed as one dep when every file of it is in the closure, else file by file. The closure and
its exceptions (imports that only validate config) are the ones ``tests/test_dvc_deps.py`` checks against.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.test_dvc_deps import _module_file, _stages, import_closure  # noqa: E402


def code_deps(entry: Path) -> list[str]:
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(entry)}
    deps: list[str] = []
    folders = sorted({str(Path(p).parent) for p in closure if p.endswith("/__init__.py") and p.startswith("src/")})
    covered: set[str] = set()
    for folder in folders:
        files = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*.py")}
        if files <= closure and not any(folder.startswith(f + "/") for f in deps if f in folders):
            deps.append(folder)
            covered |= files
    deps = [d for d in deps if not any(d.startswith(o + "/") for o in deps if o != d)]
    covered = {p for p in closure if any(p.startswith(d + "/") for d in deps)}
    order = {"stages": 0, "src/autos/__init__.py": 1}
    rest = sorted(closure - covered, key=lambda p: (order.get(p.split("/")[0], 2), p))
    return [p for p in rest if p.startswith("stages/")] + sorted(deps + [p for p in rest if p.startswith("src/")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text = (REPO / "dvc.yaml").read_text()
    changed = False
    for stage, module, declared in _stages():
        entry = _module_file(module)
        assert entry is not None
        wanted = code_deps(entry)
        old_code = [d for d in declared if d.startswith(("src/", "stages/"))]
        if old_code == wanted:
            continue
        changed = True
        print(f"{stage}:\n  - " + "\n  - ".join(wanted))
        # the stage's deps block: replace its code lines (the first to the last) with the wanted ones
        start = text.index(f"python -m {module}")
        block_start = text.index("deps:\n", start) + len("deps:\n")
        block_end = block_start
        lines = text[block_start:].split("\n")
        indent = re.match(r"\s*", lines[0]).group(0)  # type: ignore[union-attr]
        kept: list[str] = []
        for line in lines:
            if not line.startswith(indent + "- "):
                break
            block_end += len(line) + 1
            if not line.strip()[2:].startswith(("src/", "stages/")):
                kept.append(line)
        new_block = "".join(f"{indent}- {d}\n" for d in wanted) + "".join(f"{k}\n" for k in kept)
        text = text[:block_start] + new_block + text[block_end:]
    if args.write and changed:
        (REPO / "dvc.yaml").write_text(text)
    print("dvc.yaml " + ("rewritten" if args.write and changed else "unchanged" if not changed else "would change"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
