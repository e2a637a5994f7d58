"""The study report: tables, plots and a summary built from the stages' JSON outputs (no MLflow, no torch).

Pure functions over the loaded JSON, so the report is testable on synthetic results:

- :func:`results_frame` - every run of every target, one line each (the long ``results.csv``);
- :func:`cell_stats` / :func:`accuracy_table` - method x sparsity cells, mean ± std over seeds, with markers for
  layer collapse (:data:`COLLAPSE_MARK`) and achieved sparsity off the requested one (:data:`ACHIEVED_MARK`);
- :func:`target_markdown`, :func:`cells_frame`, :func:`plot_target`, :func:`plot_data` - per-target Markdown,
  per-cell numbers, PNG and ``dvc plots`` data (:func:`dvc_plot_template` draws the latter one line per method);
- :func:`irp_curve_frame`, :func:`plot_irp_curve` - the source IRP accuracy-vs-density curve;
- :func:`scorer_table` - held-out scorer metrics next to the trivial baselines, whatever metrics are present;
- :func:`build_report` - writes all of it into one directory and returns the files written.

Accuracies are fractions in the inputs and the CSVs, percent in the Markdown tables and the plots.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

COLLAPSE_MARK = "†"
ACHIEVED_MARK = "‡"
ACHIEVED_TOLERANCE = 0.005  # 0.5 percentage point
MISSING = "—"
DENSE = "dense"
IRP = "irp"
PLOTS_DIR = "plots"
DVC_TEMPLATE_NAME = "dvc_plot_template.json"

# Leading columns of results.csv, in this order; any other scalar key of a row follows, sorted.
RESULT_COLUMNS = [
    "target", "method", "modifier", "label", "sparsity", "seed", "final_test_acc", "best_test_acc", "best_epoch",
    "achieved_sparsity", "achieved_density", "effective_sparsity", "min_layer_density", "collapsed",
    "num_empty_layers", "empty_layers", "pruned_nonzero_after_training", "final_test_loss", "epochs",
    "train_seconds", "select_seconds", "train_images_per_second",
]
DROPPED_KEYS = {"layer_density", "layer_effective_density", "info"}
INT_COLUMNS = {"seed", "best_epoch", "epochs", "num_empty_layers", "pruned_nonzero_after_training"}

HOW_TO_READ = (
    "**How to read.** Every cell is the test accuracy (%) of one method at one requested sparsity, as mean ± "
    "sample std over seeds with the number of seeds (n=k) when more than one seed ran. The *final-epoch* "
    "accuracy is the headline number (no early stopping on the test set); *best-epoch* accuracy is secondary "
    f"and shown below it. {COLLAPSE_MARK} marks a cell where at least one seed suffered layer collapse (a "
    "prunable layer kept no weight, or no input-output path is left), so the network is close to chance. "
    f"{ACHIEVED_MARK} marks a cell whose achieved sparsity differs from the requested one by more than "
    f"{ACHIEVED_TOLERANCE * 100:g} percentage point. *Effective sparsity* counts weights that lie on no "
    "input-output path as pruned too, so it is never below the nominal (achieved) sparsity. The dense row is "
    "the same initialisation trained with the same recipe and no mask; irp (when present) is iterative rewind "
    "pruning, the expensive upper reference that AutoS learns to imitate."
)


# --------------------------------------------------------------------------- loading and the long table


def load_results(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``data/transfer/<target>/results.json`` files -> {target: payload}, sorted by target."""
    results: dict[str, dict[str, Any]] = {}
    for path in paths:
        payload = json.loads(Path(path).read_text())
        target = str(payload.get("target") or Path(path).parent.name)
        results[target] = payload
    return dict(sorted(results.items()))


def run_label(row: Mapping[str, Any]) -> str:
    """``method`` or ``method+modifier``."""
    modifier = row.get("modifier") or ""
    return f"{row['method']}+{modifier}" if modifier else str(row["method"])


def is_collapsed(row: Mapping[str, Any]) -> bool:
    """A run collapsed when it says so or when any prunable layer was left without weights."""
    return bool(row.get("collapsed")) or bool(row.get("empty_layers"))


def _flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if key in DROPPED_KEYS or isinstance(value, Mapping):
            continue
        if isinstance(value, (list, tuple)):
            flat[key] = ";".join(str(v) for v in value)
        else:
            flat[key] = value
    empty = row.get("empty_layers") or []
    flat["modifier"] = row.get("modifier") or ""
    flat["label"] = run_label(row)
    flat["collapsed"] = is_collapsed(row)
    flat["num_empty_layers"] = len(empty)
    flat["empty_layers"] = ";".join(str(v) for v in empty)
    return flat


def results_frame(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """All rows of all targets, one line per run; dict-valued keys dropped, lists joined with ';'."""
    flat = [_flat_row({"target": target, **row}) for target, payload in results.items()
            for row in payload.get("rows", [])]
    if not flat:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = pd.DataFrame(flat)
    for column in INT_COLUMNS & set(frame.columns):  # dense rows leave gaps; keep the integers integers
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    extra = sorted(c for c in frame.columns if c not in RESULT_COLUMNS)
    return frame.reindex(columns=[c for c in RESULT_COLUMNS if c in frame.columns] + extra)


# --------------------------------------------------------------------------- cells: mean ± std over seeds


@dataclass(frozen=True)
class Cell:
    """One (method label, requested sparsity) cell of a target, aggregated over seeds."""

    mean: float
    std: float  # sample std (ddof=1); nan for one seed
    n: int
    collapsed: bool
    achieved_sparsity: float  # mean over seeds; nan when not recorded (dense)
    effective_sparsity: float  # mean over seeds; nan when not recorded


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


CellKey = tuple[str, float]


def cell_stats(rows: Iterable[Mapping[str, Any]], metric: str = "final_test_acc") -> dict[CellKey, Cell]:
    """Group one target's rows by (label, sparsity) and aggregate ``metric`` over seeds."""
    groups: dict[CellKey, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((run_label(row), float(row["sparsity"])), []).append(row)
    cells: dict[CellKey, Cell] = {}
    for key, members in groups.items():
        values = [_float(r.get(metric)) for r in members]
        values = [v for v in values if not math.isnan(v)]
        cells[key] = Cell(mean=_mean(values), std=_std(values), n=len(values),
                          collapsed=any(is_collapsed(r) for r in members),
                          achieved_sparsity=_mean([_float(r.get("achieved_sparsity")) for r in members]),
                          effective_sparsity=_mean([_float(r.get("effective_sparsity")) for r in members]))
    return cells


def achieved_differs(cell: Cell, requested: float, tolerance: float = ACHIEVED_TOLERANCE) -> bool:
    return not math.isnan(cell.achieved_sparsity) and abs(cell.achieved_sparsity - requested) > tolerance


def format_cell(cell: Cell | None, requested: float | None = None) -> str:
    """``91.23 ± 0.45 (n=2)`` (percent), with collapse / achieved-sparsity markers; ``—`` when no run."""
    if cell is None or cell.n == 0:
        return MISSING
    text = f"{cell.mean * 100:.2f}"
    if cell.n > 1:
        text += f" ± {cell.std * 100:.2f} (n={cell.n})"
    if cell.collapsed:
        text += f" {COLLAPSE_MARK}"
    if requested is not None and achieved_differs(cell, requested):
        text += f" {ACHIEVED_MARK}"
    return text


def format_sparsity(sparsity: float) -> str:
    return f"{sparsity * 100:.4g}%"


# --------------------------------------------------------------------------- per-target tables


def label_order(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dense first, then methods in order of appearance (each followed by its modified variants), irp last."""
    method_rank: dict[str, int] = {}
    modifier_rank: dict[str, int] = {"": -1}
    for row in rows:
        method_rank.setdefault(str(row["method"]), len(method_rank))
        modifier_rank.setdefault(str(row.get("modifier") or ""), len(modifier_rank))

    def key(row: Mapping[str, Any]) -> tuple[int, int, int]:
        method = str(row["method"])
        group = 0 if method == DENSE else 2 if method == IRP else 1
        return group, method_rank[method], modifier_rank[str(row.get("modifier") or "")]

    ordered = sorted(rows, key=key)
    return list(dict.fromkeys(run_label(r) for r in ordered))


def pruned_sparsities(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    return sorted({float(r["sparsity"]) for r in rows if r["method"] != DENSE})


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def accuracy_table(rows: Sequence[Mapping[str, Any]], metric: str = "final_test_acc") -> Table:
    """Rows = method(+modifier), columns = dense then each requested sparsity; cells from :func:`format_cell`."""
    cells = cell_stats(rows, metric)
    sparsities = pruned_sparsities(rows)
    has_dense = any(r["method"] == DENSE for r in rows)
    header = ["method"] + (["dense (0%)"] if has_dense else []) + [format_sparsity(s) for s in sparsities]
    body: list[list[str]] = []
    for label in label_order(rows):
        line = [label]
        if has_dense:
            line.append(format_cell(cells.get((label, 0.0))) if label == DENSE else MISSING)
        for s in sparsities:
            line.append(MISSING if label == DENSE else format_cell(cells.get((label, s)), s))
        body.append(line)
    return Table(header, body)


def sparsity_table(rows: Sequence[Mapping[str, Any]]) -> Table | None:
    """Achieved / effective sparsity (%) per cell, mean over seeds; None when no pruned row records them."""
    pruned = [r for r in rows if r["method"] != DENSE]
    if not any("achieved_sparsity" in r or "effective_sparsity" in r for r in pruned):
        return None
    cells = cell_stats(pruned)
    sparsities = pruned_sparsities(pruned)
    body = []
    for label in label_order(pruned):
        line = [label]
        for s in sparsities:
            cell = cells.get((label, s))
            if cell is None:
                line.append(MISSING)
                continue
            parts = [f"{v * 100:.2f}" if not math.isnan(v) else MISSING
                     for v in (cell.achieved_sparsity, cell.effective_sparsity)]
            line.append(" / ".join(parts))
        body.append(line)
    return Table(["method"] + [format_sparsity(s) for s in sparsities], body)


def markdown_table(table: Table) -> str:
    """GitHub-flavoured Markdown; first column left-aligned, the others right-aligned."""
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = [":---"] + ["---:"] * (len(table.header) - 1)
    return "\n".join([line(table.header), line(align), *(line(r) for r in table.rows)])


def achieved_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One note per cell whose achieved sparsity is off the requested one by more than the tolerance."""
    notes = []
    for (label, requested), cell in sorted(cell_stats(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if label != DENSE and achieved_differs(cell, requested):
            notes.append(f"{label} @ {format_sparsity(requested)}: achieved {cell.achieved_sparsity * 100:.2f}%")
    return notes


def collapsed_runs(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return [f"{run_label(r)} @ {format_sparsity(float(r['sparsity']))} seed {r.get('seed')}"
            + (f" (empty: {', '.join(map(str, r['empty_layers']))})" if r.get("empty_layers") else "")
            for r in rows if is_collapsed(r)]


def _spec_line(payload: Mapping[str, Any]) -> str:
    spec = payload["spec"]
    line = ", ".join(f"{k}={v}" for k, v in spec.items() if v is not None and not isinstance(v, (Mapping, list)))
    data = payload.get("dataset")
    if data:
        line += (f" ({data['train_images']} train / {data['test_images']} test images, {data['num_classes']} classes,"
                 f" {data['image_size']}x{data['image_size']})")
    recipe = payload.get("recipe")
    if recipe:
        line += f"; every run trained {recipe['epochs']} epochs with the shared recipe ({recipe['schedule']}, lr {recipe['lr']})"
    return line


def target_markdown(target: str, payload: Mapping[str, Any], heading: str = "#",
                    png: str | None = None) -> str:
    """The per-target page: final-epoch table, footnotes, best-epoch table, sparsity check, optional plot."""
    rows = list(payload.get("rows", []))
    parts = [f"{heading} {target}"]
    if payload.get("spec"):
        parts.append(f"Target: {_spec_line(payload)}.")
    if not rows:
        return "\n\n".join(parts + ["No runs recorded."]) + "\n"
    parts += ["**Final-epoch test accuracy (%)**", markdown_table(accuracy_table(rows, "final_test_acc"))]
    notes = []
    if any(is_collapsed(r) for r in rows):
        notes.append(f"{COLLAPSE_MARK} layer collapse in at least one seed of this cell: "
                     + "; ".join(collapsed_runs(rows)) + ".")
    off = achieved_notes(rows)
    if off:
        notes.append(f"{ACHIEVED_MARK} achieved sparsity differs from the requested one by more than "
                     f"{ACHIEVED_TOLERANCE * 100:g} pp: " + "; ".join(off) + ".")
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    notes.append(f"Mean ± sample std over seeds ({', '.join(map(str, seeds))}); a single seed shows its value.")
    parts.append("\n".join(f"- {n}" for n in notes))
    if png:
        parts.append(f"![{target}: final-epoch accuracy vs sparsity]({png})")
    parts += ["**Best-epoch test accuracy (%)** (secondary)", markdown_table(accuracy_table(rows, "best_test_acc"))]
    check = sparsity_table(rows)
    if check is not None:
        parts += ["**Achieved / effective sparsity (%)**, mean over seeds", markdown_table(check)]
    return "\n\n".join(parts) + "\n"


def table_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame(table.rows, columns=table.header)


def cells_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The numbers behind the per-target tables: one line per (label, sparsity) cell, fractions."""
    final, best = cell_stats(rows, "final_test_acc"), cell_stats(rows, "best_test_acc")
    order = {label: i for i, label in enumerate(label_order(rows))}
    records = []
    for (label, sparsity), cell in sorted(final.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        b = best[(label, sparsity)]
        records.append({"label": label, "sparsity": sparsity, "n": cell.n,
                        "final_test_acc_mean": cell.mean, "final_test_acc_std": cell.std,
                        "best_test_acc_mean": b.mean, "best_test_acc_std": b.std,
                        "achieved_sparsity": cell.achieved_sparsity, "effective_sparsity": cell.effective_sparsity,
                        "collapsed": cell.collapsed})
    return pd.DataFrame(records)


def plot_data(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``dvc plots`` data: columns sparsity, method (label), final_test_acc (fraction, mean over seeds)."""
    cells = cell_stats(rows, "final_test_acc")
    order = {label: i for i, label in enumerate(label_order(rows))}
    records = [{"sparsity": s, "method": label, "final_test_acc": cell.mean}
               for (label, s), cell in sorted(cells.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]
    return pd.DataFrame(records, columns=["sparsity", "method", "final_test_acc"])


# --------------------------------------------------------------------------- plots (Agg, no pyplot state)


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


def irp_curve_frame(curve: Mapping[str, Any]) -> pd.DataFrame:
    """One line per IRP round (0 = dense): the scalar fields of each round, plus sparsity = 1 - density."""
    records = [{k: v for k, v in r.items() if not isinstance(v, (Mapping, list))} for r in curve.get("rounds", [])]
    frame = pd.DataFrame(records)
    if "density" in frame.columns:
        frame.insert(frame.columns.get_loc("density") + 1, "sparsity", 1.0 - frame["density"])
    return frame


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


def irp_table(frame: pd.DataFrame) -> Table:
    columns = [("round", "round", "{:d}"), ("requested_density", "requested density", "{:.4f}"),
               ("density", "density", "{:.4f}"), ("min_layer_density", "min layer density", "{:.4f}"),
               ("final_test_acc", "final acc (%)", "pct"), ("best_test_acc", "best acc (%)", "pct"),
               ("train_seconds", "train s", "{:.0f}")]
    present = [c for c in columns if c[0] in frame.columns]
    body = []
    for _, r in frame.iterrows():
        body.append([_fmt(r[key], fmt) for key, _, fmt in present])
    return Table([title for _, title, _ in present], body)


def _fmt(value: Any, fmt: str) -> str:
    number = _float(value)
    if math.isnan(number):
        return MISSING
    if fmt == "pct":
        return f"{number * 100:.2f}"
    if fmt == "{:d}":
        return str(int(number))
    return fmt.format(number)


# --------------------------------------------------------------------------- scorer vs baselines


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_columns(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, float]]:
    """Every nested dict holding numbers -> {column name: {metric: value}}; ``baselines.`` is dropped."""
    columns: dict[str, dict[str, float]] = {}
    numbers = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    if numbers and prefix:
        columns[prefix] = numbers
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            name = key if prefix in ("", "baselines") else f"{prefix}.{key}"
            columns.update(metric_columns(value, name))
    return columns


def scorer_table(metrics: Mapping[str, Any] | None) -> Table | None:
    """Metric rows x (scorer, baselines...) columns, from whatever nested numeric dicts are present."""
    if not metrics:
        return None
    columns = metric_columns(metrics)
    if not columns:
        return None
    names = list(columns)
    rows = list(dict.fromkeys(m for col in columns.values() for m in col))
    body = [[m] + [_fmt(columns[n].get(m), "{:.4f}") for n in names] for m in rows]
    return Table(["metric"] + names, body)


def scorer_scalars(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if _is_number(v)}


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


# --------------------------------------------------------------------------- summary and the whole report


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(markdown: str) -> list[str]:
    """Targets of Markdown links/images that are relative paths (no scheme, no anchor-only)."""
    return [t for t in _LINK.findall(markdown) if "://" not in t and not t.startswith("#")]


def summary_markdown(results: Mapping[str, Mapping[str, Any]], curve_frame: pd.DataFrame | None,
                     scorer: Mapping[str, Any] | None, files: Mapping[str, str]) -> str:
    """The report's front page; ``files`` maps roles ('results', '<target>.md', ...) to relative paths."""
    parts = ["# AutoS study report", HOW_TO_READ]
    if "results" in files:
        parts.append(f"All runs, one line each: [{files['results']}]({files['results']}).")
    parts.append("## Transfer targets")
    if not results:
        parts.append("No transfer results found (data/transfer/*/results.json).")
    for target, payload in results.items():
        body = target_markdown(target, payload, heading="###", png=files.get(f"{target}.png"))
        links = [f"[{files[name]}]({files[name]})" for name in (f"{target}.md", f"{target}.csv", f"{target}_cells.csv")
                 if name in files]
        parts.append(body.rstrip() + ("\n\nFiles: " + ", ".join(links) if links else ""))
    parts.append("## Source IRP curve")
    if curve_frame is None or curve_frame.empty:
        parts.append("No IRP curve found (data/irp/curve.json).")
    else:
        parts.append(markdown_table(irp_table(curve_frame)))
        if "irp_curve.png" in files:
            parts.append(f"![IRP accuracy vs density]({files['irp_curve.png']})")
        if "irp_curve.csv" in files:
            parts.append(f"Data: [{files['irp_curve.csv']}]({files['irp_curve.csv']}).")
    parts.append("## Scorer vs trivial baselines (held-out weights)")
    table = scorer_table(scorer)
    if table is None:
        parts.append("No scorer metrics found (metrics/scorer.json); the scorer stage has not run.")
    else:
        parts.append(markdown_table(table))
        scalars = scorer_scalars(scorer)
        if scalars:
            parts.append(", ".join(f"{k} = {v:g}" for k, v in scalars.items()) + ".")
    return "\n\n".join(parts) + "\n"


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def _safe_name(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", target)


def build_target(target: str, payload: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """<target>.csv (the final-epoch table), <target>_cells.csv (its numbers), .md, .png and plots/<target>.csv;
    returns {role: path}."""
    rows = list(payload.get("rows", []))
    name = _safe_name(target)
    written: dict[str, Path] = {}
    if rows:
        written[f"{target}.png"] = plot_target(target, rows, out / f"{name}.png")
        written[f"{target}.csv"] = _write_csv(table_frame(accuracy_table(rows)), out / f"{name}.csv")
        written[f"{target}_cells.csv"] = _write_csv(cells_frame(rows), out / f"{name}_cells.csv")
        (out / PLOTS_DIR).mkdir(exist_ok=True)
        written[f"plots/{target}.csv"] = _write_csv(plot_data(rows), out / PLOTS_DIR / f"{name}.csv")
    md = out / f"{name}.md"
    md.write_text(target_markdown(target, payload, png=written[f"{target}.png"].name if rows else None))
    written[f"{target}.md"] = md
    return written


def build_report(results: Mapping[str, Mapping[str, Any]], curve: Mapping[str, Any] | None,
                 scorer: Mapping[str, Any] | None, out: Path) -> list[Path]:
    """Write every report file into ``out`` (created if needed); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"results": _write_csv(results_frame(results), out / "results.csv")}
    for target, payload in results.items():
        written.update(build_target(target, payload, out))
        log.info("report: %s (%d runs)", target, len(payload.get("rows", [])))
    curve_frame = irp_curve_frame(curve) if curve else None
    if curve_frame is not None and not curve_frame.empty:
        written["irp_curve.csv"] = _write_csv(curve_frame, out / "irp_curve.csv")
        if "density" in curve_frame.columns and "final_test_acc" in curve_frame.columns:
            written["irp_curve.png"] = plot_irp_curve(curve_frame, out / "irp_curve.png")
    if scorer is None:
        log.warning("report: no scorer metrics; the scorer table is left out")
    template = out / DVC_TEMPLATE_NAME
    template.write_text(json.dumps(dvc_plot_template(), indent=2) + "\n")
    written["dvc_template"] = template
    relative = {role: path.relative_to(out).as_posix() for role, path in written.items()}
    summary = out / "summary.md"
    summary.write_text(summary_markdown(results, curve_frame, scorer, relative))
    return [*written.values(), summary]
