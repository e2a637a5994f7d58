"""The report's text: formatted cells and tables (Markdown, and the rows of their CSV twins), the per-target
pages and the summary page."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from autos.report.aggregate import (
    ACHIEVED_TOLERANCE,
    DENSE,
    Cell,
    _float,
    achieved_differs,
    cell_stats,
    is_collapsed,
    label_order,
    pruned_sparsities,
    run_label,
)

COLLAPSE_MARK = "†"
ACHIEVED_MARK = "‡"
MISSING = "—"

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


# --------------------------------------------------------------------------- cells and per-target tables


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
        line += (f"; every run trained {recipe['epochs']} epochs with the shared recipe ({recipe['schedule']}, "
                 f"lr {recipe['lr']})")
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


# --------------------------------------------------------------------------- IRP curve table


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


# --------------------------------------------------------------------------- summary


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
