"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot state), and the Vega-Lite template that
``dvc plots`` draws the per-target plot data with.

Figures (each saved as PNG and, beside it, SVG by :func:`save_figure`):

- :func:`accuracy_figure` - final-epoch accuracy (%) vs sparsity per method, mean ± sample std over seeds as error
  bars (a one-seed point is hollow, with no bar), x = density on a log scale labelled with the sparsity (sparser to
  the right), a dashed chance line (100 / classes), the dense run as a line with a ± std band, a marker per method
  and small horizontal offsets so that methods at the same sparsity do not hide each other, the legend outside;
- :func:`layer_density_figure` - per-layer density of each method at one sparsity (layers in network order, log
  y), with the uniform density (1 - sparsity) for reference: the diagnostic "does AutoS spread the kept weights like
  IRP / ERK / SNIP / SynFlow";
- :func:`sanity_figure` - one panel per method with modifier variants (shuffle / reinit / invert) against its own
  mask; :func:`plot_irp_curve` - the source IRP curve.

Bytes are reproducible: the PNG carries no timestamp (Agg writes only the matplotlib version), the SVG is written
with a fixed ``svg.hashsalt`` and no ``Date``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.aggregate import DENSE, _float, cell_stats, label_order, run_label
from autos.report.compare import REFERENCE
from autos.report.markdown import format_mean, format_sparsity
from autos.report.names import method_name

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d", "H", "8")
MODIFIER_STYLES = {"shuffle": ("--", "s"), "reinit": (":", "^"), "invert": ("-.", "v")}
SVG_HASHSALT = "autos-report"  # fixed SVG element ids: the same figure, the same bytes
CHANCE_GID, DENSE_GID = "chance", "dense"
LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": "small",
          "frameon": False}


# --------------------------------------------------------------------------- canvas and saving


def _new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _new_axes(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    fig = _new_figure(width, height)
    return fig, fig.add_subplot(1, 1, 1)


FIGURES_DIR = "figures"  # the PNGs: declared in dvc.yaml as image plots, so `dvc plots show` renders them offline
SVG_DIR = "svg"  # their vector twins, apart so that the image plots do not show every figure twice


def svg_path(png: Path) -> Path:
    """The SVG twin of ``<report>/figures/<name>.png``: ``<report>/svg/<name>.svg``."""
    return png.parent.parent / SVG_DIR / png.with_suffix(".svg").name


def save_figure(fig: Any, png: Path) -> list[Path]:
    """``png`` and its SVG twin (``svg_path``); the legend outside the axes is kept (``bbox_inches='tight'``)."""
    from matplotlib import rc_context

    png.parent.mkdir(parents=True, exist_ok=True)
    svg_path(png).parent.mkdir(parents=True, exist_ok=True)
    with rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path"}):
        fig.savefig(png, format="png", bbox_inches="tight")
        fig.savefig(svg_path(png), format="svg", bbox_inches="tight", metadata={"Date": None})
    return [png, svg_path(png)]


# --------------------------------------------------------------------------- styles and axes


def method_styles(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, str]]:
    """{method: (colour, marker)} in the tables' order, the same in every figure of a target."""
    from matplotlib import colormaps

    methods = list(dict.fromkeys(label.partition("+")[0] for label in label_order(rows) if label != DENSE))
    cmap = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: (cmap(i % cmap.N), MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def _offsets(labels: Sequence[str], densities: Sequence[float]) -> dict[str, float]:
    """A multiplicative x offset per label (log axis): spread over a third of the gap between neighbouring
    densities, at most 0.03 decades between two labels."""
    logs = sorted(math.log10(d) for d in densities if d > 0)
    gap = min((b - a for a, b in zip(logs, logs[1:], strict=False)), default=0.5)
    step = min(0.03, gap / 3 / max(len(labels) - 1, 1))
    return {label: 10 ** ((i - (len(labels) - 1) / 2) * step) for i, label in enumerate(labels)}


def _sparsity_axis(ax: Any, densities: Sequence[float], spread: float = 1.0) -> None:
    """Log density axis, sparser to the right, ticks at the study's densities labelled as sparsity (``98%``);
    ``spread``: the largest x offset factor drawn, kept inside the limits."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted({d for d in densities if d > 0}, reverse=True)
    ax.set_xscale("log")
    if ticks:
        margin = 10 ** 0.12 * max(spread, 1.0)
        ax.set_xlim(max(ticks) * margin, min(ticks) / margin)  # inverted: density decreases to the right
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([format_sparsity(1.0 - d) for d in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("sparsity (axis: density = 1 − sparsity, log scale)")


def _reference_lines(ax: Any, rows: Sequence[Mapping[str, Any]], num_classes: int | None,
                     metric: str = "final_test_acc", legend: bool = True) -> None:
    """The dense run (line, ± std band) and chance (dashed), both found again by their ``gid``."""
    dense = cell_stats([r for r in rows if r["method"] == DENSE], metric).get((DENSE, 0.0))
    if dense is not None and dense.n:
        label = f"dense {format_mean(dense.mean, dense.std, dense.n)}" if legend else "_nolegend_"
        ax.axhline(dense.mean * 100, color="black", linewidth=1.0, label=label, gid=DENSE_GID, zorder=1)
        if dense.n >= 2 and not math.isnan(dense.std):
            ax.axhspan((dense.mean - dense.std) * 100, (dense.mean + dense.std) * 100, color="0.6", alpha=0.25,
                       linewidth=0, zorder=0)
    if num_classes:
        chance = 100.0 / num_classes
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=1.0, gid=CHANCE_GID, zorder=1,
                   label=f"chance ({chance:.3g}%)" if legend else "_nolegend_")


def _draw_series(ax: Any, cells: Mapping[tuple[str, float], Any], label: str, shift: float, color: Any, marker: str,
                 linestyle: str = "-", linewidth: float = 1.3, zorder: float = 3, name: str | None = None) -> bool:
    """One method: line through the means, std error bars where n >= 2, hollow markers where n = 1."""
    points = sorted((s, c) for (lab, s), c in cells.items() if lab == label and c.n and s > 0 and s < 1)
    if not points:
        return False
    xs = [(1.0 - s) * shift for s, _ in points]
    ys = [c.mean * 100 for _, c in points]
    ax.plot(xs, ys, linestyle=linestyle, color=color, linewidth=linewidth, zorder=zorder,
            label=name or method_name(label), marker=marker, markersize=5, markerfacecolor=color)
    multi = [(x, y, c.std * 100) for x, y, (_, c) in zip(xs, ys, points, strict=True)
             if c.n >= 2 and not math.isnan(c.std)]
    if multi:
        ax.errorbar([m[0] for m in multi], [m[1] for m in multi], yerr=[m[2] for m in multi], fmt="none",
                    ecolor=color, elinewidth=1.0, capsize=3, zorder=zorder)
    single = [(x, y) for x, y, (_, c) in zip(xs, ys, points, strict=True) if c.n < 2]
    if single:
        ax.plot([p[0] for p in single], [p[1] for p in single], linestyle="none", marker=marker, markersize=5,
                markerfacecolor="white", markeredgecolor=color, zorder=zorder + 0.5, label="_nolegend_")
    bad = [(x, y) for x, y, (_, c) in zip(xs, ys, points, strict=True) if c.collapsed]
    if bad:
        ax.scatter([b[0] for b in bad], [b[1] for b in bad], marker="x", s=80, color="black", linewidths=1.8,
                   zorder=zorder + 1, label="_collapsed_")
    return True


def _legend(ax: Any, notes: Sequence[str] = ()) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab != "_collapsed_"]
    if "_collapsed_" in labels:
        keep.append((Line2D([], [], linestyle="none", marker="x", color="black", markersize=7),
                     "layer collapse (≥1 seed)"))
    for note in notes:
        keep.append((Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3"),
                     note))
    if keep:
        ax.legend([h for h, _ in keep], [lab for _, lab in keep], **LEGEND)


# --------------------------------------------------------------------------- accuracy vs sparsity


def accuracy_figure(rows: Sequence[Mapping[str, Any]], *, title: str, num_classes: int | None = None,
                    metric: str = "final_test_acc") -> Any:
    """The headline figure of a target (module docstring); modifier variants are left to :func:`sanity_figure`."""
    fig, ax = _new_axes(7.0, 4.2)
    cells = cell_stats(rows, metric)
    labels = [label for label in label_order([r for r in rows if not r.get("modifier")]) if label != DENSE]
    densities = sorted({1.0 - s for (label, s) in cells if label in labels and 0 < s < 1})
    offsets = _offsets(labels, densities)
    styles = method_styles(rows)
    _reference_lines(ax, rows, num_classes, metric)
    for label in labels:
        color, marker = styles[label]
        ours = label == REFERENCE
        _draw_series(ax, cells, label, offsets[label], color, marker, linewidth=2.2 if ours else 1.3,
                     zorder=4 if ours else 3)
    _sparsity_axis(ax, densities, spread=max(offsets.values(), default=1.0))
    ax.set_ylabel("final-epoch test accuracy (%)" if metric == "final_test_acc" else f"{metric} (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    one_seed = any(c.n == 1 for (label, _), c in cells.items() if label in labels)
    _legend(ax, ["one seed (no error bar)"] if one_seed else ())
    return fig


def plot_target(target: str, rows: Sequence[Mapping[str, Any]], path: Path, *, num_classes: int | None = None,
                title: str | None = None) -> Path:
    """:func:`accuracy_figure` saved to ``path`` (PNG) and its ``.svg`` twin; returns ``path``."""
    save_figure(accuracy_figure(rows, title=title or target, num_classes=num_classes), path)
    return path


# --------------------------------------------------------------------------- per-layer density


def layer_density_frame(rows: Sequence[Mapping[str, Any]], key: str = "layer_density") -> pd.DataFrame:
    """Mean over seeds of each label's per-layer density: columns label, sparsity, index (network order), layer,
    density, n. Layers are ordered as the rows' dicts list them (``model.named_parameters()`` order)."""
    layers: dict[str, int] = {}
    groups: dict[tuple[str, float, str], list[float]] = {}
    for row in rows:
        values = row.get(key)
        if row["method"] == DENSE or not isinstance(values, Mapping):
            continue
        for layer, value in values.items():
            layers.setdefault(str(layer), len(layers))
            number = _float(value)
            if not math.isnan(number):
                groups.setdefault((run_label(row), float(row["sparsity"]), str(layer)), []).append(number)
    order = {label: i for i, label in enumerate(label_order(rows))}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], layers[k[2]]))
    records = [{"label": label, "sparsity": s, "index": layers[layer], "layer": layer,
                "density": sum(groups[(label, s, layer)]) / len(groups[(label, s, layer)]),
                "n": len(groups[(label, s, layer)])} for label, s, layer in keys]
    return pd.DataFrame(records, columns=["label", "sparsity", "index", "layer", "density", "n"])


def layer_density_figure(rows: Sequence[Mapping[str, Any]], *, title: str, sparsity: float | None = None) -> Any:
    """Per-layer density of every unmodified method at ``sparsity`` (default: the highest one with per-layer data);
    None when no row records ``layer_density``."""
    frame = layer_density_frame([r for r in rows if not r.get("modifier")])
    if frame.empty:
        return None
    if sparsity is None:
        sparsity = float(frame["sparsity"].max())
    frame = frame[frame["sparsity"] == sparsity]
    names = list(dict.fromkeys(frame.sort_values("index")["layer"]))
    position = {name: i for i, name in enumerate(names)}
    styles = method_styles(rows)
    fig, ax = _new_axes(max(6.5, 0.32 * len(names) + 3.0), 4.4)
    positive = frame[frame["density"] > 0]["density"]
    floor = float(positive.min()) / 2 if len(positive) else 1e-4
    labels = list(dict.fromkeys(frame["label"]))
    step = min(0.06, 0.3 / max(len(labels) - 1, 1))  # small x offsets so equal densities stay visible
    empty: list[tuple[float, Any]] = []
    for k, label in enumerate(labels):
        part = frame[frame["label"] == label].sort_values("index")
        color, marker = styles[label]
        xs = [position[layer] + (k - (len(labels) - 1) / 2) * step for layer in part["layer"]]
        ys = [d if d > 0 else math.nan for d in part["density"]]
        ours = label == REFERENCE
        ax.plot(xs, ys, color=color, marker=marker, markersize=4.5, linewidth=2.0 if ours else 1.1,
                zorder=4 if ours else 3, label=method_name(label))
        empty += [(x, color) for x, d in zip(xs, part["density"], strict=True) if d <= 0]
    if empty:
        ax.scatter([x for x, _ in empty], [floor] * len(empty), marker="v", s=40, c=[c for _, c in empty], zorder=5,
                   label="empty layer (density 0)")
    ax.axhline(1.0 - sparsity, color="0.4", linestyle="--", linewidth=1.0, zorder=1,
               label=f"uniform ({(1.0 - sparsity) * 100:.3g}% kept)")
    _layer_density_axes(ax, names, f"{title}: per-layer density at {format_sparsity(sparsity)} sparsity")
    return fig


def _layer_density_axes(ax: Any, names: Sequence[str], title: str) -> None:
    """The per-layer density figures' axes: layers in network order on x, log density on y, legend outside."""
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.removesuffix(".weight") for n in names], rotation=60, ha="right", fontsize="x-small")
    ax.set_xlabel("layer (network order)")
    ax.set_ylabel("layer density (fraction kept, log scale)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(**LEGEND)


def plot_layers(target: str, rows: Sequence[Mapping[str, Any]], path: Path, *, title: str | None = None
                ) -> Path | None:
    """:func:`layer_density_figure` saved as PNG + SVG; None (nothing written) without per-layer data."""
    fig = layer_density_figure(rows, title=title or target)
    if fig is None:
        return None
    save_figure(fig, path)
    return path


# --------------------------------------------------------------------------- sanity checks (modifiers)


def sanity_figure(rows: Sequence[Mapping[str, Any]], *, title: str, num_classes: int | None = None,
                  metric: str = "final_test_acc") -> Any:
    """One panel per method that has modifier variants: its own mask (solid) and each variant; None without any."""
    methods = list(dict.fromkeys(str(r["method"]) for r in rows if r.get("modifier")))
    if not methods:
        return None
    order = label_order(rows)
    methods.sort(key=lambda m: order.index(m) if m in order else len(order))
    cells = cell_stats(rows, metric)
    styles = method_styles(rows)
    cols = min(3, len(methods))
    nrows = math.ceil(len(methods) / cols)
    fig = _new_figure(3.6 * cols + 1.8, 3.0 * nrows + 0.6)
    axes = fig.subplots(nrows, cols, squeeze=False, sharey=True)
    for i, method in enumerate(methods):
        ax = axes[i // cols][i % cols]
        labels = [label for label in order if label == method or label.startswith(f"{method}+")]
        densities = sorted({1.0 - s for (label, s) in cells if label in labels and 0 < s < 1})
        offsets = _offsets(labels, densities)
        _reference_lines(ax, rows, num_classes, metric, legend=False)
        color, marker = styles.get(method, ("black", "o"))
        for label in labels:
            modifier = label.partition("+")[2]
            linestyle, mark = MODIFIER_STYLES.get(modifier, ("-", marker)) if modifier else ("-", marker)
            _draw_series(ax, cells, label, offsets[label], color if not modifier else "0.35", mark,
                         linestyle=linestyle, name=modifier or "own mask")
        _sparsity_axis(ax, densities, spread=max(offsets.values(), default=1.0))
        ax.set_title(method_name(method), fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
        if i % cols == 0:
            ax.set_ylabel("final-epoch test acc. (%)")
    for j in range(len(methods), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(f"{title}: sanity checks (dashed: chance; line: dense)")
    fig.tight_layout()
    return fig


def plot_sanity(target: str, rows: Sequence[Mapping[str, Any]], path: Path, *, num_classes: int | None = None,
                title: str | None = None) -> Path | None:
    fig = sanity_figure(rows, title=title or target, num_classes=num_classes)
    if fig is None:
        return None
    save_figure(fig, path)
    return path


# --------------------------------------------------------------------------- the source IRP curve


def plot_irp_curve(frame: pd.DataFrame, path: Path) -> Path:
    """Source IRP test accuracy (%) vs density per round, density on a log axis, decreasing to the right; PNG at
    ``path`` and its SVG twin."""
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
    save_figure(fig, path)
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


# --------------------------------------------------------------------------- the source's IRP ticket


def source_ticket_figure(ticket: Mapping[str, Any]) -> Any:
    """Per-layer density on the source: the IRP ticket, AutoS's mask and |w0|'s mask at the ticket's density
    (``autos.scorer.metrics.ticket_diagnostics``); empty layers drawn at the floor."""
    layers = list(ticket["layers"])
    names = [row["layer"] for row in layers]
    fig, ax = _new_axes(max(6.5, 0.32 * len(names) + 3.0), 4.4)
    series = {"irp_ticket": ("IRP ticket (source)", "black", "s", 2.2), "autos": ("AutoS", "tab:red", "o", 1.6),
              "abs_w0": ("|w0|", "tab:blue", "^", 1.1)}
    positive = [row[k] for row in layers for k in series if row[k] > 0]
    floor = min(positive) / 2 if positive else 1e-4
    for k, (key, (label, color, marker, width)) in enumerate(series.items()):
        xs = [i + (k - 1) * 0.08 for i in range(len(layers))]
        if key in ticket["overlap"]:
            label = f"{label}: keeps {ticket['overlap'][key]:.0%} of the ticket"
        ax.plot(xs, [row[key] if row[key] > 0 else math.nan for row in layers], color=color, marker=marker,
                markersize=4.5, linewidth=width, label=label)
        empty = [x for x, row in zip(xs, layers, strict=True) if row[key] <= 0]
        if empty:
            ax.scatter(empty, [floor] * len(empty), marker="v", s=40, color=color, zorder=5)
    ax.axhline(ticket["density"], color="0.4", linestyle="--", linewidth=1.0, label="uniform")
    title = f"Source: per-layer density at the IRP ticket's {ticket['density'] * 100:.3g}% density"
    _layer_density_axes(ax, names, title)
    return fig


def plot_source_ticket(ticket: Mapping[str, Any], path: Path) -> Path:
    save_figure(source_ticket_figure(ticket), path)
    return path
