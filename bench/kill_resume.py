"""Kill -9 the transfer stage at random moments, then let it finish: are the rows identical to an uninterrupted
run, with no duplicate MLflow runs and no RUNNING orphans?

Needs a study folder in which `dvc repro` has already run (the smoke profile is enough: ~1 min), e.g.

    .venv/bin/python bench/kill_resume.py /path/to/study --target vgg16_cifar10 --kills 5

It runs the stage once uninterrupted for the reference results.json, deletes the target's cells and output, runs
`python -m stages.transfer` and SIGKILLs it after a random delay (seeded) `--kills` times, runs it once more to
the end, and writes bench/results/kill_resume.json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import REPO, save


def reference_rows(results_json: bytes) -> list[dict]:
    import json

    return json.loads(results_json)["rows"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path)
    p.add_argument("--target", default="vgg16_cifar10")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    root = args.study.resolve()
    out = root / "data" / "transfer" / args.target / "results.json"
    env = {**os.environ, "AUTOS_ROOT": str(root), "PYTHONPATH": str(REPO), "AUTOS_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "stages.transfer", "--target", args.target]

    shutil.rmtree(root / "data" / "cache" / "cells" / args.target, ignore_errors=True)  # a true full run
    start = time.perf_counter()
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    full_seconds = time.perf_counter() - start
    reference = out.read_bytes()

    resume_start = time.time()
    shutil.rmtree(root / "data" / "cache" / "cells" / args.target, ignore_errors=True)
    shutil.rmtree(out.parent, ignore_errors=True)
    rng = random.Random(args.seed)
    kills = []
    for _ in range(args.kills):
        delay = rng.uniform(0.25, 0.4) * full_seconds  # start-up is ~4 s; each run must get some cells done, not all
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        cells = len(list((root / "data" / "cache" / "cells" / args.target).glob("*.json")))
        kills.append({"after_s": round(delay, 2), "cells_finished": cells})
        print(f"killed after {delay:.1f}s: {cells} cells finished", flush=True)
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(os.environ.get("EXPERIMENT", "autos-smoke"))
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    children = [r for r in runs if r.data.tags.get("target") == args.target and "mlflow.parentRunId" in r.data.tags]
    since = [r for r in children if r.info.start_time >= int(resume_start * 1000)]  # the kill/resume phase only
    finished = Counter(r.info.run_name for r in since if r.info.status == "FINISHED")
    payload = {
        "target": args.target, "uninterrupted_stage_seconds": round(full_seconds, 1), "kills": kills,
        "rows_identical": out.read_bytes() == reference,
        "running_orphans": sum(r.info.status == "RUNNING" for r in runs),
        "runs_expected": len(reference_rows(reference)),
        "runs_finished_once": sum(c == 1 for c in finished.values()),
        "runs_finished_twice_or_more": sorted(n for n, c in finished.items() if c > 1),
        "nested_run_statuses": dict(Counter(r.info.status for r in since)),
    }
    save("kill_resume", payload)


if __name__ == "__main__":
    main()
