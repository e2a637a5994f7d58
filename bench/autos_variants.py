"""AutoS variants side by side, paired by seed, from the results of several runs of one study.

Usage: python bench/autos_variants.py --run NAME=DIR [--run NAME=DIR ...] [--out NAME]

Each DIR holds one run's ``<target>/results.json`` (a copy of ``data/transfer/<target>/results.json`` after
``dvc repro`` or a ``dvc exp run -S transfer.method_settings.autos.<setting>=...`` in the workspace; docs/sweeps.md
lists the commands). The first run supplies the baselines; from every run only the AutoS rows are taken, labelled
``autos[NAME]`` (and ``autos[NAME]+shuffle``). The runs must share the baselines' seeds and init (one study, its
settings other than AutoS's unchanged), which the script checks: every run's baseline rows must equal the first's.
For each target and sparsity it prints and writes the mean ± std over seeds of every AutoS variant and baseline, and
each variant minus the best single-shot baseline (the report's rule: highest mean, kind ``pai``, no modifier) with
the 95% paired t-interval (``autos.report.compare``, the report's own statistics). Writes
bench/results/autos_variants[_NAME].json.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from common import save

from autos.pruners import PRUNERS
from autos.report.aggregate import TargetResults, cell_stats, load_results
from autos.report.compare import REFERENCE, paired_diff, seed_values, single_shot_baselines
from autos.sweep.records import RunRow


def load(directory: Path) -> dict[str, TargetResults]:
    results = load_results(sorted(directory.glob("*/results.json")))
    if not results:
        raise SystemExit(f"{directory}: no <target>/results.json")
    return results


def _baseline_key(row: RunRow) -> tuple:
    return (row.method, row.modifier, row.sparsity, row.seed, row.final_test_acc)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--out", default="")
    args = p.parse_args()
    runs = [(spec.split("=", 1)[0], Path(spec.split("=", 1)[1])) for spec in args.run]
    loaded = {name: load(directory) for name, directory in runs}
    first = runs[0][0]
    out: dict[str, Any] = {"runs": {name: str(d) for name, d in runs}, "targets": {}}
    for target, base in loaded[first].items():
        baseline_rows = [r for r in base.rows if r.method != REFERENCE]
        rows = list(baseline_rows)
        for name, payloads in loaded.items():
            if target not in payloads:
                raise SystemExit(f"run {name!r} has no results for target {target!r}")
            theirs = sorted(_baseline_key(r) for r in payloads[target].rows if r.method != REFERENCE)
            if theirs != sorted(_baseline_key(r) for r in baseline_rows):
                raise SystemExit(f"run {name!r}: the baseline rows of {target} differ from run {first!r}'s "
                                 "(another study, seed set or code?): the variants would not be paired")
            rows += [r.model_copy(update={"method": f"{REFERENCE}[{name}]"}) for r in payloads[target].rows
                     if r.method == REFERENCE]
        # the renamed AutoS rows have no record and no recorded kind: never a baseline
        baselines = single_shot_baselines(TargetResults(target, tuple(rows), methods=base.methods), PRUNERS.records())
        values = seed_values(rows)
        stats = cell_stats(rows)
        result: dict[str, Any] = {}
        for sparsity in sorted({r.sparsity for r in rows if r.sparsity > 0}):
            best = max(baselines, key=lambda m: stats[(m, sparsity)].mean if (m, sparsity) in stats else -math.inf)
            entry: dict[str, Any] = {"best_baseline": best, "cells": {}, "vs_best": {}}
            for (label, s), cell in stats.items():
                if s == sparsity:
                    entry["cells"][label] = {"mean": 100 * cell.mean, "std": 100 * cell.std, "n": cell.n,
                                             "collapsed_seeds": sum(1 for r in rows if r.sparsity == s
                                                                    and r.label == label and r.is_collapsed)}
            for label in entry["cells"]:
                if label.startswith(f"{REFERENCE}["):
                    d = paired_diff(values, label, best, sparsity)
                    if d is not None:
                        entry["vs_best"][label] = {"mean": 100 * d.mean, "ci": [100 * d.ci_low, 100 * d.ci_high],
                                                   "n": d.n}
            result[f"{sparsity:g}"] = entry
            print(f"\n{target} at sparsity {sparsity:g} (best single-shot baseline: {best})")
            for label, c in sorted(entry["cells"].items(), key=lambda kv: -kv[1]["mean"]):
                vs = entry["vs_best"].get(label)
                extra = f"   vs {best}: {vs['mean']:+.1f} [{vs['ci'][0]:+.1f}, {vs['ci'][1]:+.1f}]" if vs else ""
                flag = f" (collapsed in {c['collapsed_seeds']})" if c["collapsed_seeds"] else ""
                print(f"  {label:32s} {c['mean']:5.1f} ± {c['std']:.1f} (n={c['n']}){flag}{extra}")
        out["targets"][target] = result
    save("autos_variants" + (f"_{args.out}" if args.out else ""), out)


if __name__ == "__main__":
    main()
