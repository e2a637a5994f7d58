"""Learned layer densities against the baselines' own, under the same treatment (exploratory, unadjusted).

Usage: python bench/controls_contrasts.py reports/results.csv [--reference autos_densities] [--out FILE]

``autos_densities`` keeps the scorer's per-layer counts (each layer at least half its ERK count) and picks random
weights inside each layer. The controls profile (configs/controls.yaml) gives magnitude, SNIP and SynFlow the same
floor (``<method>_floor``) and the same random positions (``+shuffle``), so ``<method>_floor+shuffle`` is that
method's own layer densities under AutoS's treatment. This prints ``reference - other`` for each, in percentage
points of final-epoch test accuracy: per target seed, the reference is first averaged over its source runs (the
other methods read no source), then a 95% t-interval over seeds (``autos.report.stats``, as the report's controls).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from autos.report.stats import t_interval, t_test_p  # noqa: E402

OTHERS = ["random_erk", "magnitude_floor+shuffle", "snip_floor+shuffle", "synflow_floor+shuffle",
          "magnitude+shuffle", "snip+shuffle", "synflow+shuffle"]


def per_seed(rows: list[dict[str, str]]) -> dict[tuple[str, float], dict[int, float]]:
    """(label, sparsity) -> seed -> final-epoch test accuracy in %, averaged over source runs."""
    runs: dict[tuple[str, float, int], list[float]] = defaultdict(list)
    for row in rows:
        label = row["method"] + (f"+{row['modifier']}" if row["modifier"] else "")
        runs[label, float(row["sparsity"]), int(row["seed"])].append(100 * float(row["final_test_acc"]))
    out: dict[tuple[str, float], dict[int, float]] = defaultdict(dict)
    for (label, sparsity, seed), values in runs.items():
        out[label, sparsity][seed] = sum(values) / len(values)
    return out


def contrasts(rows: list[dict[str, str]], reference: str) -> list[dict[str, object]]:
    accs = per_seed(rows)
    found = []
    for (label, sparsity), ref in sorted(accs.items()):
        if label != reference:
            continue
        for other in OTHERS:
            theirs = accs.get((other, sparsity))
            if not theirs:
                continue
            seeds = sorted(set(ref) & set(theirs))
            diffs = [ref[s] - theirs[s] for s in seeds]
            low, high = t_interval(diffs) if len(diffs) > 1 else (float("nan"), float("nan"))
            found.append({"sparsity": sparsity, "other": other, "n_seeds": len(diffs),
                          "diff_pp": round(sum(diffs) / len(diffs), 2), "ci_low_pp": round(low, 2),
                          "ci_high_pp": round(high, 2),
                          "p_unadjusted": round(t_test_p(diffs), 4) if len(diffs) > 1 else None})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a study's reports/results.csv")
    parser.add_argument("--reference", default="autos_densities")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    with args.results.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = contrasts(rows, args.reference)
    if not found:
        print(f"no {args.reference} rows with a control to compare in {args.results}", file=sys.stderr)
        return 1
    print(f"| sparsity | {args.reference} minus | diff (pp) | 95% CI | n seeds | p (unadjusted) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for c in found:
        print(f"| {c['sparsity']:.0%} | {c['other']} | {c['diff_pp']:+.1f} | {c['ci_low_pp']:+.1f} to "
              f"{c['ci_high_pp']:+.1f} | {c['n_seeds']} | {c['p_unadjusted']} |")
    if args.out:
        args.out.write_text(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
