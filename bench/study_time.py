"""Wall time of a whole study (`dvc repro` of a profile in a temporary copy of the repo), per stage from MLflow.

Usage: python bench/study_time.py [configs/smoke.yaml|params.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, save

TOP = {".venv", "data", "reports", "metrics", "mlflow.db", "mlartifacts", ".git", "dvc.lock", "bench"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", nargs="?", default="params.yaml")
    p.add_argument("--keep", type=Path, default=None, help="copy the finished study here (reports, metrics, db)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp()) / "repo"
    shutil.copytree(REPO, tmp, ignore=lambda d, names: (TOP & set(names)) if Path(d) == REPO else
                    {n for n in names if n == "__pycache__"})
    shutil.copy(REPO / args.profile, tmp / "params.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.setdefault("AUTOS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["DVC_NO_ANALYTICS"] = "1"
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=tmp, env=env)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dvc repro failed (exit {proc.returncode}) in {tmp}")

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    stages = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=5000):
            if "mlflow.parentRunId" in run.data.tags:
                continue
            stages[run.info.run_name] = (run.info.end_time - run.info.start_time) / 1000.0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for name in ("reports", "metrics", "mlflow.db", "mlartifacts", "dvc.lock"):
            src = tmp / name
            if src.is_dir():
                shutil.copytree(src, args.keep / name, dirs_exist_ok=True)
            elif src.exists():
                shutil.copy(src, args.keep / name)
    save(f"study_time_{Path(args.profile).stem}", {"profile": args.profile, "total_seconds": total,
                                                   "stage_seconds_mlflow": stages})


if __name__ == "__main__":
    main()
