"""The transfer stage's cells on the local and Ray backends: cells/hour and whether the rows agree.

Needs a study folder where `dvc repro` has run (the smoke profile is enough). Runs `python -m stages.transfer`
three times from an empty cell cache: local with all threads (the default), local with 1 thread per cell, and Ray
with 2 workers of 1 CPU each; writes bench/results/<name>.json (default executors.json). Rows of the two 1-thread
runs must be identical.

    .venv/bin/python bench/executors.py /path/to/study --target vgg16_cifar10 [--name executors_default]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import REPO, save

VARIANTS = {
    "local_all_threads": {"backend": "local", "num_cpus": None},
    "local_1_thread": {"backend": "local", "num_cpus": 1},
    "ray_2_workers_1_cpu": {"backend": "ray", "num_cpus": 1},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path)
    p.add_argument("--target", default="vgg16_cifar10")
    p.add_argument("--name", default="executors", help="results file: bench/results/<name>.json")
    args = p.parse_args()
    root = args.study.resolve()
    params = root / "params.yaml"
    original = params.read_text()
    out = root / "data" / "transfer" / args.target / "results.json"
    env = {**os.environ, "AUTOS_ROOT": str(root), "PYTHONPATH": str(REPO), "AUTOS_LOG_LEVEL": "WARNING"}
    figures, rows = {}, {}
    try:
        for name, execution in VARIANTS.items():
            raw = yaml.safe_load(original)
            raw["execution"] = {**raw.get("execution", {}), **execution}
            params.write_text(yaml.safe_dump(raw))
            shutil.rmtree(root / "data" / "cache" / "cells" / args.target, ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "stages.transfer", "--target", args.target], cwd=root, env=env,
                           check=True, capture_output=True)
            seconds = time.perf_counter() - start
            cells = len(list((root / "data" / "cache" / "cells" / args.target).glob("*.json")))
            figures[name] = {"seconds": round(seconds, 1), "cells": cells,
                             "cells_per_hour": round(cells * 3600 / seconds)}
            rows[name] = out.read_bytes()
            print(name, figures[name], flush=True)
    finally:
        params.write_text(original)
    base = figures["local_all_threads"]["cells_per_hour"]
    for f in figures.values():
        f["ratio_to_local_all_threads"] = round(f["cells_per_hour"] / base, 2)
    save(args.name, {"target": args.target, "variants": figures,
                       "rows_identical_1_thread_local_vs_ray": rows["local_1_thread"] == rows["ray_2_workers_1_cpu"]})


if __name__ == "__main__":
    main()
