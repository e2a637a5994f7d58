"""The report's figures: PNGs drawn with matplotlib's Agg canvas (no pyplot state) and the Vega-Lite template
that ``dvc plots`` draws the per-target plot data with."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.aggregate import DENSE, cell_stats, label_order


def _new_axes(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_target(target: str, rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Final-epoch accuracy (%) vs sparsity per method; dense dashed; collapsed cells crossed out."""
    fig, ax = _new_axes()
    cells = cell_stats(rows, "final_test_acc")
    dense = cells.get((DENSE, 0.0))
    if dense is not None and dense.n:
        ax.axhline(dense.mean * 100, color="black", linestyle="--", linewidth=1, label="dense")
    collapsed_label = "layer collapse"
    for label in label_order(rows):
        if label == DENSE:
            continue
        points = sorted((s, c) for (lab, s), c in cells.items() if lab == label and c.n)
        if not points:
            continue
        xs = [s for s, _ in points]
        ys = [c.mean * 100 for _, c in points]
        errs = [0.0 if math.isnan(c.std) else c.std * 100 for _, c in points]
        ax.errorbar(xs, ys, yerr=errs, marker="o", markersize=4, capsize=3, label=label)
        bad = [(s, c.mean * 100) for s, c in points if c.collapsed]
        if bad:
            ax.scatter([b[0] for b in bad], [b[1] for b in bad], marker="x", s=90, color="black",
                       linewidths=2, zorder=5, label=collapsed_label)
            collapsed_label = "_nolegend_"
    ax.set_xlabel("sparsity (fraction removed)")
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(target)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def plot_irp_curve(frame: pd.DataFrame, path: Path) -> Path:
    """Source IRP test accuracy (%) vs density per round, density on a log axis, decreasing to the right."""
    fig, ax = _new_axes()
    for column, style in (("final_test_acc", "-o"), ("best_test_acc", ":s")):
        if column in frame.columns:
            ax.plot(frame["density"], frame[column] * 100, style, markersize=4, label=column.replace("_", " "))
    if "round" in frame.columns:
        for _, r in frame.iterrows():
            ax.annotate(f"r{int(r['round'])}", (r["density"], r["final_test_acc"] * 100), fontsize=7,
                        textcoords="offset points", xytext=(3, 4))
    ax.set_xscale("log")
    ax.invert_xaxis()
    if "density" in frame.columns and len(frame):
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(list(frame["density"]), [f"{d:.3g}" for d in frame["density"]])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("density (fraction kept, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("source IRP curve")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return _save(fig, path)


# --------------------------------------------------------------------------- dvc plots template


def dvc_plot_template() -> dict[str, Any]:
    """A Vega-Lite template for ``dvc plots`` that draws one line per ``method`` (the built-in ``linear``
    template can only colour by revision/file/field) and the dense run as a dashed horizontal rule."""
    x, y = "<DVC_METRIC_X>", "<DVC_METRIC_Y>"
    x_enc = {"field": x, "type": "quantitative", "title": "<DVC_METRIC_X_LABEL>", "scale": {"zero": False}}
    y_enc = {"field": y, "type": "quantitative", "title": "<DVC_METRIC_Y_LABEL>", "scale": {"zero": False}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": "<DVC_METRIC_TITLE>",
        "width": 400,
        "height": 300,
        "layer": [
            {"transform": [{"filter": f"datum.method != '{DENSE}'"}],
             "mark": {"type": "line", "point": True, "tooltip": {"content": "data"}},
             "encoding": {"x": x_enc, "y": y_enc, "color": {"field": "method", "type": "nominal"},
                          "strokeDash": {"field": "rev", "type": "nominal"}}},
            {"transform": [{"filter": f"datum.method == '{DENSE}'"}],
             "mark": {"type": "rule", "strokeDash": [6, 4], "color": "black", "tooltip": {"content": "data"}},
             "encoding": {"y": y_enc, "detail": {"field": "rev", "type": "nominal"}}},
        ],
    }
