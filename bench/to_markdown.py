"""Print the Markdown tables of docs/benchmarks.md from bench/results/*.json (no figures typed by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def methods_table(path: Path) -> str:
    data = json.loads(path.read_text())
    targets = data["targets"]
    names = sorted({m for t in targets.values() for m in t["methods"]})
    head = "| method | " + " | ".join(f"{t}: s | {t}: epochs" for t in targets) + " |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(targets)]
    for name in names:
        cells = []
        for t in targets.values():
            m = t["methods"].get(name, {})
            cells += ([f"{m['seconds']:.2f}", f"{m['epochs_equivalent']:.2f}"] if "seconds" in m
                      else [m.get("error", "-"), "-"])
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    epochs = " | ".join(f"{t['epoch_seconds']:.2f} | 1.00" for t in targets.values())
    lines.append(f"| one training epoch | {epochs} |")
    info = ", ".join(f"{k}: {t['train_images']} images ({t['data']} data), {t['prunable_weights']:,} prunable weights"
                     for k, t in targets.items())
    lines.append(f"\nDensity {data['density']}; {info}.")
    lines.append("\n`paper` scorer (a ResNet-18 forward per weight), timed on a sample and extrapolated to the whole "
                 "target:\n")
    lines.append("| target | features s | width 8: ms/weight | width 8: whole target s | width 64: ms/weight "
                 "| width 64: whole target s |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for k, t in targets.items():
        p = t["paper_scorer"]
        lines.append(f"| {k} | {p['feature_seconds']:.1f} | {p['width8_seconds_per_weight'] * 1e3:.3f} | "
                     f"{p['width8_extrapolated_seconds']:.0f} | {p['width64_seconds_per_weight'] * 1e3:.2f} | "
                     f"{p['width64_extrapolated_seconds']:.0f} |")
    ft = data["feature_table"]
    lines.append(f"\nFeature table: {ft['rows']:,} rows written in {ft['write_seconds']:.2f} s = "
                 f"{ft['rows_per_second'] / 1e6:.2f} M rows/s ({ft['bytes'] / 1e6:.1f} MB, zstd).")
    return "\n".join(lines)


if __name__ == "__main__":
    print(methods_table(RESULTS / (sys.argv[1] if len(sys.argv) > 1 else "methods_cost_params.json")))
