"""The scorer sweep of docs/sweeps.md: DVC experiments that change the label (IRP criterion), the loss or the
scorer's inputs, each compared on held-out source weights with the trivial |w0| scorer (does the scorer learn more
than magnitude?).

Run in a study folder where `dvc repro` has run (git repository with the study committed). Every variant is a
`dvc exp run --temp -n <name> -S ... train_scorer` (its own copy; the workspace is untouched); then
`dvc exp show --json` is read back. Writes bench/results/scorer_sweep.json and prints the table of docs/sweeps.md.

    .venv/bin/python bench/scorer_sweep.py /path/to/study [--only name ...] [--out scorer_sweep_irp]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import save

INPUTS_ALL = "[w0_layer_z,g0_layer_z,log_fan_in,log_fan_out]"
VARIANTS: dict[str, list[str]] = {
    "base": [],  # the default study's settings: the committed run itself (HEAD), not re-run
    "pairwise": ["scorer.loss=pairwise"],
    "w0-only": ["scorer.settings.inputs=[w0_layer_z,log_fan_in,log_fan_out]"],
    "g0-only": ["scorer.settings.inputs=[g0_layer_z,log_fan_in,log_fan_out]"],
    "no-layer-descriptors": ["scorer.settings.inputs=[w0_layer_z,g0_layer_z]"],
    "snip-irp": ["irp.criterion=snip"],
    "snip-irp-pairwise": ["irp.criterion=snip", "scorer.loss=pairwise"],
    # does a longer IRP make the label less of a function of |w0|? (rounds long enough for weights to move)
    "irp-8-rounds": ["irp.num_rounds=8"],
    "irp-16-epochs-per-round": ["irp.epochs_per_round=16"],
}
HEADLINE = ("spearman", "topk_overlap_d0.1", "topk_overlap_d0.05")


def dvc(study: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=study, env=env, capture_output=True, text=True,
                          timeout=3600)


SCORER_METRICS = "metrics/scorer_0.json"  # source run 0 (sources.seeds): the sweep compares one source's scorer


def scorer_metrics(shown: list[dict], name: str) -> dict | None:
    """The scorer metrics of experiment ``name`` (``base``: the committed baseline itself)."""
    for baseline in shown:
        if name == "base" and baseline.get("rev") != "workspace" and baseline.get("data"):
            return baseline["data"]["metrics"][SCORER_METRICS]["data"]
        for exp in baseline.get("experiments") or []:
            if exp.get("name") == name:
                data = exp["revs"][0]["data"]
                return data["metrics"][SCORER_METRICS]["data"]
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path)
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--out", default="scorer_sweep", help="results name: bench/results/<out>.json")
    args = p.parse_args()
    study = args.study.resolve()
    names = args.only or list(VARIANTS)
    for name in names:
        if not VARIANTS[name]:
            continue
        sets = [a for s in VARIANTS[name] for a in ("-S", s)]
        proc = dvc(study, "exp", "run", "--temp", "-n", name, *sets, "train_scorer")
        print(name, "rc", proc.returncode, flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], flush=True)
    shown = json.loads(dvc(study, "exp", "show", "--json").stdout)
    table = {}
    for name in names:
        metrics = scorer_metrics(shown, name)
        if metrics is None:
            continue
        table[name] = {"settings": VARIANTS[name],
                       "scorer": {k: metrics["scorer"][k] for k in HEADLINE if k in metrics["scorer"]},
                       "abs_w0": {k: metrics["baselines"]["abs_w0"][k] for k in HEADLINE
                                  if k in metrics["baselines"]["abs_w0"]}}
    save(args.out, {"variants": table})
    print("| variant | -S settings | scorer Spearman | abs_w0 Spearman | scorer top-5% overlap | abs_w0 top-5% |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, row in table.items():
        s, w = row["scorer"], row["abs_w0"]
        print(f"| {name} | {' '.join(row['settings']) or '(default)'} | {s['spearman']:.3f} | {w['spearman']:.3f} | "
              f"{s.get('topk_overlap_d0.05', float('nan')):.3f} | {w.get('topk_overlap_d0.05', float('nan')):.3f} |")


if __name__ == "__main__":
    main()
