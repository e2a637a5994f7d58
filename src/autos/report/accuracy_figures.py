"""The accuracy figures and the ``dvc plots`` template:

- :func:`accuracy_figure` - final-epoch accuracy (%) vs sparsity per method, mean ± sample std over seeds as error
  bars (a one-seed point is hollow, with no bar), x = density on a log scale labelled with the sparsity (sparser to
  the right), a dashed chance line (100 / classes), the dense run as a line with a ± std band, a marker per method
  and small horizontal offsets so that methods at the same sparsity do not hide each other, an x where a seed
  suffered layer collapse, the legend outside;
- :func:`sanity_figure` - one panel per method with modifier variants (shuffle / reinit / invert) against its own
  mask; :func:`plot_irp_curve` - the source IRP curve;
- :func:`dvc_plot_template` - the Vega-Lite template that ``dvc plots`` draws ``plots/<target>.csv`` with.

Titles name the study's source (the model the AutoS scorer learned from) when the report is given it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.aggregate import DENSE, Cell, CellKey, cell_stats, label_order
from autos.report.compare import REFERENCE
from autos.report.figures import (
    MARKERS,
    collapse_marker,
    legend,
    method_styles,
    new_axes,
    new_figure,
    save_figure,
    sparsity_axis,
    x_offsets,
)
from autos.report.names import MethodRecords, Source, method_name, with_source
from autos.report.tables import format_mean
from autos.sweep.records import RunRow

MODIFIER_STYLES = {"shuffle": ("--", "s"), "reinit": (":", "^"), "invert": ("-.", "v")}
CHANCE_GID, DENSE_GID = "chance", "dense"
PANEL_LEGEND = {"fontsize": "x-small", "loc": "best"}  # inside each sanity-check panel


# --------------------------------------------------------------------------- accuracy vs sparsity


def _reference_lines(ax: Any, rows: Sequence[RunRow], num_classes: int | None, metric: str = "final_test_acc",
                     labelled: bool = True) -> None:
    """The dense run (line, ± std band) and chance (dashed), both found again by their ``gid``; in the legend when
    ``labelled``."""
    dense = cell_stats([r for r in rows if r.method == DENSE], metric).get((DENSE, 0.0))
    if dense is not None and dense.n:
        label = f"dense {format_mean(dense.mean, dense.std, dense.n)}" if labelled else "_nolegend_"
        ax.axhline(dense.mean * 100, color="black", linewidth=1.0, label=label, gid=DENSE_GID, zorder=1)
        if dense.n >= 2 and not math.isnan(dense.std):
            ax.axhspan((dense.mean - dense.std) * 100, (dense.mean + dense.std) * 100, color="0.6", alpha=0.25,
                       linewidth=0, zorder=0)
    if num_classes:
        chance = 100.0 / num_classes
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=1.0, gid=CHANCE_GID, zorder=1,
                   label=f"chance ({chance:.3g}%)" if labelled else "_nolegend_")


def _draw_series(ax: Any, cells: Mapping[CellKey, Cell], label: str, name: str, shift: float, color: Any,
                 marker: str, linestyle: str = "-", linewidth: float = 1.3, zorder: float = 3) -> bool:
    """One label, shown as ``name``: line through the means, std error bars where n >= 2, hollow markers where
    n = 1, an x where a seed collapsed."""
    points = sorted((s, c) for (lab, s), c in cells.items() if lab == label and c.n and s > 0 and s < 1)
    if not points:
        return False
    xs = [(1.0 - s) * shift for s, _ in points]
    ys = [c.mean * 100 for _, c in points]
    ax.plot(xs, ys, linestyle=linestyle, color=color, linewidth=linewidth, zorder=zorder,
            label=name, marker=marker, markersize=5, markerfacecolor=color)
    multi = [(x, y, c.std * 100) for x, y, (_, c) in zip(xs, ys, points, strict=True)
             if c.n >= 2 and not math.isnan(c.std)]
    if multi:
        ax.errorbar([m[0] for m in multi], [m[1] for m in multi], yerr=[m[2] for m in multi], fmt="none",
                    ecolor=color, elinewidth=1.0, capsize=3, zorder=zorder)
    single = [(x, y) for x, y, (_, c) in zip(xs, ys, points, strict=True) if c.n < 2]
    if single:
        ax.plot([p[0] for p in single], [p[1] for p in single], linestyle="none", marker=marker, markersize=5,
                markerfacecolor="white", markeredgecolor=color, zorder=zorder + 0.5, label="_nolegend_")
    collapse_marker(ax, [(x, y) for x, y, (_, c) in zip(xs, ys, points, strict=True) if c.collapsed], zorder + 1)
    return True


def accuracy_figure(rows: Sequence[RunRow], *, title: str, records: MethodRecords, num_classes: int | None = None,
                    metric: str = "final_test_acc", source: Source | None = None) -> Any:
    """The headline figure of a target (module docstring); modifier variants are left to :func:`sanity_figure`.
    ``records``: the method registry's records (the methods' titles); ``source``: named under the title."""
    fig, ax = new_axes(7.0, 4.2)
    cells = cell_stats(rows, metric)
    labels = [label for label in label_order([r for r in rows if not r.modifier]) if label != DENSE]
    densities = sorted({1.0 - s for (label, s) in cells if label in labels and 0 < s < 1})
    offsets = x_offsets(labels, densities)
    styles = method_styles(rows)
    _reference_lines(ax, rows, num_classes, metric)
    for label in labels:
        color, marker = styles[label]
        ours = label == REFERENCE
        _draw_series(ax, cells, label, method_name(label, records), offsets[label], color, marker,
                     linewidth=2.2 if ours else 1.3, zorder=4 if ours else 3)
    sparsity_axis(ax, densities, spread=max(offsets.values(), default=1.0))
    ax.set_ylabel("final-epoch test accuracy (%)" if metric == "final_test_acc" else f"{metric} (%)")
    ax.set_title(with_source(title, source))
    ax.grid(True, alpha=0.3)
    one_seed = any(c.n == 1 for (label, _), c in cells.items() if label in labels)
    legend(ax, ["one seed (no error bar)"] if one_seed else ())
    return fig


def plot_target(target: str, rows: Sequence[RunRow], path: Path, *, records: MethodRecords,
                num_classes: int | None = None, title: str | None = None, source: Source | None = None) -> Path:
    """:func:`accuracy_figure` saved to ``path`` (PNG) and its ``.svg`` twin; returns ``path``."""
    save_figure(accuracy_figure(rows, title=title or target, records=records, num_classes=num_classes,
                                source=source), path)
    return path


# --------------------------------------------------------------------------- sanity checks (modifiers)


def sanity_figure(rows: Sequence[RunRow], *, title: str, records: MethodRecords, num_classes: int | None = None,
                  metric: str = "final_test_acc", source: Source | None = None) -> Any:
    """One panel per method that has modifier variants: its own mask (solid) and each variant; None without any.
    ``records``: the method registry's records (the panels' titles); ``source``: named under the title."""
    methods = list(dict.fromkeys(r.method for r in rows if r.modifier))
    if not methods:
        return None
    order = label_order(rows)
    methods.sort(key=lambda m: order.index(m) if m in order else len(order))
    cells = cell_stats(rows, metric)
    styles = method_styles(rows)
    cols = min(3, len(methods))
    nrows = math.ceil(len(methods) / cols)
    fig = new_figure(3.6 * cols + 1.8, 3.0 * nrows + 0.6)
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True)
    for i, method in enumerate(methods):
        ax = axes[i // cols][i % cols]
        labels = [label for label in order if label == method or label.startswith(f"{method}+")]
        densities = sorted({1.0 - s for (label, s) in cells if label in labels and 0 < s < 1})
        offsets = x_offsets(labels, densities)
        _reference_lines(ax, rows, num_classes, metric, labelled=False)
        color, marker = styles.get(method, ("black", "o"))
        for label in labels:
            modifier = label.partition("+")[2]
            linestyle, mark = MODIFIER_STYLES.get(modifier, ("-", marker)) if modifier else ("-", marker)
            _draw_series(ax, cells, label, modifier or "own mask", offsets[label],
                         color if not modifier else "0.35", mark, linestyle=linestyle)
        sparsity_axis(ax, densities, spread=max(offsets.values(), default=1.0))
        ax.set_title(method_name(method, records), fontsize="medium")
        ax.grid(True, alpha=0.3)
        legend(ax, options=PANEL_LEGEND)
        if i % cols == 0:
            ax.set_ylabel("final-epoch test acc. (%)")
    for j in range(len(methods), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(with_source(f"{title}: sanity checks (dashed: chance; line: dense)", source))
    fig.tight_layout()
    return fig


def plot_sanity(target: str, rows: Sequence[RunRow], path: Path, *, records: MethodRecords,
                num_classes: int | None = None, title: str | None = None, source: Source | None = None) -> Path | None:
    """:func:`sanity_figure` saved as PNG + SVG; None (nothing written) without modifier variants."""
    fig = sanity_figure(rows, title=title or target, records=records, num_classes=num_classes, source=source)
    if fig is None:
        return None
    save_figure(fig, path)
    return path


# --------------------------------------------------------------------------- the source IRP curve


def _curve_lines(ax: Any, frame: pd.DataFrame) -> None:
    """One source's rounds: final and best accuracy, each round annotated."""
    for column, style in (("final_test_acc", "-o"), ("best_test_acc", ":s")):
        if column in frame.columns:
            ax.plot(frame["density"], frame[column] * 100, style, markersize=4, label=column.replace("_", " "))
    if "round" in frame.columns:
        for _, r in frame.iterrows():
            ax.annotate(f"r{int(r['round'])}", (r["density"], r["final_test_acc"] * 100), fontsize=7,
                        textcoords="offset points", xytext=(3, 4))


def irp_curve_figure(frame: pd.DataFrame, source: Source | None = None) -> Any:
    """Source IRP test accuracy (%) vs density per round, density on a log axis, decreasing to the right; the title
    names the ``source`` when given. A frame with a ``source`` column (several source runs): one final-accuracy line
    per run."""
    fig, ax = new_axes()
    runs = list(dict.fromkeys(frame["source"])) if "source" in frame.columns else []
    if len(runs) > 1:
        for i, run in enumerate(runs):
            part = frame[frame["source"] == run]
            ax.plot(part["density"], part["final_test_acc"] * 100, "-", marker=MARKERS[i % len(MARKERS)],
                    markersize=4, label=f"source {run}: final test acc")
        ticks = frame[frame["source"] == runs[0]]
    else:
        _curve_lines(ax, frame)
        ticks = frame
    ax.set_xscale("log")
    ax.invert_xaxis()
    if "density" in ticks.columns and len(ticks):
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(list(ticks["density"]), [f"{d:.3g}" for d in ticks["density"]])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("density (fraction kept, log scale)")
    ax.set_ylabel("test accuracy (%)")
    name = f"source IRP curves ({len(runs)} runs)" if len(runs) > 1 else "source IRP curve"
    ax.set_title(name + (f": {source.title}" if source is not None else ""))
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def plot_irp_curve(frame: pd.DataFrame, path: Path, source: Source | None = None) -> Path:
    """:func:`irp_curve_figure` saved as PNG at ``path`` and its SVG twin; returns ``path``."""
    save_figure(irp_curve_figure(frame, source), path)
    return path


# --------------------------------------------------------------------------- dvc plots template


def dvc_plot_template() -> dict[str, Any]:
    """A Vega-Lite template for ``dvc plots`` that draws one line per ``method`` (the built-in ``linear``
    template can only colour by revision/file/field), ± ``std`` error bars where the data has one (more than one
    seed), and the dense run as a dashed horizontal rule. DVC reads CSV values as strings: sums go through
    ``toNumber``."""
    x, y = "<DVC_METRIC_X>", "<DVC_METRIC_Y>"
    x_enc = {"field": x, "type": "quantitative", "title": "<DVC_METRIC_X_LABEL>", "scale": {"zero": False}}
    y_enc = {"field": y, "type": "quantitative", "title": "<DVC_METRIC_Y_LABEL>", "scale": {"zero": False}}
    pruned = f"datum.method != '{DENSE}'"
    has_std = "isValid(datum.std) && datum.std !== '' && isFinite(toNumber(datum.std))"
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": "<DVC_METRIC_TITLE>",
        "width": 400,
        "height": 300,
        "layer": [
            {"transform": [{"filter": pruned}],
             "mark": {"type": "line", "point": True, "tooltip": {"content": "data"}},
             "encoding": {"x": x_enc, "y": y_enc, "color": {"field": "method", "type": "nominal"},
                          "strokeDash": {"field": "rev", "type": "nominal"}}},
            {"transform": [{"filter": f"{pruned} && {has_std}"},
                           {"calculate": f"toNumber(datum['{y}']) - toNumber(datum.std)", "as": "std_low"},
                           {"calculate": f"toNumber(datum['{y}']) + toNumber(datum.std)", "as": "std_high"}],
             "mark": {"type": "rule"},
             "encoding": {"x": x_enc, "y": {"field": "std_low", "type": "quantitative"},
                          "y2": {"field": "std_high"}, "color": {"field": "method", "type": "nominal"},
                          "detail": {"field": "rev", "type": "nominal"}}},
            {"transform": [{"filter": f"datum.method == '{DENSE}'"}],
             "mark": {"type": "rule", "strokeDash": [6, 4], "color": "black", "tooltip": {"content": "data"}},
             "encoding": {"y": y_enc, "detail": {"field": "rev", "type": "nominal"}}},
        ],
    }

