"""The smoke study's DVC outputs, hashed: a change that claims to leave results alone (a refactor) runs this before
and after and compares (``--compare``). Every stage's `outs` and `metrics` are hashed file by file (sha256), so a
difference names the file.

    python -m bench.smoke_outputs --out /tmp/before.json          # the smoke profile through `dvc repro`
    python -m bench.smoke_outputs --compare /tmp/before.json      # exits 1 naming every file that differs

The study runs in a temporary copy of this working tree (what `tests/test_pipeline.py` does), with the offline data
of ``$AUTOS_DATA_DIR`` or ``../shared/data``. CPU results reproduce on one machine, not across machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT_DIRS = ("data/prepared", "data/irp", "data/features", "data/scorer", "data/transfer", "metrics", "reports")
SKIP_TOP = {".venv", "data", "reports", "metrics", "mlflow.db", "mlartifacts", ".git", "dvc.lock"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".egg-info")}
    if Path(directory).resolve() == REPO:
        ignored |= SKIP_TOP & set(names)
    return ignored


def run_smoke(workdir: Path) -> tuple[dict[str, str], float]:
    shutil.copytree(REPO, workdir, ignore=_ignore)
    shutil.copy(workdir / "configs" / "smoke.yaml", workdir / "params.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("AUTOS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["DVC_NO_ANALYTICS"] = "1"
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True, env=env)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dvc repro failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    hashes = {}
    for folder in OUTPUT_DIRS:
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_file():
                hashes[path.relative_to(workdir).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return hashes, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, help="an earlier output to compare with (exit 1 on any difference)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smoke_outputs.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smoke-outputs-") as tmp:
        hashes, seconds = run_smoke(Path(tmp) / "repo")
    print(f"smoke study: {len(hashes)} output files, dvc repro {seconds:.0f} s")
    if args.compare is not None:
        old = json.loads(args.compare.read_text())["files"]
        differ = sorted(k for k in set(old) | set(hashes) if old.get(k) != hashes.get(k))
        print(f"{len(differ)} of {len(set(old) | set(hashes))} files differ from {args.compare}")
        for key in differ:
            print(f"  {key}: {old.get(key)} -> {hashes.get(key)}")
        return 1 if differ else 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dvc_repro_seconds": round(seconds, 1), "files": hashes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
