"""Exploratory controls: does a selection change help every method, or only the one under test?

Per target and sparsity, every *variant* (``transfer.variants``: ``MethodRecord.variant_of``) minus its base method,
and every *modifier* run (``magnitude+shuffle``) minus its method, paired by seed and by source where both carry one
and analysed at the unit the design makes independent (:mod:`autos.report.design`), with the t-interval and the
two-sided paired t-test's p, **unadjusted**: these are exploratory, outside the verdict table and its correction.
Reading ``autos_densities − autos`` next to ``magnitude_floor − magnitude`` shows whether a layer floor helps any
method or only AutoS; ``autos+shuffle − autos`` next to ``magnitude+shuffle − magnitude`` whether a within-layer
shuffle hurts each the same."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from autos.report.aggregate import DENSE, TargetResults, label_order, pruned_sparsities
from autos.report.design import Estimate, estimate, pair_units, unit_values
from autos.report.names import MethodRecords
from autos.report.stats import CONFIDENCE, level_text
from autos.report.tables import MISSING, Table, format_signed, format_sparsity

VARIANT, MODIFIER = "variant", "modifier"
CONTROLS_NAME = "controls.csv"
CONTROL_COLUMNS = ["target", "sparsity", "label", "reference", "kind", "design", "unit", "n", "diff_mean_pp",
                   "ci_low_pp", "ci_high_pp", "p_unadjusted", "label_mean_pct", "reference_mean_pct"]


@dataclass(frozen=True)
class Control:
    """``label - reference`` at one target x sparsity: a variant minus its base, a modifier run minus its method."""

    target: str
    sparsity: float
    label: str
    reference: str
    kind: str  # VARIANT or MODIFIER
    estimate: Estimate


def control_pairs(results: TargetResults, records: MethodRecords) -> list[tuple[str, str, str]]:
    """``(label, reference, kind)`` for every variant and modifier run whose reference ran too, in the tables'
    order."""
    labels = label_order(results.rows)
    present = set(labels)
    modifiers = {r.label: r.method for r in results.rows if r.modifier}
    pairs = []
    for label in labels:
        if label == DENSE:
            continue
        if label in modifiers:
            if modifiers[label] in present:
                pairs.append((label, modifiers[label], MODIFIER))
            continue
        record = records.get(label)
        base = record.variant_of if record is not None else None
        if base is not None and base in present:
            pairs.append((label, base, VARIANT))
    return pairs


def target_controls(results: TargetResults, records: MethodRecords,
                    confidence: float = CONFIDENCE) -> list[Control]:
    """Every control of one target at every sparsity both sides ran (module docstring)."""
    units = unit_values(results.rows)
    controls = []
    for label, reference, kind in control_pairs(results, records):
        for sparsity in pruned_sparsities(results.rows):
            pairs = pair_units(units.get((label, sparsity), {}), units.get((reference, sparsity), {}))
            found = estimate(pairs, confidence=confidence, margin=math.inf)
            if found is not None:
                controls.append(Control(results.target, sparsity, label, reference, kind, found))
    return controls


def format_control(found: Estimate | None) -> str:
    """``+1.2 [−0.5, 2.9] (n=3 pairs)``; one unit: ``+1.2 (n=1 pairs)``."""
    if found is None:
        return MISSING
    if not found.has_interval:
        return f"{format_signed(found.mean)} (n={found.n} {found.unit})"
    low, high = (f"{v * 100:.1f}".replace("-", "\u2212") for v in (found.ci_low, found.ci_high))
    return f"{format_signed(found.mean)} [{low}, {high}] (n={found.n} {found.unit})"


def controls_table(controls: list[Control]) -> Table | None:
    """Rows ``label − reference``, columns the sparsities; None without a control."""
    if not controls:
        return None
    sparsities = sorted({c.sparsity for c in controls})
    by_key = {(c.label, c.sparsity): c for c in controls}
    names = list(dict.fromkeys((c.label, c.reference) for c in controls))
    body = [[f"{label} \u2212 {reference}"]
            + [format_control(by_key[(label, s)].estimate if (label, s) in by_key else None) for s in sparsities]
            for label, reference in names]
    return Table(["control"] + [format_sparsity(s) for s in sparsities], body)


def controls_caption(confidence: float = CONFIDENCE) -> str:
    return (f"**Exploratory controls** (unadjusted, not part of the verdict table): each variant minus its base "
            f"method and each modifier run minus its method, percentage points, {level_text(confidence)} t-interval "
            "over the unit the design makes independent (pairs, or sources when sources are crossed with seeds)")


def _pct(value: float) -> float:
    return math.nan if math.isnan(value) else round(100.0 * value, 4)


def controls_frame(results: Mapping[str, TargetResults], records: MethodRecords,
                   confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every target's controls, one line each (percent and percentage points, the p-value unadjusted)."""
    lines = []
    for found in results.values():
        for c in target_controls(found, records, confidence):
            d = c.estimate
            lines.append({"target": c.target, "sparsity": c.sparsity, "label": c.label, "reference": c.reference,
                          "kind": c.kind, "design": d.design, "unit": d.unit, "n": d.n,
                          "diff_mean_pp": _pct(d.mean), "ci_low_pp": _pct(d.ci_low), "ci_high_pp": _pct(d.ci_high),
                          "p_unadjusted": d.p, "label_mean_pct": _pct(d.label_mean),
                          "reference_mean_pct": _pct(d.reference_mean)})
    return pd.DataFrame(lines, columns=CONTROL_COLUMNS)
