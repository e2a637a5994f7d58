"""Reading and aggregating the runs: transfer results, the long results frame, per-cell mean ± std over seeds,
the row order of methods, and the frames behind the per-target CSVs, ``dvc plots`` and the IRP curve."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autos.sweep.records import label_of

ACHIEVED_TOLERANCE = 0.005  # 0.5 percentage point
DENSE = "dense"
IRP = "irp"

# Leading columns of results.csv, in this order; any other scalar key of a row follows, sorted.
RESULT_COLUMNS = [
    "target", "method", "modifier", "label", "sparsity", "seed", "final_test_acc", "best_test_acc", "best_epoch",
    "achieved_sparsity", "achieved_density", "effective_sparsity", "min_layer_density", "collapsed",
    "num_empty_layers", "empty_layers", "pruned_nonzero_after_training", "final_test_loss", "epochs",
    "train_seconds", "select_seconds", "train_images_per_second",
]
DROPPED_KEYS = {"layer_density", "layer_effective_density", "info"}
INT_COLUMNS = {"seed", "best_epoch", "epochs", "num_empty_layers", "pruned_nonzero_after_training"}


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
    """``method`` or ``method+modifier``: the one label of ``autos.sweep.records``, shared with transfer and MLflow."""
    return label_of(row)


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


# --------------------------------------------------------------------------- row order and frames


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
    """``dvc plots`` data: columns sparsity, method (label), final_test_acc (fraction, mean over seeds), std (its
    sample std over seeds, empty for one seed: drawn as no error bar, never ± 0) and n (seeds)."""
    cells = cell_stats(rows, "final_test_acc")
    order = {label: i for i, label in enumerate(label_order(rows))}
    records = [{"sparsity": s, "method": label, "final_test_acc": cell.mean, "std": cell.std, "n": cell.n}
               for (label, s), cell in sorted(cells.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]
    return pd.DataFrame(records, columns=["sparsity", "method", "final_test_acc", "std", "n"])


def irp_curve_frame(curve: Mapping[str, Any]) -> pd.DataFrame:
    """One line per IRP round (0 = dense): the scalar fields of each round, plus sparsity = 1 - density."""
    records = [{k: v for k, v in r.items() if not isinstance(v, (Mapping, list))} for r in curve.get("rounds", [])]
    frame = pd.DataFrame(records)
    if "density" in frame.columns:
        frame.insert(frame.columns.get_loc("density") + 1, "sparsity", 1.0 - frame["density"])
    return frame
