"""Seed-to-seed spread of each method against the training budget: epochs and training images per class.

Usage: python bench/seed_noise.py [--target vgg16_cifar10] [--setting EPOCHSxIMAGES ...] [--methods m1,m2,...]
       [--seeds 0,1,2] [--sparsity 0.98] [--profile params.yaml] [--out NAME]

Why: the default study must hold >= 3 paired seeds in a bounded CPU budget, so the budget is trimmed where it buys
no information. This measures what each trim costs: for every setting (``10x500`` = 10 epochs, 500 training images
per class of the target's dataset) it runs the target's transfer stage alone (``python -m stages.transfer``, the
study's own cells, recipe and statistics) on the profile with only that target, the listed baselines (no AutoS:
they need no source IRP), the dense model, no modifiers and no tracking, in a fresh study root per setting. Prints
and writes, per setting and method, the mean and std of final-epoch test accuracy over seeds, the paired std of a
method's difference to random ERK (what a verdict's interval is made of) and the stage's wall time.
Writes bench/results/seed_noise[_NAME].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import REPO, save

from autos.report.aggregate import cell_stats
from autos.sweep.records import RunRow

PAIR_WITH = "random_erk"


def parse_setting(text: str) -> tuple[int, int]:
    try:
        epochs, images = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--setting {text!r}: expected EPOCHSxIMAGES_PER_CLASS, e.g. 10x500") from None
    if epochs < 1 or images < 1:
        raise SystemExit(f"--setting {text!r}: epochs and images per class must be >= 1")
    return epochs, images


def study_params(profile: dict[str, Any], target: str, epochs: int, images: int, methods: list[str],
                 seeds: list[int], sparsity: float) -> dict[str, Any]:
    """The profile cut down to one target's baselines at one training budget."""
    params = json.loads(json.dumps(profile))  # a deep copy of plain YAML data
    spec = params["transfer"]["targets"][target]
    spec.pop("epochs", None)  # the setting's epochs apply to this target
    dataset = spec["dataset"]
    params["data"]["datasets"] = {dataset: {**params["data"]["datasets"][dataset], "max_train_per_class": images}}
    params["data"]["download"] = False
    params["training"]["epochs"] = epochs
    settings = params["transfer"].get("method_settings") or {}
    params["transfer"].update({
        "targets": {target: spec}, "methods": methods, "seeds": seeds, "sparsities": [sparsity], "dense": True,
        "modifiers": [], "modifier_methods": None,
        "method_settings": {m: s for m, s in settings.items() if m in methods},
    })
    params["tracking"]["enabled"] = False
    return params


def run_setting(params: dict[str, Any], target: str, env: dict[str, str]) -> tuple[list[dict[str, Any]], float]:
    root = Path(tempfile.mkdtemp(prefix="seed_noise_"))
    (root / "paths.yaml").write_text((REPO / "paths.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**env, "AUTOS_ROOT": str(root)}
    dataset = params["transfer"]["targets"][target]["dataset"]
    start = time.perf_counter()
    for stage in (["prepare_data", "--dataset", dataset], ["transfer", "--target", target]):
        cmd = [sys.executable, "-m", f"stages.{stage[0]}", *stage[1:], "--params", str(root / "params.yaml")]
        proc = subprocess.run(cmd, cwd=REPO, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); study root kept at {root}")
    seconds = time.perf_counter() - start
    payload = json.loads((root / "data" / "transfer" / target / "results.json").read_text())
    shutil.rmtree(root)  # a finished setting's study root is only scratch (a failed one is kept, above)
    return [RunRow.from_json(r) for r in payload["rows"]], seconds


def summarise(rows: list[RunRow], sparsity: float) -> dict[str, Any]:
    stats = cell_stats(rows)
    by_seed: dict[str, dict[int, float]] = {}
    for row in rows:
        by_seed.setdefault(row.label, {})[row.seed] = 100 * row.final_test_acc
    out: dict[str, Any] = {}
    for (label, s), cell in sorted(stats.items()):
        if label != "dense" and s != sparsity:
            continue
        entry = {"mean": round(100 * cell.mean, 2), "std": round(100 * cell.std, 2), "n": cell.n,
                 "collapsed": cell.collapsed}
        if label not in ("dense", PAIR_WITH) and PAIR_WITH in by_seed:
            seeds = sorted(set(by_seed[label]) & set(by_seed[PAIR_WITH]))
            diffs = [by_seed[label][k] - by_seed[PAIR_WITH][k] for k in seeds]
            if len(diffs) >= 2:
                entry[f"paired_std_vs_{PAIR_WITH}"] = round(statistics.stdev(diffs), 2)
        out[label] = entry
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="vgg16_cifar10")
    p.add_argument("--setting", action="append", default=None, metavar="EPOCHSxIMAGES")
    p.add_argument("--methods", default="random,random_erk,magnitude,snip")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sparsity", type=float, default=0.98)
    p.add_argument("--profile", default="params.yaml")
    p.add_argument("--out", default="")
    args = p.parse_args()
    settings = [parse_setting(s) for s in (args.setting or ["5x500", "10x500", "20x500", "10x250"])]
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",")]
    profile = yaml.safe_load((REPO / args.profile).read_text())
    if args.target not in profile["transfer"]["targets"]:
        raise SystemExit(f"--target {args.target!r} is not in {args.profile} "
                         f"(declared: {', '.join(profile['transfer']['targets'])})")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env.setdefault("AUTOS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    results: dict[str, Any] = {}
    for epochs, images in settings:
        params = study_params(profile, args.target, epochs, images, methods, seeds, args.sparsity)
        rows, seconds = run_setting(params, args.target, env)
        results[f"{epochs}x{images}"] = {"epochs": epochs, "images_per_class": images,
                                         "stage_seconds": round(seconds, 1), "methods": summarise(rows, args.sparsity)}
        print(json.dumps({f"{epochs}x{images}": results[f"{epochs}x{images}"]}, indent=1), flush=True)
    name = f"seed_noise_{args.target}" + (f"_{args.out}" if args.out else "")
    save(name, {"profile": args.profile, "target": args.target, "sparsity": args.sparsity, "seeds": seeds,
                "methods": methods, "settings": results})


if __name__ == "__main__":
    main()
