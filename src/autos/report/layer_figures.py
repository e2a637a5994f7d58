"""The per-layer density figures: :func:`layer_density_figure` - each method's per-layer density at one sparsity
(layers in network order, log y) with the uniform density (1 - sparsity) for reference, the diagnostic "does AutoS
spread the kept weights like IRP / ERK / SNIP / SynFlow"; :func:`source_ticket_figure` - on the source, the IRP
ticket's per-layer density next to AutoS's and |w0|'s masks. Titles name the study's source when the report is
given it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.aggregate import DENSE, _float, label_order
from autos.report.compare import REFERENCE
from autos.report.figures import LEGEND, method_styles, new_axes, save_figure
from autos.report.names import MethodRecords, Source, method_name, with_source
from autos.report.tables import format_sparsity
from autos.sweep.records import RunRow

# --------------------------------------------------------------------------- per-layer density


def layer_density_frame(rows: Sequence[RunRow], key: str = "layer_density") -> pd.DataFrame:
    """Mean over seeds of each label's per-layer density (``key``: the :class:`RunRow` field, ``layer_density`` or
    ``layer_effective_density``): columns label, sparsity, index (network order), layer, density, n. Layers are
    ordered as the rows' dicts list them (``model.named_parameters()`` order)."""
    layers: dict[str, int] = {}
    groups: dict[tuple[str, float, str], list[float]] = {}
    for row in rows:
        values = getattr(row, key)
        if row.method == DENSE or not isinstance(values, Mapping):
            continue
        for layer, value in values.items():
            layers.setdefault(str(layer), len(layers))
            number = _float(value)
            if not math.isnan(number):
                groups.setdefault((row.label, row.sparsity, str(layer)), []).append(number)
    order = {label: i for i, label in enumerate(label_order(rows))}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], layers[k[2]]))
    records = [{"label": label, "sparsity": s, "index": layers[layer], "layer": layer,
                "density": sum(groups[(label, s, layer)]) / len(groups[(label, s, layer)]),
                "n": len(groups[(label, s, layer)])} for label, s, layer in keys]
    return pd.DataFrame(records, columns=["label", "sparsity", "index", "layer", "density", "n"])


def layer_density_figure(rows: Sequence[RunRow], *, title: str, records: MethodRecords,
                         sparsity: float | None = None, source: Source | None = None) -> Any:
    """Per-layer density of every unmodified method at ``sparsity`` (default: the highest one with per-layer data);
    None when no row records ``layer_density``. ``records``: the method registry's records (the methods' titles);
    ``source``: named under the title."""
    frame = layer_density_frame([r for r in rows if not r.modifier])
    if frame.empty:
        return None
    if sparsity is None:
        sparsity = float(frame["sparsity"].max())
    frame = frame[frame["sparsity"] == sparsity]
    names = list(dict.fromkeys(frame.sort_values("index")["layer"]))
    position = {name: i for i, name in enumerate(names)}
    styles = method_styles(rows)
    fig, ax = new_axes(max(6.5, 0.32 * len(names) + 3.0), 4.4)
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
                zorder=4 if ours else 3, label=method_name(label, records))
        empty += [(x, color) for x, d in zip(xs, part["density"], strict=True) if d <= 0]
    if empty:
        ax.scatter([x for x, _ in empty], [floor] * len(empty), marker="v", s=40, c=[c for _, c in empty], zorder=5,
                   label="empty layer (density 0)")
    ax.axhline(1.0 - sparsity, color="0.4", linestyle="--", linewidth=1.0, zorder=1,
               label=f"uniform ({(1.0 - sparsity) * 100:.3g}% kept)")
    _layer_density_axes(ax, names, with_source(f"{title}: per-layer density at {format_sparsity(sparsity)} sparsity",
                                               source))
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


def plot_layers(target: str, rows: Sequence[RunRow], path: Path, *, records: MethodRecords, title: str | None = None,
                source: Source | None = None) -> Path | None:
    """:func:`layer_density_figure` saved as PNG + SVG; None (nothing written) without per-layer data."""
    fig = layer_density_figure(rows, title=title or target, records=records, source=source)
    if fig is None:
        return None
    save_figure(fig, path)
    return path


# --------------------------------------------------------------------------- the source's IRP ticket


def source_ticket_figure(ticket: Mapping[str, Any], source: Source | None = None) -> Any:
    """Per-layer density on the source: the IRP ticket, AutoS's mask and |w0|'s mask at the ticket's density
    (``autos.scorer.metrics.ticket_diagnostics``); empty layers drawn at the floor; the title names the ``source``
    when given."""
    layers = list(ticket["layers"])
    names = [row["layer"] for row in layers]
    fig, ax = new_axes(max(6.5, 0.32 * len(names) + 3.0), 4.4)
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
    _layer_density_axes(ax, names, title + (f"\n{source.title}" if source is not None else ""))
    return fig


def plot_source_ticket(ticket: Mapping[str, Any], path: Path, source: Source | None = None) -> Path:
    """:func:`source_ticket_figure` saved as PNG + SVG; returns ``path``."""
    save_figure(source_ticket_figure(ticket, source), path)
    return path
