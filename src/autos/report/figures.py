"""What every report figure shares: the Agg canvas (no pyplot state), saving as PNG + SVG byte-reproducibly, the
per-method colours and markers, the log density axis labelled in sparsity, and the legend (outside the axes, with
one entry for the layer-collapse marker).

Bytes are reproducible: the PNG carries no timestamp (Agg writes only the matplotlib version), the SVG is written
with a fixed ``svg.hashsalt`` and no ``Date``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autos.report.aggregate import DENSE, label_order
from autos.report.tables import format_sparsity
from autos.sweep.records import RunRow

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d", "H", "8")
SVG_HASHSALT = "autos-report"  # fixed SVG element ids: the same figure, the same bytes
LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": "small",
          "frameon": False}
COLLAPSE_LABEL = "layer collapse (≥1 seed)"  # the legend entry of the collapse marker (an x over the point)


# --------------------------------------------------------------------------- canvas and saving


def new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def new_axes(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    fig = new_figure(width, height)
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


def method_styles(rows: Sequence[RunRow]) -> dict[str, tuple[Any, str]]:
    """{method: (colour, marker)} in the tables' order, the same in every figure of a target."""
    from matplotlib import colormaps

    methods = list(dict.fromkeys(label.partition("+")[0] for label in label_order(rows) if label != DENSE))
    cmap = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: (cmap(i % cmap.N), MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def x_offsets(labels: Sequence[str], densities: Sequence[float]) -> dict[str, float]:
    """A multiplicative x offset per label (log axis): spread over a third of the gap between neighbouring
    densities, at most 0.03 decades between two labels."""
    logs = sorted(math.log10(d) for d in densities if d > 0)
    gap = min((b - a for a, b in zip(logs, logs[1:], strict=False)), default=0.5)
    step = min(0.03, gap / 3 / max(len(labels) - 1, 1))
    return {label: 10 ** ((i - (len(labels) - 1) / 2) * step) for i, label in enumerate(labels)}


def sparsity_axis(ax: Any, densities: Sequence[float], spread: float = 1.0) -> None:
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


def collapse_marker(ax: Any, points: Sequence[tuple[float, float]], zorder: float) -> None:
    """An x over each point where at least one seed collapsed, labelled (one legend entry: :func:`legend`)."""
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], marker="x", s=80, color="black", linewidths=1.8,
                   zorder=zorder, label=COLLAPSE_LABEL)


def legend(ax: Any, notes: Sequence[str] = (), options: Mapping[str, Any] = LEGEND) -> None:
    """The axes' legend, drawn with ``options``: every labelled artist, the collapse marker once after them (each
    series draws its own), then ``notes`` as hollow markers."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if lab != COLLAPSE_LABEL]
    if COLLAPSE_LABEL in labels:
        keep.append((Line2D([], [], linestyle="none", marker="x", color="black", markersize=7), COLLAPSE_LABEL))
    for note in notes:
        keep.append((Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3"),
                     note))
    if keep:
        ax.legend([h for h, _ in keep], [lab for _, lab in keep], **options)
