"""Comparisons with uncertainty: paired differences to AutoS over seeds, their t-intervals, and one verdict per
target x sparsity against the best single-shot baseline.

**Pairing.** The same seed is the same initialisation and the same data order for every method, so a method is
compared with AutoS seed by seed: ``diff_s = acc(method, s) - acc(autos, s)``, over the seeds both ran (``n``; a
seed only one of them ran is left out). The mean difference gets a 95% confidence interval from Student's t with
``n - 1`` degrees of freedom (``scipy.stats.t``, a declared dependency): ``mean ± t(0.975, n-1) * sd / sqrt(n)``,
``sd`` the sample std (ddof=1) of the differences. One seed gives a difference but no interval and no verdict.

**Verdict.** At each target x sparsity where AutoS ran, the *best single-shot baseline* is the one with the highest
mean final-epoch accuracy over its seeds. *Single-shot baselines* are the methods of kind ``pai`` (pruned at
initialisation, no training before the selection) other than AutoS, without a modifier, never the dense run. The
verdict compares AutoS with it, as ``AutoS - baseline`` (negative: AutoS is worse): *indistinguishable* when the
95% CI contains 0, *better* / *worse* otherwise; *no verdict* with fewer than two paired seeds. Picking the best of
several baselines by its mean favours the baseline a little (the winner's curse), so "worse" is the conservative
direction and "better" is the claim to check with more seeds.

**Method kinds** come from the method registry's records (``autos.registry.MethodRecord.kind``), which the report
stage passes in (``autos.pruners.PRUNERS.records()``: the report itself imports no torch, so not the registry). A
method without a record (old results, a removed method) takes the kind its results recorded
(``results.json``'s ``methods[name].kind``); a method of unknown kind is never a baseline.

Numbers are fractions here (as in the rows); :func:`verdict_record` writes percent (as ``metrics/transfer_*.json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autos.report.aggregate import DENSE, TargetResults, cell_stats, label_order, metric_value, pruned_sparsities
from autos.report.names import MethodRecords
from autos.sweep.records import RunRow

REFERENCE = "autos"
SINGLE_SHOT_KIND = "pai"
CONFIDENCE = 0.95
BETTER, WORSE, INDISTINGUISHABLE, NO_VERDICT, NO_BASELINE = (
    "better", "worse", "indistinguishable", "no verdict", "no baseline")


# --------------------------------------------------------------------------- statistics


def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile (``scipy.stats.t.ppf``), e.g. ``t_quantile(0.975, 2) = 4.3027``."""
    from scipy.stats import t

    return float(t.ppf(probability, dof))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1); std is nan for fewer than two values, both nan for none."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The two-sided t confidence interval of the mean of ``values``; (nan, nan) for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, std = mean_std(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


# --------------------------------------------------------------------------- method kinds


def recorded_kind(results: TargetResults, method: str) -> str | None:
    """The kind ``results.json`` recorded for ``method`` (``methods[method].kind``), if any."""
    info = (results.methods or {}).get(method)
    kind = info.get("kind") if isinstance(info, Mapping) else None
    return str(kind) if kind else None


def method_kinds(results: TargetResults, records: MethodRecords) -> dict[str, str]:
    """{method: kind} for every method in the results: ``dense`` for the dense run, the record's kind, else the
    kind the results recorded (module docstring); methods of unknown kind left out."""
    kinds: dict[str, str] = {}
    for method in dict.fromkeys(r.method for r in results.rows):
        record = records.get(method)
        kind = DENSE if method == DENSE else record.kind if record is not None else recorded_kind(results, method)
        if kind:
            kinds[method] = kind
    return kinds


def single_shot_baselines(results: TargetResults, records: MethodRecords) -> list[str]:
    """The labels of the single-shot baselines present, in the tables' order (module docstring)."""
    kinds = method_kinds(results, records)
    unmodified = {r.method for r in results.rows if not r.modifier}
    return [label for label in label_order(results.rows)
            if label in unmodified and label not in (DENSE, REFERENCE) and kinds.get(label) == SINGLE_SHOT_KIND]


# --------------------------------------------------------------------------- paired differences


SeedValues = dict[tuple[str, float], dict[int, float]]


def seed_values(rows: Iterable[RunRow], metric: str = "final_test_acc") -> SeedValues:
    """{(label, sparsity): {seed: value}}; a seed recorded twice counts as the mean of its values; nan left out."""
    groups: dict[tuple[str, float], dict[int, list[float]]] = {}
    for row in rows:
        value = metric_value(row, metric)
        if math.isnan(value):
            continue
        groups.setdefault((row.label, row.sparsity), {}).setdefault(row.seed, []).append(value)
    return {key: {seed: sum(v) / len(v) for seed, v in seeds.items()} for key, seeds in groups.items()}


@dataclass(frozen=True)
class PairedDiff:
    """``label - reference`` over the seeds both ran at one sparsity (fractions)."""

    label: str
    reference: str
    sparsity: float
    seeds: tuple[int, ...]
    mean: float  # mean of the per-seed differences
    std: float  # their sample std; nan for one seed
    ci_low: float  # the 95% t-interval of the mean; nan for one seed
    ci_high: float
    label_mean: float  # each side over the paired seeds (so label_mean - reference_mean == mean)
    label_std: float
    reference_mean: float
    reference_std: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.ci_low)

    def flipped(self) -> PairedDiff:
        """``reference - label``: the same pairs, signs and sides swapped."""
        return PairedDiff(label=self.reference, reference=self.label, sparsity=self.sparsity, seeds=self.seeds,
                          mean=-self.mean, std=self.std, ci_low=-self.ci_high, ci_high=-self.ci_low,
                          label_mean=self.reference_mean, label_std=self.reference_std,
                          reference_mean=self.label_mean, reference_std=self.label_std)


def paired_diff(values: Mapping[tuple[str, float], Mapping[int, float]], label: str, reference: str,
                sparsity: float) -> PairedDiff | None:
    """``label - reference`` at ``sparsity`` over their common seeds; None when they share no seed."""
    mine, theirs = values.get((label, sparsity), {}), values.get((reference, sparsity), {})
    seeds = tuple(sorted(set(mine) & set(theirs)))
    if not seeds:
        return None
    diffs = [mine[s] - theirs[s] for s in seeds]
    mean, std = mean_std(diffs)
    low, high = t_interval(diffs)
    label_mean, label_std = mean_std([mine[s] for s in seeds])
    ref_mean, ref_std = mean_std([theirs[s] for s in seeds])
    return PairedDiff(label=label, reference=reference, sparsity=sparsity, seeds=seeds, mean=mean, std=std,
                      ci_low=low, ci_high=high, label_mean=label_mean, label_std=label_std,
                      reference_mean=ref_mean, reference_std=ref_std)


def paired_differences(rows: Sequence[RunRow], reference: str = REFERENCE,
                       metric: str = "final_test_acc") -> list[PairedDiff]:
    """Every pruned label (modified variants included, AutoS's own too) minus ``reference`` at each sparsity both
    ran, in the tables' order; empty when ``reference`` did not run."""
    values = seed_values(rows, metric)
    if not any(label == reference for label, _ in values):
        return []
    diffs = []
    for label in label_order(rows):
        if label in (DENSE, reference):
            continue
        for sparsity in pruned_sparsities(rows):
            diff = paired_diff(values, label, reference, sparsity)
            if diff is not None:
                diffs.append(diff)
    return diffs


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """AutoS against the best single-shot baseline at one target x sparsity."""

    target: str
    sparsity: float
    verdict: str  # BETTER, WORSE, INDISTINGUISHABLE, NO_VERDICT (n < 2) or NO_BASELINE
    autos_mean: float  # over all of AutoS's seeds (the table's cell)
    autos_std: float
    autos_n: int
    baseline: str | None  # the best single-shot baseline's label
    diff: PairedDiff | None  # AutoS - baseline over the paired seeds
    collapsed: bool  # a seed of AutoS or of the baseline collapsed


def judge(diff: PairedDiff | None) -> str:
    """better / worse / indistinguishable from ``diff`` = AutoS - baseline; no verdict without two paired seeds."""
    if diff is None or not diff.has_interval:
        return NO_VERDICT
    if diff.ci_low <= 0.0 <= diff.ci_high:
        return INDISTINGUISHABLE
    return BETTER if diff.mean > 0 else WORSE


def target_verdicts(results: TargetResults, records: MethodRecords, reference: str = REFERENCE,
                    metric: str = "final_test_acc") -> list[Verdict]:
    """One :class:`Verdict` per sparsity at which ``reference`` ran; empty when it did not run. ``records``: the
    method registry's records (the baselines' kinds)."""
    target, rows = results.target, results.rows
    cells = cell_stats(rows, metric)
    values = seed_values(rows, metric)
    baselines = single_shot_baselines(results, records)
    verdicts = []
    for sparsity in pruned_sparsities(rows):
        mine = cells.get((reference, sparsity))
        if mine is None or mine.n == 0:
            continue
        candidates = [(cells[(b, sparsity)].mean, -i, b) for i, b in enumerate(baselines)
                      if (b, sparsity) in cells and cells[(b, sparsity)].n > 0]
        best = max(candidates)[2] if candidates else None  # ties: the first in the tables' order
        diff = paired_diff(values, reference, best, sparsity) if best is not None else None
        collapsed = any(r.is_collapsed for r in rows if r.sparsity == sparsity and r.label in (reference, best))
        verdicts.append(Verdict(target=target, sparsity=sparsity,
                                verdict=judge(diff) if best is not None else NO_BASELINE,
                                autos_mean=mine.mean, autos_std=mine.std, autos_n=mine.n, baseline=best, diff=diff,
                                collapsed=collapsed))
    return verdicts


def study_verdicts(results: Mapping[str, TargetResults], records: MethodRecords,
                   reference: str = REFERENCE) -> list[Verdict]:
    return [v for target in results.values() for v in target_verdicts(target, records, reference)]


def _pct(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * value, digits)


def verdict_key(verdict: Verdict) -> str:
    """``<target>@<sparsity>``, as ``metrics/transfer_*.json`` keys cells (``label@0.9``)."""
    return f"{verdict.target}@{verdict.sparsity:g}"


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """A flat, JSON-safe record: accuracies and differences in percent (2 decimals), None where undefined.

    ``autos_mean`` / ``baseline_mean`` are over the paired seeds when there are any (so ``diff`` is their
    difference), else AutoS's mean over its seeds; ``diff`` = AutoS - best baseline, with its 95% CI and ``n``."""
    d = verdict.diff
    return {
        "target": verdict.target, "sparsity": verdict.sparsity,
        "autos_mean": _pct(d.label_mean if d else verdict.autos_mean),
        "best_baseline": verdict.baseline,
        "baseline_mean": _pct(d.reference_mean if d else None),
        "diff": _pct(d.mean if d else None), "ci_low": _pct(d.ci_low if d else None),
        "ci_high": _pct(d.ci_high if d else None), "n": d.n if d else 0, "verdict": verdict.verdict,
    }


def verdicts_json(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """``{"<target>@<sparsity>": verdict_record}``: keyed, not a list, so ``dvc metrics show/diff`` shows one
    column per number (DVC flattens dicts, not lists)."""
    return {verdict_key(v): verdict_record(v) for v in verdicts}
