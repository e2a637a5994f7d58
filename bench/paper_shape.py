"""The paper profile in shape, on CPU: every structural setting of ``configs/paper.yaml`` kept, only sizes shrunk.

Kept: all three targets, all 14 methods, all 7 sparsities, all three modifiers, IRP with 20 linear rounds to 1% from
the untrained init, the ``paper`` scorer (its 3x32x32 ResNet-18 backbone), Tiny ImageNet at 64 px, the multistep
schedule, every method's own schedule (SynFlow's 100 rounds, IRP-on-target's 20% per round).
Shrunk: widths (models and the scorer's backbone) to ``--width``, images per class, Tiny ImageNet's classes to
10 (a 200-class head is larger than Lottery Jackpots' whole budget at width 4: ``shape_params``), epochs (the
recipe's, IRP's per round, the scorer's, and the methods' own training phases) to 1, seeds to one.

    python -m bench.paper_shape                    # the whole shape through `dvc repro` in a temporary copy
    python -m bench.paper_shape --print            # the derived params only
    python -m bench.paper_shape --slice            # one target, every method and modifier at two sparsities

Writes bench/results/paper_shape[_slice].json: the stages' wall times, cells, rows and the seconds per cell. The
test suite runs the slice (tests/test_paper_shape.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# The methods' own training phases, in epochs (sizes, shrunk like the recipe's); everything else stays the paper's.
METHOD_EPOCHS: dict[str, dict[str, Any]] = {
    "kstarts": {"select_epochs": 1},
    "dissipating": {"max_epochs": 1},
    "kstarts_dissipating": {"kstarts": {"select_epochs": 1}, "dissipating": {"max_epochs": 1}},
    "pruning_from_scratch": {"gate_epochs": 1},
    "lottery_jackpots": {"dense_epochs": 1, "search_epochs": 1},
    "irp": {"epochs_per_round": 1},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def shape_params(width: int = 4, images_per_class: int = 2, slice_: bool = False) -> dict[str, Any]:
    """``configs/paper.yaml`` with only its sizes shrunk (module docstring); ``slice_``: the test suite's slice."""
    params = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    params["data"].update(download=False, search_dirs=["../shared/data"])
    params["data"]["datasets"] = {  # one image per class of each is held out for validation
        "cifar10": {"max_train_per_class": images_per_class + 1, "max_test_per_class": 1},
        # Tiny ImageNet at its 64 px, but 10 of its 200 classes: at width 4 ResNet-18 has ~44k weights, and Lottery
        # Jackpots keeps the classifier dense (docs/reference/methods.md section 4), so a 200-class head (6,400 weights)
        # exceeds the whole budget at 90% and above and the method refuses, rightly. At the paper's width 64 it fits
        # (102k of 11.2M: 0.9%, under the 1% density of 99%). GraSP needs 2 training images per class.
        "tiny_imagenet": {"max_train_per_class": images_per_class + 1, "max_test_per_class": 1, "max_classes": 10},
    }
    params["training"].update(epochs=1)
    params["source"]["width"] = width
    params["irp"]["epochs_per_round"] = 1
    params["scorer"]["settings"]["width"] = width
    params["scorer"]["epochs"] = 1
    transfer = params["transfer"]
    for spec in transfer["targets"].values():
        spec["width"] = width
    transfer["seeds"] = [0]
    transfer["validation_per_class"] = 1
    params["sources"]["seeds"] = [0]  # paired with the one target seed
    # Cells on Ray as the profile runs them, on this machine's CPUs: packing GPUs is the one setting a CPU cannot keep
    params["execution"].update(num_gpus=0, num_cpus=1)
    transfer["method_settings"] = _merge(transfer.get("method_settings") or {}, METHOD_EPOCHS)
    params["tracking"]["experiment"] = "autos-paper-shape"
    if slice_:
        transfer["targets"] = {"vgg16_cifar10": transfer["targets"]["vgg16_cifar10"]}
        transfer["sparsities"] = [0.5, 0.99]
        params["data"]["datasets"].pop("tiny_imagenet")
        params["irp"].update(num_rounds=3)  # the source's rounds are not what the slice checks
        params["execution"]["backend"] = "local"  # the Ray path has its own tests (marked `ray`)
    return params


def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = {".venv", "data", "reports", "metrics", "mlflow.db", "mlartifacts", ".git", "dvc.lock"}
    ignored = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".egg-info")}
    return ignored | (skip & set(names) if Path(directory).resolve() == REPO else set())


def run(params: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``dvc repro`` of ``params`` in a copy of this working tree at ``workdir``; the stages' times and the cells."""
    shutil.copytree(REPO, workdir, ignore=_ignore)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("AUTOS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env["DVC_NO_ANALYTICS"] = "1"
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True, env=env)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=6 * 3600)
    seconds = time.perf_counter() - start
    (workdir / "repro.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed (exit {proc.returncode}) after {seconds:.0f} s; log kept at "
                         f"{workdir / 'repro.log'}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    targets = {}
    for results in sorted((workdir / "data" / "transfer").glob("*/results.json")):
        rows = json.loads(results.read_text())["rows"]
        targets[results.parent.name] = {"rows": len(rows), "methods": sorted({r["method"] for r in rows}),
                                        "modifiers": sorted({r["modifier"] for r in rows if r["modifier"]}),
                                        "sparsities": sorted({r["sparsity"] for r in rows})}
    return {"dvc_repro_seconds": round(seconds, 1), "targets": targets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the derived params and stop")
    parser.add_argument("--slice", action="store_true", help="one target, every method and modifier, two sparsities")
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--images-per-class", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    params = shape_params(args.width, args.images_per_class, args.slice)
    if args.print:
        print(yaml.safe_dump(params, sort_keys=False))
        return 0
    with tempfile.TemporaryDirectory(prefix="paper-shape-") as tmp:
        outcome = run(params, args.keep or Path(tmp) / "repo")
    outcome.update(width=args.width, images_per_class=args.images_per_class, slice=args.slice,
                   date=time.strftime("%Y-%m-%d"))
    out = REPO / "bench" / "results" / f"paper_shape{'_slice' if args.slice else ''}.json"
    out.write_text(json.dumps(outcome, indent=1) + "\n")
    print(json.dumps(outcome, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
