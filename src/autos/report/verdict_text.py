"""The verdicts in words: one sentence per verdict, the verdict table of the summary and the paragraph that states
the statistical model. Wording rules: *better* / *worse* only when the adjusted p is below ``1 - confidence``;
otherwise exactly "no significant difference (95% CI a to b)" or, when the TOST succeeds, "equivalent within ±m
points (TOST, 90% CI a to b)"; never "matches". Differences in percentage points ("points"), one decimal."""

from __future__ import annotations

import math
from collections.abc import Sequence

from autos.report.design import ONE_SOURCE, SEEDS, Estimate
from autos.report.names import MethodRecords, method_name
from autos.report.stats import level_text
from autos.report.tables import COLLAPSE_MARK, MISSING, Table, format_mean, format_signed, format_sparsity
from autos.report.verdicts import (
    BETTER,
    EQUIVALENT,
    NO_BASELINE,
    TEST_NAME,
    WORSE,
    Verdict,
    VerdictSettings,
)

_VERBS = {BETTER: "is better than", WORSE: "is worse than"}
_ONE_UNIT = {"seeds": "one seed", "one source": "one seed", "paired": "one (source, seed) pair",
             "crossed": "one source"}


def points(value: float) -> str:
    """A number of percentage points, one decimal, a true minus sign: ``−7.1``, ``0.5``."""
    return f"{value * 100:.1f}".replace("-", "\u2212")


def interval_text(low: float, high: float) -> str:
    """``−7.1 to 0.5`` (percentage points)."""
    return f"{points(low)} to {points(high)}"


def p_text(p: float) -> str:
    return MISSING if math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_name(settings: VerdictSettings) -> str:
    return "Holm-adjusted p" if settings.correction == "holm" else "p (no correction)"


def spread_text(found: Estimate) -> str:
    """``Spread between sources 1.2 points; within a source n/a (each source model met one target seed).``"""
    if found.design == SEEDS:
        return "Source spreads: n/a (no source model involved)."

    def one(value: float, note: str) -> str:
        return f"{points(value)} points" if not math.isnan(value) else f"n/a ({note})"

    return (f"Spread between sources {one(found.between_sd, found.between_note)}; within a source "
            f"{one(found.within_sd, found.within_note)}.")


def _judged(verdict: Verdict, found: Estimate) -> str:
    """What follows the two means in a sentence with an interval, up to the full stop."""
    s = verdict.settings
    ci = f"{level_text(s.confidence)} CI {interval_text(found.ci_low, found.ci_high)}"
    test = f"{p_name(s)} = {p_text(verdict.p_adjusted)} ({TEST_NAME} over n={found.n} {found.unit_text})"
    if verdict.verdict in (BETTER, WORSE):
        return f"paired difference {format_signed(found.mean)} points, {ci}, {test}"
    if verdict.verdict == EQUIVALENT:
        head = (f"equivalent within ±{s.equivalence_margin:g} points (TOST, {level_text(found.tost.level)} CI "
                f"{interval_text(found.tost.ci_low, found.tost.ci_high)})")
    else:
        head = f"no significant difference ({ci})"
    return f"{head}; paired difference {format_signed(found.mean)} points, {test}"


def verdict_sentence(verdict: Verdict, records: MethodRecords) -> str:
    """``t at 98% sparsity: AutoS 41.0 ± 1.0 is worse than the best single-shot baseline SynFlow 46.0 ± 1.0 (chosen
    on the validation split): paired difference −5.0 points, 95% CI −7.5 to −2.5, Holm-adjusted p = 0.012 (...)``;
    accuracies in %, the means over the paired units. No baseline, no shared seed or one unit: it says so plainly.
    ``records``: the method registry's records (titles)."""
    head = f"{verdict.target} at {format_sparsity(verdict.sparsity)} sparsity: "
    name, found = method_name(verdict.method, records), verdict.estimate
    if verdict.verdict == NO_BASELINE or verdict.baseline is None:
        mine = format_mean(verdict.method_mean, verdict.method_std, verdict.method_n, show_n=False)
        return head + f"{name} {mine}; no single-shot baseline ran at this sparsity, so there is no verdict."
    baseline = f"the best single-shot baseline {method_name(verdict.baseline, records)}"
    if found is None:
        mine = format_mean(verdict.method_mean, verdict.method_std, verdict.method_n)
        return (head + f"{name} {mine} and {baseline} ({verdict.choice.note}) share no seed, so no paired "
                "comparison and no verdict is possible.")
    mine = format_mean(found.label_mean, found.label_std, found.n, show_n=False)
    other = format_mean(found.reference_mean, found.reference_std, found.n, show_n=False)
    note = f" {COLLAPSE_MARK} layer collapse in at least one of these runs." if verdict.collapsed else ""
    if found.design == ONE_SOURCE:
        note = " One source model: the interval does not cover source variance." + note
    if not found.has_interval:
        return (head + f"{name} {mine} vs {baseline} {other} ({verdict.choice.note}): paired difference "
                f"{format_signed(found.mean)} points from {_ONE_UNIT[found.design]} only, so no verdict is possible."
                + note)
    spreads = f" {spread_text(found)}"
    if verdict.verdict in (BETTER, WORSE):
        return (head + f"{name} {mine} {_VERBS[verdict.verdict]} {baseline} {other} ({verdict.choice.note}): "
                f"{_judged(verdict, found)}." + spreads + note)
    return (head + f"{name} {mine} vs {baseline} {other} ({verdict.choice.note}): {_judged(verdict, found)}."
            + spreads + note)


def verdict_lines(verdicts: Sequence[Verdict], records: MethodRecords) -> str:
    return "\n".join(f"- {verdict_sentence(v, records)}" for v in verdicts)


def _sd_cell(value: float) -> str:
    return MISSING if math.isnan(value) else points(value)


def verdict_table(verdicts: Sequence[Verdict], records: MethodRecords) -> Table:
    """One line per verdict: the numbers of the sentences, side by side (percentage points)."""
    body = []
    for v in verdicts:
        d = v.estimate
        line = [v.target, format_sparsity(v.sparsity), method_name(v.method, records),
                MISSING if v.baseline is None else f"{method_name(v.baseline, records)} ({v.choice.split})"]
        if d is None:
            line += [MISSING] * 7
        else:
            line += [format_signed(d.mean), interval_text(d.ci_low, d.ci_high) if d.has_interval else MISSING,
                     f"{d.n} {d.unit}", p_text(d.p), p_text(v.p_adjusted), _sd_cell(d.between_sd),
                     _sd_cell(d.within_sd)]
        body.append([*line, v.verdict])
    s = verdicts[0].settings if verdicts else VerdictSettings()
    return Table(["target", "sparsity", "method", "baseline (chosen on)", "diff (pp)",
                  f"{level_text(s.confidence)} CI", "n", "p", "adjusted p" if s.correction == "holm" else "p used",
                  "sd between sources", "sd within a source", "verdict"], body)


def model_statement(settings: VerdictSettings, count: int) -> str:
    """The statistical model behind the verdicts, in one paragraph (``count``: verdicts with a test)."""
    alpha, level = settings.alpha, level_text(settings.confidence)
    correction = (f"Holm-adjusted across the {count} tested verdicts of this table (every target × sparsity × "
                  "method under test)" if settings.correction == "holm" else "not corrected for multiple comparisons")
    return (
        f"**Statistical model.** Each method under test ({', '.join(settings.under_test)}) is compared with the best "
        "single-shot baseline, chosen on the validation split where the study held one out (else on the test set, "
        "as each verdict says). The difference method − baseline in final-epoch test accuracy (percentage points) "
        "is paired by target seed and, for methods that read a source model's AutoS scorer, by source: with several "
        "sources each met by one target seed, the (source, seed) pairs are independent draws; with sources crossed "
        "with target seeds, the difference is averaged over target seeds within each source and the interval is "
        "over the per-source means (n = sources: a two-level design analysed at its top level, conservative); with "
        "a single source the interval covers target seeds only, not source variance. "
        f"A two-sided paired t-test on the same unit gives p, {correction}. *Better* / *worse* only when the "
        f"adjusted p < {alpha:.3g}; *equivalent* when a TOST at ±{settings.equivalence_margin:g} points succeeds "
        f"(both one-sided tests at {alpha:.3g}: the {level_text(1 - 2 * alpha)} interval inside the margin); "
        f"otherwise *no significant difference*. Intervals are {level} per comparison (unadjusted), so after the "
        "correction one that excludes 0 may still read \"no significant difference\"."
    )
