"""The verdict table: every method under test against the best single-shot baseline, per target x sparsity.

**What is compared** is declared in params before the run (``report.under_test``, :class:`VerdictSettings`): for
each target, sparsity and method M under test that ran there, the *best single-shot baseline* B
(:func:`autos.report.compare.single_shot_baselines`) is the one with the highest mean **validation** accuracy over
its runs (``final_val_acc``: training images held out of the target, ``transfer.validation_per_class``), so that no
test accuracy chooses what the test set then judges. When the rows carry no validation accuracy the choice falls back
to the test mean, and the verdict says so ("chosen on the test set: no validation split was held out"): that choice
favours the baseline a little (the winner's curse).

**The difference** ``d = M - B`` in final-epoch test accuracy is paired and analysed at the level the design makes
independent (:mod:`autos.report.design`: target seeds; one source; (source, seed) pairs; per-source means when
sources are crossed with seeds). Its ``confidence`` t-interval, a two-sided paired t-test on the same unit, and the
p-values Holm-adjusted across the whole table (every target x sparsity x method under test) when
``report.correction`` is ``holm``.

**The verdict**: *better* / *worse* only when the adjusted p is below ``alpha = 1 - confidence``; otherwise
*equivalent* when the TOST at ``±equivalence_margin`` percentage points succeeds (the ``1 - 2 alpha`` interval
inside the margin), else *no significant difference*; *no verdict* with fewer than two units, *no baseline* when no
single-shot baseline ran. The intervals are per comparison (unadjusted): after the correction an interval that
excludes 0 may still read "no significant difference".

Numbers are fractions here; :func:`verdict_record` writes percent and percentage points."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autos.report.aggregate import TargetResults, cell_stats, pruned_sparsities
from autos.report.compare import REFERENCE, single_shot_baselines
from autos.report.design import Estimate, estimate, pair_units, unit_values
from autos.report.names import MethodRecords
from autos.report.stats import holm

BETTER, WORSE, EQUIVALENT, NO_DIFFERENCE, NO_VERDICT, NO_BASELINE = (
    "better", "worse", "equivalent", "no significant difference", "no verdict", "no baseline")
VALIDATION, TEST = "validation", "test"
TEST_NAME = "two-sided paired t-test"
CHOSEN = {VALIDATION: "chosen on the validation split",
          "none": "chosen on the test set: no validation split was held out",
          "partial": "chosen on the test set: not every candidate recorded a validation accuracy"}


@dataclass(frozen=True)
class VerdictSettings:
    """``params.yaml``'s ``report`` section as the report reads it (``autos.config.report.ReportConfig``)."""

    under_test: tuple[str, ...] = (REFERENCE,)
    confidence: float = 0.95
    correction: str = "holm"  # or "none"
    equivalence_margin: float = 2.0  # percentage points

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @classmethod
    def of(cls, config: Any) -> VerdictSettings:
        """From any object with the four attributes (``cfg.report``)."""
        return cls(under_test=tuple(config.under_test), confidence=float(config.confidence),
                   correction=str(config.correction), equivalence_margin=float(config.equivalence_margin))


@dataclass(frozen=True)
class Choice:
    """The best single-shot baseline at one sparsity and the split it was chosen on."""

    baseline: str | None
    split: str | None  # VALIDATION or TEST; None without a baseline
    note: str  # CHOSEN[...], '' without a baseline


def choose_baseline(results: TargetResults, candidates: Sequence[str], sparsity: float) -> Choice:
    """The candidate with the highest mean validation accuracy at ``sparsity`` when every candidate that ran there
    recorded one, else the highest mean test accuracy; ties: the first in ``candidates`` (the tables' order)."""
    test = cell_stats(results.rows, "final_test_acc")
    present = [b for b in candidates if (b, sparsity) in test and test[(b, sparsity)].n > 0]
    if not present:
        return Choice(None, None, "")
    val = cell_stats(results.rows, "final_val_acc")
    recorded = [b for b in present if (b, sparsity) in val and val[(b, sparsity)].n > 0]
    on_val = len(recorded) == len(present)
    cells = val if on_val else test
    best = max((cells[(b, sparsity)].mean, -i, b) for i, b in enumerate(present))[2]
    note = CHOSEN[VALIDATION if on_val else "partial" if recorded else "none"]
    return Choice(best, VALIDATION if on_val else TEST, note)


@dataclass(frozen=True)
class Verdict:
    """A method under test against the best single-shot baseline at one target x sparsity."""

    target: str
    sparsity: float
    method: str  # the method under test
    verdict: str  # BETTER, WORSE, EQUIVALENT, NO_DIFFERENCE, NO_VERDICT or NO_BASELINE
    method_mean: float  # over all of the method's runs (the table's cell)
    method_std: float
    method_n: int
    choice: Choice
    estimate: Estimate | None  # method - baseline over the paired units
    p_adjusted: float  # nan without a test
    collapsed: bool  # a run of the method or of the baseline collapsed
    settings: VerdictSettings

    @property
    def baseline(self) -> str | None:
        return self.choice.baseline


def judge(found: Estimate | None, p_adjusted: float, settings: VerdictSettings) -> str:
    """The verdict's word from the estimate and its adjusted p (module docstring)."""
    if found is None or not found.has_interval or math.isnan(p_adjusted):
        return NO_VERDICT
    if p_adjusted < settings.alpha:
        return BETTER if found.mean > 0 else WORSE
    return EQUIVALENT if found.tost.equivalent else NO_DIFFERENCE


def _target_verdicts(results: TargetResults, records: MethodRecords, settings: VerdictSettings) -> list[Verdict]:
    """The target's verdicts before the correction (``p_adjusted`` = the raw p)."""
    rows = results.rows
    cells = cell_stats(rows)
    units = unit_values(rows)
    candidates = single_shot_baselines(results, records, settings.under_test)
    verdicts = []
    for sparsity in pruned_sparsities(rows):
        choice = choose_baseline(results, candidates, sparsity)
        for method in settings.under_test:
            mine = cells.get((method, sparsity))
            if mine is None or mine.n == 0:
                continue
            found = None
            if choice.baseline is not None:
                pairs = pair_units(units.get((method, sparsity), {}), units.get((choice.baseline, sparsity), {}))
                found = estimate(pairs, confidence=settings.confidence, margin=settings.equivalence_margin / 100)
            collapsed = any(r.is_collapsed for r in rows
                            if r.sparsity == sparsity and r.label in (method, choice.baseline))
            p = found.p if found is not None else math.nan
            verdicts.append(Verdict(target=results.target, sparsity=sparsity, method=method, verdict=NO_VERDICT,
                                    method_mean=mine.mean, method_std=mine.std, method_n=mine.n, choice=choice,
                                    estimate=found, p_adjusted=p, collapsed=collapsed, settings=settings))
    return verdicts


def study_verdicts(results: Mapping[str, TargetResults], records: MethodRecords,
                   settings: VerdictSettings | None = None) -> list[Verdict]:
    """Every target's verdicts (targets, then sparsities, then ``under_test``'s order), the p-values adjusted
    across all of them (Holm, unless ``settings.correction`` is ``none``)."""
    settings = settings or VerdictSettings()
    raw = [v for target in results.values() for v in _target_verdicts(target, records, settings)]
    ps = [v.p_adjusted for v in raw]
    adjusted = holm(ps) if settings.correction == "holm" else ps
    return [dataclasses.replace(v, p_adjusted=p, verdict=NO_BASELINE if v.baseline is None else
                                judge(v.estimate, p, settings)) for v, p in zip(raw, adjusted, strict=True)]


def target_verdicts(results: TargetResults, records: MethodRecords,
                    settings: VerdictSettings | None = None) -> list[Verdict]:
    """One target's verdicts as a table of their own (the correction over this target only); the report's pages
    use :func:`study_verdicts`' instead."""
    return study_verdicts({results.target: results}, records, settings)


# --------------------------------------------------------------------------- records for JSON and DVC


def _pct(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * value, digits)


def _p(value: float) -> float | None:
    return None if math.isnan(value) else float(f"{value:.4g}")


def verdict_key(verdict: Verdict) -> str:
    """``<target>@<sparsity>@<method>``."""
    return f"{verdict.target}@{verdict.sparsity:g}@{verdict.method}"


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """A flat, JSON-safe record: accuracies in percent, differences in percentage points (2 decimals), p-values to
    4 significant digits, None where undefined. ``method_mean`` / ``baseline_mean`` are over the paired units when
    there are any (else the method's mean over its runs); ``diff`` = method - baseline, its interval at
    ``confidence``, the TOST interval at ``1 - 2 (1 - confidence)``; ``n`` counts ``unit`` (pairs or sources)."""
    d, s = verdict.estimate, verdict.settings
    return {
        "target": verdict.target, "sparsity": verdict.sparsity, "method": verdict.method,
        "best_baseline": verdict.baseline, "baseline_chosen_on": verdict.choice.split,
        "method_mean": _pct(d.label_mean if d else verdict.method_mean),
        "baseline_mean": _pct(d.reference_mean if d else None),
        "diff": _pct(d.mean if d else None), "ci_low": _pct(d.ci_low if d else None),
        "ci_high": _pct(d.ci_high if d else None), "confidence": s.confidence,
        "test": TEST_NAME, "p": _p(d.p) if d else None, "p_adjusted": _p(verdict.p_adjusted),
        "correction": s.correction, "unit": d.unit if d else None, "n": d.n if d else 0,
        "design": d.design if d else None, "sources": len(d.sources) if d else 0,
        "between_source_sd": _pct(d.between_sd if d else None),
        "between_source_sd_note": (d.between_note or None) if d else None,
        "within_source_sd": _pct(d.within_sd if d else None),
        "within_source_sd_note": (d.within_note or None) if d else None,
        "equivalence_margin": s.equivalence_margin,
        "tost_ci_low": _pct(d.tost.ci_low if d else None), "tost_ci_high": _pct(d.tost.ci_high if d else None),
        "verdict": verdict.verdict,
    }


def verdicts_json(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """``{"<target>@<sparsity>@<method>": verdict_record}``: keyed, not a list (DVC flattens dicts, not lists)."""
    return {verdict_key(v): verdict_record(v) for v in verdicts}


METRIC_FIELDS = ("diff", "ci_low", "ci_high", "p_adjusted", "n", "verdict")


def report_metrics(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """``metrics/report.json``: per verdict key only :data:`METRIC_FIELDS`, small and flat for ``dvc metrics``."""
    return {key: {name: record[name] for name in METRIC_FIELDS} for key, record in verdicts_json(verdicts).items()}
