"""Paired differences to AutoS over seeds and their t-intervals (the descriptive table of every target page), and
what a method is: its kind and whether it is a single-shot baseline. The verdicts themselves are
:mod:`autos.report.verdicts`; the statistics :mod:`autos.report.stats`.

**Pairing.** The same seed is the same initialisation and the same data order for every method, so a method is
compared with AutoS seed by seed: ``diff_s = acc(method, s) - acc(autos, s)``, over the seeds both ran (``n``; a
seed only one of them ran is left out; a method that read several source models counts as its mean over them at
that seed). The mean difference gets a 95% confidence interval from Student's t with ``n - 1`` degrees of freedom
(``scipy.stats.t``, a declared dependency): ``mean ± t(0.975, n-1) * sd / sqrt(n)``, ``sd`` the sample std (ddof=1)
of the differences. One seed gives a difference but no interval.

**Single-shot baselines** are the methods of kind ``pai`` (pruned at initialisation, no training before the
selection) that are not under test, not a variant of a method under test (``MethodRecord.variant_of``), without a
modifier, never the dense run.

**Method kinds** come from the method registry's records (``autos.registry.MethodRecord.kind``), which the report
stage passes in (``autos.study.method_records(cfg)``, variants included, over ``autos.pruners.PRUNERS.records()``:
the report itself imports no torch, so not the registry). A method without a record (old results, a removed method)
takes the kind its results recorded (``results.json``'s ``methods[name].kind``); a method of unknown kind is never
a baseline.

Numbers are fractions here (as in the rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from autos.report.aggregate import DENSE, TargetResults, label_order, metric_value, pruned_sparsities
from autos.report.names import MethodRecords
from autos.report.stats import mean_std, t_interval
from autos.sweep.records import RunRow

REFERENCE = "autos"
SINGLE_SHOT_KIND = "pai"


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


def single_shot_baselines(results: TargetResults, records: MethodRecords,
                          under_test: Sequence[str] = (REFERENCE,)) -> list[str]:
    """The labels of the single-shot baselines present, in the tables' order (module docstring): kind ``pai``, not
    in ``under_test``, not a variant of a method in it, no modifier, not dense."""
    kinds = method_kinds(results, records)
    unmodified = {r.method for r in results.rows if not r.modifier}

    def variant_under_test(label: str) -> bool:
        record = records.get(label)
        return record is not None and record.variant_of is not None and record.variant_of in under_test

    return [label for label in label_order(results.rows)
            if label in unmodified and label != DENSE and label not in under_test
            and kinds.get(label) == SINGLE_SHOT_KIND and not variant_under_test(label)]


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
