"""The report's tables: formatted cells (percent, ``mean ± std (n=k)``), the Markdown tables of a target
(accuracy, sparsity check, paired differences to AutoS, overlap with the oracle), of the IRP curve and of the scorer,
and the rows of their CSV twins.

Accuracies are percent with one decimal, ``mean ± std (n=k)`` over seeds (sample std, ddof=1); one seed shows its
value and ``(n=1)``, never a ``± 0``. Differences are percentage points (pp) with a sign (``+1.2``, ``−3.8``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from autos.report.aggregate import (
    DENSE,
    Cell,
    _float,
    achieved_differs,
    cell_stats,
    label_order,
    pruned_sparsities,
)
from autos.report.compare import REFERENCE, PairedDiff, paired_differences
from autos.report.stats import mean_std
from autos.sweep.records import RunRow

COLLAPSE_MARK = "†"
ACHIEVED_MARK = "‡"
MISSING = "—"


# --------------------------------------------------------------------------- cells and per-target tables


def format_mean(mean: float, std: float, n: int, show_n: bool = True) -> str:
    """``91.2 ± 0.5 (n=2)`` (fractions in, percent out); one value: ``91.2 (n=1)``, never a ``± 0``."""
    text = f"{mean * 100:.1f}"
    if n >= 2 and not math.isnan(std):
        text += f" ± {std * 100:.1f}"
    if show_n or n < 2:
        text += f" (n={n})"
    return text


def format_signed(value: float) -> str:
    """A difference in percentage points, one decimal, with its sign: ``+1.2``, ``−3.8`` (a true minus sign)."""
    return f"{value * 100:+.1f}".replace("-", "\u2212")


def format_interval(low: float, high: float) -> str:
    return "[" + ", ".join(f"{v * 100:.1f}".replace("-", "\u2212") for v in (low, high)) + "]"


def format_cell(cell: Cell | None, requested: float | None = None) -> str:
    """``91.2 ± 0.5 (n=2)`` (percent), with collapse / achieved-sparsity markers; ``—`` when no run."""
    if cell is None or cell.n == 0:
        return MISSING
    text = format_mean(cell.mean, cell.std, cell.n)
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


def accuracy_table(rows: Sequence[RunRow], metric: str = "final_test_acc") -> Table:
    """Rows = method(+modifier), columns = dense then each requested sparsity; cells from :func:`format_cell`."""
    cells = cell_stats(rows, metric)
    sparsities = pruned_sparsities(rows)
    has_dense = any(r.method == DENSE for r in rows)
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


def sparsity_table(rows: Sequence[RunRow]) -> Table | None:
    """Achieved / effective sparsity (%) per cell, mean over seeds; None when no pruned row records them."""
    pruned = [r for r in rows if r.method != DENSE]
    if not any(r.achieved_sparsity is not None or r.effective_sparsity is not None for r in pruned):
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


def achieved_notes(rows: Sequence[RunRow]) -> list[str]:
    """One note per cell whose achieved sparsity is off the requested one by more than the tolerance."""
    notes = []
    for (label, requested), cell in sorted(cell_stats(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if label != DENSE and achieved_differs(cell, requested):
            notes.append(f"{label} @ {format_sparsity(requested)}: achieved {cell.achieved_sparsity * 100:.2f}%")
    return notes


def collapsed_runs(rows: Iterable[RunRow]) -> list[str]:
    """``snip @ 98% seed 1 (empty: fc.weight)`` for every collapsed run."""
    return [f"{r.label} @ {format_sparsity(r.sparsity)} seed {r.seed}"
            + (f" (empty: {', '.join(r.empty_layers)})" if r.empty_layers else "")
            for r in rows if r.is_collapsed]


def paired_table(rows: Sequence[RunRow], reference: str = REFERENCE) -> Table | None:
    """Rows = every pruned label but AutoS, columns = sparsities; cells ``−3.8 [−5.1, −2.5] (n=3)``: method − AutoS
    in pp over the paired seeds, with the 95% t-interval (none from one seed). None when AutoS did not run."""
    diffs = paired_differences(rows, reference)
    if not diffs:
        return None
    by_key = {(d.label, d.sparsity): d for d in diffs}
    sparsities = pruned_sparsities(rows)
    labels = [label for label in label_order(rows) if any((label, s) in by_key for s in sparsities)]
    body = [[label] + [format_paired(by_key.get((label, s))) for s in sparsities] for label in labels]
    return Table(["method"] + [format_sparsity(s) for s in sparsities], body)


def format_paired(diff: PairedDiff | None) -> str:
    if diff is None:
        return MISSING
    if not diff.has_interval:
        return f"{format_signed(diff.mean)} (n={diff.n})"
    return f"{format_signed(diff.mean)} {format_interval(diff.ci_low, diff.ci_high)} (n={diff.n})"


def oracle_table(records: Sequence[Mapping[str, Any]]) -> Table | None:
    """Method x sparsity rows of ``autos.sweep.oracle.oracle_overlaps`` records, averaged over seeds (in %)."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((str(record["method"]), float(record["sparsity"])), []).append(record)
    if not groups:
        return None
    body = []
    for (method, sparsity), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] != REFERENCE)):
        mean, std = mean_std([float(r["overlap"]) for r in group])
        body.append([method, format_sparsity(sparsity), format_mean(mean, std, len(group)),
                     f"{100.0 * float(group[0]['chance']):.3g}"])
    return Table(["method", "sparsity", "keeps of IRP's ticket (%)", "chance (%)"], body)


def table_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame(table.rows, columns=table.header)


# --------------------------------------------------------------------------- IRP curve table


def irp_table(frame: pd.DataFrame) -> Table:
    columns = [("source", "source", "{:d}"), ("round", "round", "{:d}"),
               ("requested_density", "requested density", "{:.4f}"),
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
        return f"{number * 100:.1f}"
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

