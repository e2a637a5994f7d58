"""Small per-run figures for MLflow: PNGs drawn on matplotlib's Agg canvas (no pyplot state, no display).

``run_figure``: one transfer run's training curve (train loss and test accuracy per epoch, from its history) next to
its per-layer density (from the row's ``layer_density``). ``sweep_figure``: a sweep's mean final accuracy against
sparsity per method, for the stage's parent run. One small figure each; the figure is released after saving.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DPI = 80


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path, tight: bool = True) -> Path:
    try:
        if tight:  # a layout pass costs more than the drawing: per-run figures use fixed margins instead
            fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        fig.clear()  # an Agg Figure is not registered with pyplot: clearing it frees it
    return path


def _series(history: Sequence[Mapping[str, float]], key: str) -> tuple[list[float], list[float]]:
    points = [(float(r.get("epoch", i)), float(r[key])) for i, r in enumerate(history)
              if key in r and not math.isnan(float(r[key]))]
    return [p[0] for p in points], [p[1] for p in points]


def short_layer(name: str) -> str:
    """``features.3.weight`` -> ``features.3``: the parameter's module, which names the layer."""
    return name.removesuffix(".weight")


def run_figure(history: Sequence[Mapping[str, float]], layer_density: Mapping[str, float] | None, title: str,
               path: Path) -> Path:
    """Training curve (left) and per-layer density bars (right, when the run has a mask) as one PNG."""
    panels = 2 if layer_density else 1
    fig = _figure(4.0 * panels + 1.0, 3.2)
    ax = fig.add_subplot(1, panels, 1)
    xs, loss = _series(history, "train_loss")
    ax.plot(xs, loss, marker="o", markersize=3, color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    acc_ax = ax.twinx()
    xs, acc = _series(history, "test_acc")
    acc_ax.plot(xs, [a * 100 for a in acc], marker="s", markersize=3, color="tab:orange", label="test acc")
    acc_ax.set_ylabel("test accuracy (%)", color="tab:orange")
    ax.set_title("training", fontsize="medium")
    ax.grid(True, alpha=0.3)
    if layer_density:
        bars = fig.add_subplot(1, panels, 2)
        names = list(layer_density)
        bars.bar(range(len(names)), [layer_density[n] * 100 for n in names], color="tab:green")
        bars.set_xticks(range(len(names)))
        bars.set_xticklabels([short_layer(n) for n in names], rotation=90, fontsize=6)
        bars.set_ylabel("weights kept (%)")
        bars.set_ylim(0, 100)
        bars.set_title("density per layer", fontsize="medium")
        bars.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize="medium")
    fig.subplots_adjust(left=0.1 if panels == 2 else 0.14, right=0.93 if panels == 2 else 0.86, top=0.84,
                        bottom=0.3 if panels == 2 else 0.16, wspace=0.45)
    return _save(fig, path, tight=False)


def sweep_figure(rows: Sequence[Mapping[str, Any]], title: str, path: Path, *, label_key: str = "label") -> Path:
    """Mean final-epoch test accuracy (%) against sparsity, one line per ``row[label_key]``; dense dashed."""
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[str(row[label_key])][float(row["sparsity"])].append(float(row["final_test_acc"]))
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for label, by_sparsity in groups.items():
        points = sorted((s, sum(v) / len(v) * 100) for s, v in by_sparsity.items())
        if label == "dense":
            ax.axhline(points[0][1], color="black", linestyle="--", linewidth=1, label="dense")
            continue
        ax.plot([p[0] * 100 for p in points], [p[1] for p in points], marker="o", markersize=4, label=label)
    ax.set_xlabel("sparsity (% removed)")
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    return _save(fig, path)
