"""The unit a comparison is made on, from the study's design: target seeds, source models, or both.

A run is one (target seed ``t``, source ``s``) cell: ``s`` is the independent source run whose AutoS scorer the
method read (``RunRow.source``), None for methods that read none. A comparison ``A - B`` pairs A's runs with B's
(:func:`pair_units`): by (seed, source) when both carry sources; by seed otherwise (a side without sources is
the same run whatever the source, so it meets each of the other side's sources at that seed; a baseline that
carries sources against a method that does not is averaged over them per seed). The differences ``d(s, t)`` are then
analysed at the level that makes them independent (:func:`estimate`):

- no source (:data:`SEEDS`): one difference per target seed, the t-interval over them (n = seed pairs);
- one source (:data:`ONE_SOURCE`): the same, over target seeds; the interval does **not** cover source variance;
- several sources, each met by one target seed (:data:`PAIRED`): the (source, seed) pairs are independent draws,
  the t-interval over them (n = pairs);
- several sources crossed with target seeds (:data:`CROSSED`): ``d`` averaged over target seeds within each
  source, the t-interval over the per-source means (n = sources): a two-level design analysed at its top level,
  conservative (it ignores what the seeds add within a source).

The same unit gives the two-sided paired t-test's p-value and the TOST equivalence test. Next to each estimate:
the between-source spread (sd of the per-source means of A) and the within-source spread (pooled sd of A over
target seeds within a source), each nan with a reason where it cannot be estimated."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autos.report.aggregate import metric_value
from autos.report.stats import Tost, mean_std, pooled_sd, t_interval, t_test_p, tost
from autos.sweep.records import RunRow

UnitKey = tuple[int, "int | None"]  # (target seed, source or None)
UnitValues = dict[UnitKey, float]

SEEDS, ONE_SOURCE, PAIRED, CROSSED = "seeds", "one source", "paired", "crossed"
DESIGN_TEXT = {
    SEEDS: "paired by target seed (no source model involved)",
    ONE_SOURCE: "one source model, paired by target seed: the interval does not cover source variance",
    PAIRED: "paired design: each source model met one target seed, so the (source, seed) pairs are independent "
            "draws",
    CROSSED: "crossed design: the difference averaged over target seeds within each source model, the interval "
             "over the per-source means (two levels, analysed at the top one: conservative)",
}
UNIT_TEXT = {SEEDS: "seed pairs", ONE_SOURCE: "seed pairs", PAIRED: "(source, seed) pairs", CROSSED: "sources"}
NO_SOURCE = "no source model involved"


def unit_values(rows: Iterable[RunRow], metric: str = "final_test_acc") -> dict[tuple[str, float], UnitValues]:
    """{(label, sparsity): {(seed, source): value}}; a unit recorded twice counts as the mean of its values; nan
    (an unset metric) left out."""
    groups: dict[tuple[str, float], dict[UnitKey, list[float]]] = {}
    for row in rows:
        value = metric_value(row, metric)
        if not math.isnan(value):
            groups.setdefault((row.label, row.sparsity), {}).setdefault((row.seed, row.source), []).append(value)
    return {key: {unit: sum(v) / len(v) for unit, v in units.items()} for key, units in groups.items()}


def _by_seed(values: Mapping[UnitKey, float]) -> dict[int, float]:
    seeds: dict[int, list[float]] = {}
    for (seed, _), value in values.items():
        seeds.setdefault(seed, []).append(value)
    return {seed: sum(v) / len(v) for seed, v in seeds.items()}


def _sourced(values: Mapping[UnitKey, float]) -> bool:
    return any(source is not None for _, source in values)


def pair_units(mine: Mapping[UnitKey, float], theirs: Mapping[UnitKey, float]) -> dict[UnitKey, tuple[float, float]]:
    """``{unit: (mine, theirs)}`` over the units both ran, sorted. Both sides carry sources: matched by (seed,
    source). Only ``mine`` does: each of its (seed, source) units against ``theirs`` at that seed. Only ``theirs``
    does (or neither): by seed, ``theirs`` averaged over its sources at each seed."""
    if _sourced(mine) and _sourced(theirs):
        keys = sorted(set(mine) & set(theirs), key=_unit_order)
        return {k: (mine[k], theirs[k]) for k in keys}
    other = _by_seed(theirs)
    if _sourced(mine):
        return {k: (mine[k], other[k[0]]) for k in sorted(mine, key=_unit_order) if k[0] in other}
    own = _by_seed(mine)
    return {(seed, None): (own[seed], other[seed]) for seed in sorted(set(own) & set(other))}


def _unit_order(unit: UnitKey) -> tuple[int, int]:
    return unit[0], -1 if unit[1] is None else unit[1]


@dataclass(frozen=True)
class Estimate:
    """``A - B`` over the paired units, analysed at the level of :attr:`design` (module docstring); fractions."""

    design: str  # SEEDS, ONE_SOURCE, PAIRED or CROSSED
    values: tuple[float, ...]  # the independent differences the interval and the tests are over
    seeds: tuple[int, ...]  # the target seeds paired
    sources: tuple[int, ...]  # the sources paired (none for SEEDS)
    mean: float  # mean of ``values``
    std: float  # their sample std; nan for one
    ci_low: float  # the ``confidence`` t-interval of the mean; nan for one value
    ci_high: float
    confidence: float
    p: float  # two-sided paired t-test on the same values; nan for one
    tost: Tost  # equivalence within the margin, on the same values
    label_mean: float  # A and B over the paired units (B once per unit)
    label_std: float
    reference_mean: float
    reference_std: float
    between_sd: float  # sd of A's per-source means; nan (with between_note) when not estimable
    within_sd: float  # pooled sd of A over target seeds within a source; nan (with within_note) when not estimable
    between_note: str = ""
    within_note: str = ""

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def unit(self) -> str:
        """``sources`` (crossed design) or ``pairs`` (every other design): what n counts."""
        return "sources" if self.design == CROSSED else "pairs"

    @property
    def unit_text(self) -> str:
        return UNIT_TEXT[self.design]

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.ci_low)


def _design(groups: Mapping[int | None, list[UnitKey]]) -> str:
    sources = [s for s in groups if s is not None]
    if not sources:
        return SEEDS
    if len(groups) == 1:
        return ONE_SOURCE
    return PAIRED if all(len(units) == 1 for units in groups.values()) else CROSSED


def _spreads(design: str, groups: Mapping[int | None, list[UnitKey]],
             mine: Mapping[UnitKey, float]) -> tuple[float, str, float, str]:
    """(between sd, why not, within sd, why not) of A's values over the paired units."""
    per_source = [[mine[u] for u in units] for units in groups.values()]
    if design == SEEDS:
        return math.nan, NO_SOURCE, math.nan, NO_SOURCE
    between, between_note = math.nan, "one source model: source variance is not estimable"
    if design != ONE_SOURCE:
        between, between_note = mean_std([sum(v) / len(v) for v in per_source])[1], ""
    within, within_note = pooled_sd(per_source), ""
    if math.isnan(within):
        within_note = ("each source model met one target seed" if design == PAIRED else
                       "one target seed per source model")
    return between, between_note, within, within_note


def estimate(pairs: Mapping[UnitKey, tuple[float, float]], *, confidence: float,
             margin: float) -> Estimate | None:
    """The estimate of ``A - B`` from :func:`pair_units`' pairs (module docstring); ``margin``: the equivalence
    margin in the values' unit (fractions), tested at ``alpha = 1 - confidence``. None without a pair."""
    if not pairs:
        return None
    groups: dict[int | None, list[UnitKey]] = {}
    for unit in pairs:
        groups.setdefault(unit[1], []).append(unit)
    design = _design(groups)
    diffs = {unit: a - b for unit, (a, b) in pairs.items()}
    if design == CROSSED:
        values = [sum(diffs[u] for u in units) / len(units) for units in groups.values()]
    else:
        values = list(diffs.values())
    mean, std = mean_std(values)
    low, high = t_interval(values, confidence)
    mine = {unit: a for unit, (a, _) in pairs.items()}
    label_mean, label_std = mean_std(list(mine.values()))
    ref_mean, ref_std = mean_std(list(_by_seed({u: b for u, (_, b) in pairs.items()}).values()))
    between, between_note, within, within_note = _spreads(design, groups, mine)
    return Estimate(design=design, values=tuple(values), seeds=tuple(sorted({u[0] for u in pairs})),
                    sources=tuple(sorted(s for s in groups if s is not None)), mean=mean, std=std, ci_low=low,
                    ci_high=high, confidence=confidence, p=t_test_p(values),
                    tost=tost(values, margin, 1.0 - confidence), label_mean=label_mean, label_std=label_std,
                    reference_mean=ref_mean, reference_std=ref_std, between_sd=between, within_sd=within,
                    between_note=between_note, within_note=within_note)
