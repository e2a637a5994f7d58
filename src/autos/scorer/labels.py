"""What the scorer regresses (``scorer.label``): the survival label of the paper, or the residual rank after |w0|.

``survival``: ``label = survived / num_rounds``, the feature table's own column (docs/reference/autos.md §3, §5.2).

``residual_rank``: what IRP survival says *beyond* the initial magnitude, within a layer. With magnitude-IRP the
survival count is nearly a function of |w0| (held-out Spearman 0.93, docs/sweeps.md), so a scorer trained on it
learns |w0|. This label removes that part:

    p_s = the weight's survival percentile within its layer      (rank of ``survived``, ties averaged, in (0, 1))
    p_w = the weight's |w0| percentile within its layer
    residual = p_s - c(p_w)

where ``c`` is the *magnitude curve*: the mean ``p_s`` of the training rows in each of ``bins`` equal-width ``p_w``
bins, pooled over the source's layers. Pooled rather than per layer (``bench/residual_label.py`` fits one per layer)
because ``c`` must also be applied to the layers of a target the scorer never saw; what differs between layers is
left in the residual, where the layer descriptors (fan-in, fan-out) can learn it.

At prune time a residual scorer's output is turned back into a within-layer survival estimate,
``score = c(p_w) + predicted residual`` (``compose_score``), with ``c`` stored in the scorer's metadata. That
score is a within-layer percentile, so it carries no per-layer density of its own: a global ranking gives every
layer about the same density. Pair it with ``layer_floor: 1.0`` (ERK's layer counts, the scorer's order inside
each layer), which is how ``docs/sweeps.md`` measures it. The scorer model logged to MLflow outputs the network's
raw output, which for a residual scorer is the residual alone: prune through AutoS (pipeline, ``autos.prune``,
``autos-prune``) to get the composed score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from autos.errors import DataError

LABELS: tuple[str, ...] = ("survival", "residual_rank")  # scorer.label's values (config.ScorerConfig, tested equal)
LABEL_KEY = "label"  # the scorer metadata entry that records the label (``save_scorer`` extra_meta)


def within_layer_percentiles(values: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Each row's rank within its layer scaled into (0, 1): ``(rank - 0.5) / layer size``, ties averaged."""
    from scipy.stats import rankdata  # imported on use: the pruners import this module, every stage imports them

    values = np.asarray(values).reshape(-1)
    layer = np.asarray(layer).reshape(-1)
    if values.size != layer.size:
        raise ValueError(f"values has {values.size} rows, layer {layer.size}")
    out = np.empty(values.size, dtype=np.float64)
    for idx in np.unique(layer):
        rows = np.flatnonzero(layer == idx)
        out[rows] = (rankdata(values[rows]) - 0.5) / rows.size
    return out


def _bin_of(p_w: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((np.asarray(p_w) * bins).astype(np.int64), bins - 1)


def magnitude_curve(p_w: np.ndarray, p_s: np.ndarray, rows: np.ndarray, bins: int) -> np.ndarray:
    """``c``: the mean survival percentile of ``rows`` in each of ``bins`` |w0|-percentile bins (pooled over
    layers); an empty bin is interpolated linearly between the nearest non-empty ones."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if rows.size == 0:
        raise ValueError("no rows to fit the magnitude curve on")
    b = _bin_of(p_w[rows], bins)
    sums = np.bincount(b, weights=p_s[rows], minlength=bins)
    counts = np.bincount(b, minlength=bins)
    filled = counts > 0
    centres = (np.arange(bins) + 0.5) / bins
    return np.interp(centres, centres[filled], sums[filled] / counts[filled])


@dataclass(frozen=True)
class SourceLabel:
    """The label a scorer is fitted to on the source table, and how its outputs become pruning scores there."""

    kind: str
    values: np.ndarray  # float32, one per table row
    record: dict[str, Any]  # the scorer metadata entry (``label_record``)
    base: np.ndarray | None = None  # residual_rank: c(p_w) of every row, added back to the scorer's outputs

    def with_label(self, table: pa.Table) -> pa.Table:
        """``table`` with its ``label`` column replaced by this label (the same table for ``survival``)."""
        if self.kind == "survival":
            return table
        return table.set_column(table.column_names.index("label"), "label", pa.array(self.values))

    def scores(self, predicted: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Pruning scores of the table's ``rows`` (all when None) from the scorer's outputs on them."""
        if self.base is None:
            return predicted
        return (self.base if rows is None else self.base[rows]) + np.asarray(predicted, dtype=np.float64)


def source_label(table: pa.Table, kind: str, bins: int, train_rows: np.ndarray) -> SourceLabel:
    """``kind``'s label for every row of a labelled feature table; the magnitude curve is fitted on ``train_rows``
    only (the scorer's training split), so the held-out rows stay held out."""
    if kind not in LABELS:
        raise ValueError(f"unknown label {kind!r}; allowed: {', '.join(LABELS)}")
    missing = [c for c in ("label", "survived", "w0", "layer_idx") if c not in table.column_names]
    if missing:
        raise DataError(f"feature table lacks {missing} (an unlabelled table?); present: {table.column_names}")
    if kind == "survival":
        return SourceLabel(kind, table.column("label").to_numpy(), label_record(kind))
    layer = table.column("layer_idx").to_numpy()
    p_w = within_layer_percentiles(np.abs(table.column("w0").to_numpy().astype(np.float64)), layer)
    p_s = within_layer_percentiles(table.column("survived").to_numpy().astype(np.float64), layer)
    curve = magnitude_curve(p_w, p_s, np.asarray(train_rows), bins)
    base = curve[_bin_of(p_w, bins)]
    return SourceLabel(kind, (p_s - base).astype(np.float32), label_record(kind, curve), base)


def label_record(kind: str, curve: np.ndarray | None = None) -> dict[str, Any]:
    """The scorer metadata entry for its label: what ``compose_score`` needs at prune time."""
    if kind == "survival":
        return {"kind": kind}
    if curve is None:
        raise ValueError("a residual_rank label needs its magnitude curve")
    return {"kind": kind, "magnitude_curve": [round(float(v), 6) for v in curve]}


def read_label_record(meta: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The label entry of a scorer's metadata; a scorer saved without one regressed survival (the paper)."""
    record = meta.get(LABEL_KEY) or {"kind": "survival"}
    kind = record.get("kind") if isinstance(record, Mapping) else None
    if kind not in LABELS:
        raise DataError(f"{where}: unknown label {kind!r} in the scorer metadata; allowed: {', '.join(LABELS)}")
    if kind == "residual_rank":
        curve = record.get("magnitude_curve")
        if not isinstance(curve, list) or len(curve) < 2 or not all(isinstance(v, (int, float)) for v in curve):
            raise DataError(f"{where}: a residual_rank scorer needs a magnitude_curve of >= 2 numbers in its metadata")
    return dict(record)


def layer_percentiles(values: Tensor) -> Tensor:
    """Within-layer percentiles of ``values`` (any shape, flattened): ``(rank - 0.5) / n``; ties keep a stable
    order (continuous init weights have none in practice)."""
    flat = values.reshape(-1)
    ranks = torch.empty_like(flat, dtype=torch.float64)
    ranks[torch.argsort(flat, stable=True)] = torch.arange(flat.numel(), dtype=torch.float64, device=flat.device)
    return ((ranks + 0.5) / flat.numel()).reshape(values.shape)


def compose_score(predicted: Tensor, w0: Tensor, record: Mapping[str, Any]) -> Tensor:
    """One layer's pruning scores from a scorer's outputs: unchanged for ``survival``; ``c(p_w) + predicted`` for
    ``residual_rank`` (module docstring), with ``p_w`` the |w0| percentiles of this layer."""
    if record.get("kind", "survival") == "survival":
        return predicted
    if predicted.shape != w0.shape:
        raise ValueError(f"scores of shape {tuple(predicted.shape)} for a weight of shape {tuple(w0.shape)}")
    curve = torch.tensor(record["magnitude_curve"], dtype=torch.float64)
    bins = curve.numel()
    p_w = layer_percentiles(w0.detach().abs().cpu().to(torch.float64))
    base = curve[torch.clamp((p_w * bins).long(), max=bins - 1)]
    return (base + predicted.detach().cpu().to(torch.float64)).to(predicted.dtype)
