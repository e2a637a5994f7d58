"""Reading and aggregating the runs: transfer results (:class:`TargetResults`, rows checked as
:class:`~autos.sweep.records.RunRow`), the long results frame, per-cell mean ± std over seeds, the row order of
methods, and the frames behind the per-target CSVs, ``dvc plots`` and the IRP curve."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autos.errors import DataError
from autos.sweep.records import RunRow, label_of

ACHIEVED_TOLERANCE = 0.005  # 0.5 percentage point
DENSE = "dense"
IRP = "irp"

# The columns of results.csv, in this order: every scalar RunRow field (tested) and the derived label and
# num_empty_layers; a column a row has beyond these follows, sorted. A column no row has (``source`` and
# ``final_val_acc`` in a study without source runs or validation split) is left out.
RESULT_COLUMNS = [
    "target", "method", "modifier", "label", "sparsity", "seed", "source", "final_test_acc", "final_val_acc",
    "best_test_acc", "best_epoch",
    "achieved_sparsity", "achieved_density", "effective_sparsity", "min_layer_density", "collapsed",
    "num_empty_layers", "empty_layers", "pruned_nonzero_after_training", "final_test_loss", "epochs",
    "train_seconds", "select_seconds", "train_images_per_second",
]
DROPPED_KEYS = {"layer_density", "layer_effective_density", "info"}
INT_COLUMNS = {"seed", "source", "best_epoch", "epochs", "num_empty_layers", "pruned_nonzero_after_training"}


# --------------------------------------------------------------------------- loading and the long table


@dataclass(frozen=True)
class TargetResults:
    """One target's ``results.json`` (``autos.pipeline.transfer.results_payload``): the rows, checked
    (:class:`~autos.sweep.records.RunRow`), and what the transfer stage records beside them, as read."""

    target: str
    rows: tuple[RunRow, ...]
    spec: Mapping[str, Any] | None = None  # model, width, dataset, epochs
    dataset: Mapping[str, Any] | None = None  # name, train_images, test_images, num_classes, image_size
    recipe: Mapping[str, Any] | None = None  # the shared training recipe (epochs, schedule, lr, ...)
    methods: Mapping[str, Any] | None = None  # {method: {"kind": ...}} as the transfer stage ran them
    oracle_overlap: tuple[Mapping[str, Any], ...] = ()  # autos.sweep.oracle.oracle_overlaps records

    @classmethod
    def from_json(cls, payload: Any, where: str = "results", target: str | None = None) -> TargetResults:
        """A ``results.json`` payload; DataError naming ``where`` (and the row) when it or a row is malformed.
        The target: the payload's own, else ``target``."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("rows", []), list):
            raise DataError(f"{where}: not a results payload (a JSON object with a list of rows)")
        try:
            rows = tuple(RunRow.from_json(raw, f"{where}, row {i}") for i, raw in enumerate(payload.get("rows", [])))
        except ValueError as exc:
            raise DataError(str(exc)) from None
        name = payload.get("target") or target
        if not name:
            raise DataError(f"{where}: names no target")

        def mapping(key: str) -> Mapping[str, Any] | None:
            value = payload.get(key)
            return value if isinstance(value, Mapping) else None

        return cls(target=str(name), rows=rows, spec=mapping("spec"), dataset=mapping("dataset"),
                   recipe=mapping("recipe"), methods=mapping("methods"),
                   oracle_overlap=tuple(payload.get("oracle_overlap") or ()))


def load_results(paths: Iterable[Path]) -> dict[str, TargetResults]:
    """``data/transfer/<target>/results.json`` files -> {target: results}, sorted by target; DataError naming the
    file (and the row) when one is not valid JSON or a row is not a valid :class:`RunRow`."""
    results: dict[str, TargetResults] = {}
    for path in map(Path, paths):
        try:
            payload = json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        loaded = TargetResults.from_json(payload, str(path), target=path.parent.name)
        results[loaded.target] = loaded
    return dict(sorted(results.items()))


def run_label(row: Mapping[str, Any]) -> str:
    """``method`` or ``method+modifier`` of a raw results row (a :class:`RunRow` has ``.label``): the one label of
    ``autos.sweep.records``, shared with transfer and MLflow."""
    return label_of(row)


def _flat_row(row: RunRow) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.to_json().items():  # the fields the row has, in field order (no None)
        if key in DROPPED_KEYS or isinstance(value, Mapping):
            continue
        flat[key] = ";".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
    empty = row.empty_layers or []
    flat["modifier"] = row.modifier
    flat["label"] = row.label
    flat["collapsed"] = row.is_collapsed
    flat["num_empty_layers"] = len(empty)
    flat["empty_layers"] = ";".join(empty)
    return flat


def results_frame(results: Mapping[str, TargetResults]) -> pd.DataFrame:
    """All rows of all targets, one line per run; dict-valued fields dropped, lists joined with ';'."""
    flat = [_flat_row(row) for target in results.values() for row in target.rows]
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


def metric_value(row: RunRow, metric: str) -> float:
    """The row's ``metric`` field (``final_test_acc``, ``best_test_acc``, ...) as a float; nan when unset."""
    return _float(getattr(row, metric))


def cell_stats(rows: Iterable[RunRow], metric: str = "final_test_acc") -> dict[CellKey, Cell]:
    """Group one target's rows by (label, sparsity) and aggregate ``metric`` (a :class:`RunRow` field) over seeds."""
    groups: dict[CellKey, list[RunRow]] = {}
    for row in rows:
        groups.setdefault((row.label, row.sparsity), []).append(row)
    cells: dict[CellKey, Cell] = {}
    for key, members in groups.items():
        values = [metric_value(r, metric) for r in members]
        values = [v for v in values if not math.isnan(v)]
        cells[key] = Cell(mean=_mean(values), std=_std(values), n=len(values),
                          collapsed=any(r.is_collapsed for r in members),
                          achieved_sparsity=_mean([_float(r.achieved_sparsity) for r in members]),
                          effective_sparsity=_mean([_float(r.effective_sparsity) for r in members]))
    return cells


def achieved_differs(cell: Cell, requested: float, tolerance: float = ACHIEVED_TOLERANCE) -> bool:
    return not math.isnan(cell.achieved_sparsity) and abs(cell.achieved_sparsity - requested) > tolerance


# --------------------------------------------------------------------------- row order and frames


def label_order(rows: Sequence[RunRow]) -> list[str]:
    """Dense first, then methods in order of appearance (each followed by its modified variants), irp last."""
    method_rank: dict[str, int] = {}
    modifier_rank: dict[str, int] = {"": -1}
    for row in rows:
        method_rank.setdefault(row.method, len(method_rank))
        modifier_rank.setdefault(row.modifier, len(modifier_rank))

    def key(row: RunRow) -> tuple[int, int, int]:
        group = 0 if row.method == DENSE else 2 if row.method == IRP else 1
        return group, method_rank[row.method], modifier_rank[row.modifier]

    ordered = sorted(rows, key=key)
    return list(dict.fromkeys(r.label for r in ordered))


def pruned_sparsities(rows: Iterable[RunRow]) -> list[float]:
    return sorted({r.sparsity for r in rows if r.method != DENSE})


def cells_frame(rows: Sequence[RunRow]) -> pd.DataFrame:
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


def plot_data(rows: Sequence[RunRow]) -> pd.DataFrame:
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
