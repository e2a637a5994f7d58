"""The verdict table's statistics on synthetic rows with known answers: the unit switches with the design (seeds,
one source, paired sources, crossed sources), Holm as in the textbook, TOST equivalence only inside the margin, the
baseline chosen on the validation split, the wording rules, the flat DVC metrics, the exploratory controls and the
source runs in the summary."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as scipy_stats

from autos.registry import MethodRecord
from autos.report import (
    SourceRun,
    TargetResults,
    VerdictSettings,
    build_report,
    controls_frame,
    holm,
    report_metrics,
    single_shot_baselines,
    study_verdicts,
    t_test_p,
    target_controls,
    tost,
    verdict_sentence,
)

T2 = 4.302652729911275  # t(0.975, 2)


def _record(name: str, title: str, kind: str = "pai", variant_of: str | None = None) -> MethodRecord:
    return MethodRecord(name=name, title=title, kind=kind, needs_data=False, reads_scorer=name.startswith("autos"),
                        settings=object, module="tests", variant_of=variant_of)


RECORDS = {r.name: r for r in [
    _record("autos", "AutoS"), _record("snip", "SNIP"), _record("synflow", "SynFlow"),
    _record("magnitude", "Magnitude"), _record("kstarts", "K-starts", "early"),
    _record("autos_floor", "AutoS (layer_floor 0.5)", variant_of="autos"),
    _record("magnitude_floor", "Magnitude (layer_floor 0.5)", variant_of="magnitude")]}


def _row(method: str, seed: int, acc: float, *, source: int | None = None, val: float | None = None,
         modifier: str = "", sparsity: float = 0.9, target: str = "t") -> dict[str, Any]:
    row: dict[str, Any] = {"target": target, "method": method, "modifier": modifier, "sparsity": sparsity,
                           "seed": seed, "final_test_acc": acc, "best_test_acc": acc, "best_epoch": 1,
                           "final_test_loss": 1.0, "epochs": 1}
    if source is not None:
        row["source"] = source
    if val is not None:
        row["final_val_acc"] = val
    return row


def _results(*rows: dict[str, Any], target: str = "t") -> TargetResults:
    return TargetResults.from_json({"target": target, "rows": list(rows)})


def _baseline(accs: list[float], method: str = "snip", **extra: Any) -> list[dict[str, Any]]:
    return [_row(method, seed, acc, **extra) for seed, acc in enumerate(accs)]


# --------------------------------------------------------------------------- pure statistics


def test_holm_as_in_the_textbook() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, 0.02, 0.03, 0.04]) == pytest.approx([0.04, 0.06, 0.06, 0.06])  # monotone step-down
    adjusted = holm([0.5, math.nan, 0.2])  # nan is no test: kept, and not counted in m
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.4)
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8]) and holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_paired_t_test_matches_scipy_and_the_hand_computation() -> None:
    values = [0.03, 0.02, 0.05]
    t = (10 / 3) / math.sqrt(7 / 9)
    assert t_test_p(values) == pytest.approx(2 * scipy_stats.t.sf(t, 2))
    assert t_test_p(values) == pytest.approx(scipy_stats.ttest_1samp(values, 0.0).pvalue)
    assert t_test_p([0.01, 0.01]) == 0.0 and t_test_p([0.0, 0.0]) == 1.0 and math.isnan(t_test_p([0.1]))


def test_tost_equivalent_only_inside_the_margin() -> None:
    # mean 1, sd 0.5, se 0.5 / sqrt(3); the 90% interval 1 ± t(0.95, 2) * se = [0.157, 1.843]
    values = [0.5, 1.0, 1.5]
    half = scipy_stats.t.ppf(0.95, 2) * 0.5 / math.sqrt(3)
    inside = tost(values, margin=2.0, alpha=0.05)
    assert (inside.ci_low, inside.ci_high) == pytest.approx((1 - half, 1 + half))
    assert inside.equivalent and inside.p < 0.05 and inside.level == pytest.approx(0.9)
    outside = tost(values, margin=1.5, alpha=0.05)  # 1.843 > 1.5
    assert not outside.equivalent and outside.p > 0.05
    assert not tost([1.0], margin=5.0, alpha=0.05).equivalent  # one value: no interval, no equivalence


# --------------------------------------------------------------------------- the unit follows the design

B = [0.50, 0.52, 0.51]  # the baseline at seeds 0, 1, 2


def _verdict(*rows: dict[str, Any], settings: VerdictSettings | None = None) -> Any:
    (verdict,) = study_verdicts({"t": _results(*rows)}, RECORDS, settings)
    return verdict


def test_crossed_sources_are_analysed_over_per_source_means() -> None:
    # 3 sources x 2 seeds; d per source: (2, 2), (5, 3), (2, 4) pp -> per-source means 2, 4, 3 -> n = 3 sources
    m = {(0, 0): 0.52, (0, 1): 0.54, (1, 0): 0.55, (1, 1): 0.55, (2, 0): 0.52, (2, 1): 0.56}
    rows = [_row("autos", seed, acc, source=source) for (source, seed), acc in m.items()]
    verdict = _verdict(*rows, *_baseline(B[:2]))
    d = verdict.estimate
    assert (d.design, d.unit, d.n, d.sources, d.seeds) == ("crossed", "sources", 3, (0, 1, 2), (0, 1))
    assert d.mean * 100 == pytest.approx(3.0)
    assert (d.ci_low * 100, d.ci_high * 100) == pytest.approx((3 - T2 / math.sqrt(3), 3 + T2 / math.sqrt(3)))
    assert d.p == pytest.approx(2 * scipy_stats.t.sf(3 * math.sqrt(3), 2))
    assert d.between_sd * 100 == pytest.approx(1.0)  # sd of the per-source means 53, 55, 54
    assert d.within_sd * 100 == pytest.approx(math.sqrt((2 + 0 + 8) / 3))  # pooled over seeds within a source
    assert "over n=3 sources" in verdict_sentence(verdict, RECORDS)


def test_paired_sources_are_independent_pairs() -> None:
    # source i met target seed i only: d = 2, 4, 3 pp, n = 3 (source, seed) pairs; no within-source spread
    rows = [_row("autos", i, acc, source=i) for i, acc in enumerate([0.52, 0.56, 0.54])]
    verdict = _verdict(*rows, *_baseline(B))
    d = verdict.estimate
    assert (d.design, d.unit, d.n) == ("paired", "pairs", 3)
    assert (d.ci_low * 100, d.ci_high * 100) == pytest.approx((3 - T2 / math.sqrt(3), 3 + T2 / math.sqrt(3)))
    assert d.between_sd * 100 == pytest.approx(2.0) and math.isnan(d.within_sd)
    assert d.within_note == "each source model met one target seed"
    sentence = verdict_sentence(verdict, RECORDS)
    assert "over n=3 (source, seed) pairs" in sentence
    assert "within a source n/a (each source model met one target seed)" in sentence


def test_one_source_says_the_interval_does_not_cover_source_variance() -> None:
    rows = [_row("autos", seed, acc, source=7) for seed, acc in enumerate([0.52, 0.56, 0.54])]
    verdict = _verdict(*rows, *_baseline(B))
    d = verdict.estimate
    assert (d.design, d.unit, d.n, d.sources) == ("one source", "pairs", 3, (7,))
    assert (d.ci_low * 100, d.ci_high * 100) == pytest.approx((3 - T2 / math.sqrt(3), 3 + T2 / math.sqrt(3)))
    assert math.isnan(d.between_sd) and d.within_sd * 100 == pytest.approx(2.0)
    sentence = verdict_sentence(verdict, RECORDS)
    assert "One source model: the interval does not cover source variance." in sentence
    assert "Spread between sources n/a (one source model: source variance is not estimable)" in sentence


def test_rows_without_source_are_paired_by_seed() -> None:
    verdict = _verdict(*_baseline([0.52, 0.56, 0.54], "autos"), *_baseline(B))
    d = verdict.estimate
    assert (d.design, d.unit, d.n, d.sources) == ("seeds", "pairs", 3, ())
    assert math.isnan(d.between_sd) and math.isnan(d.within_sd)
    assert "Source spreads: n/a (no source model involved)." in verdict_sentence(verdict, RECORDS)


# --------------------------------------------------------------------------- the baseline and the correction


def test_baseline_chosen_on_validation_even_when_test_would_pick_another() -> None:
    autos = _baseline([0.50, 0.51, 0.52], "autos", val=0.5)
    snip = _baseline([0.60, 0.61, 0.62], "snip", val=0.40)  # best on test
    synflow = _baseline([0.55, 0.56, 0.57], "synflow", val=0.45)  # best on validation
    verdict = _verdict(*autos, *snip, *synflow)
    assert verdict.baseline == "synflow" and verdict.choice.split == "validation"
    assert "(chosen on the validation split)" in verdict_sentence(verdict, RECORDS)
    # without validation accuracies: the test mean, and the verdict says so
    bare = _verdict(*_baseline([0.50, 0.51, 0.52], "autos"), *_baseline([0.60, 0.61, 0.62], "snip"),
                    *_baseline([0.55, 0.56, 0.57], "synflow"))
    assert bare.baseline == "snip" and bare.choice.split == "test"
    assert "(chosen on the test set: no validation split was held out)" in verdict_sentence(bare, RECORDS)
    partial = _verdict(*autos, *_baseline([0.60, 0.61, 0.62], "snip"), *synflow)  # snip recorded none
    assert partial.baseline == "snip" and "not every candidate recorded a validation accuracy" in \
        verdict_sentence(partial, RECORDS)


def test_candidates_exclude_methods_under_test_their_variants_modifiers_and_other_kinds() -> None:
    rows = [*_baseline([0.5] * 3, "autos"), *_baseline([0.9] * 3, "autos_floor"), *_baseline([0.6] * 3, "snip"),
            *_baseline([0.7] * 3, "magnitude_floor"), *_baseline([0.95] * 3, "kstarts"),
            *_baseline([0.99] * 3, "snip", modifier="shuffle")]
    results = _results(*rows)
    assert single_shot_baselines(results, RECORDS, ("autos",)) == ["snip", "magnitude_floor"]
    settings = VerdictSettings(under_test=("autos", "autos_floor"))
    verdicts = study_verdicts({"t": results}, RECORDS, settings)
    assert [(v.method, v.baseline) for v in verdicts] == [("autos", "magnitude_floor"),
                                                          ("autos_floor", "magnitude_floor")]


def _noisy(target: str, shift: float) -> list[dict[str, Any]]:
    """AutoS - SNIP = shift + (0, 1, -1) pp over 3 seeds."""
    return [*_baseline([0.5 + shift + e for e in (0.0, 0.01, -0.01)], "autos", target=target),
            *_baseline([0.5, 0.5, 0.5], "snip", target=target)]


def test_holm_spans_the_whole_verdict_table_and_decides_the_wording() -> None:
    # target a alone is significant (p ~ 0.030); in a table with target b (p ~ 0.18) Holm doubles it past 0.05
    results = {"a": _results(*_noisy("a", 0.03), target="a"), "b": _results(*_noisy("b", 0.01), target="b")}
    raw = [study_verdicts({t: r}, RECORDS)[0] for t, r in results.items()]
    assert raw[0].verdict == "better" and raw[0].p_adjusted < 0.05
    verdicts = study_verdicts(results, RECORDS)
    assert [v.p_adjusted for v in verdicts] == pytest.approx(holm([v.estimate.p for v in verdicts]))
    a = verdicts[0]
    assert a.p_adjusted == pytest.approx(2 * a.estimate.p) and a.p_adjusted > 0.05
    assert a.verdict == "no significant difference" and a.estimate.ci_low > 0  # the interval is per comparison
    lo, hi = (f"{v * 100:.1f}" for v in (a.estimate.ci_low, a.estimate.ci_high))
    assert f": no significant difference (95% CI {lo} to {hi}); paired difference +3.0 points, Holm-adjusted p" in \
        verdict_sentence(a, RECORDS)
    none = study_verdicts(results, RECORDS, VerdictSettings(correction="none"))
    assert none[0].p_adjusted == pytest.approx(none[0].estimate.p) and none[0].verdict == "better"
    assert "p (no correction) = " in verdict_sentence(none[0], RECORDS)


def test_equivalence_wording_and_the_interval_levels() -> None:
    # d = 0.5, 1.0, 1.5 pp: p = 0.074; the 90% interval [0.16, 1.84] lies inside ±2 but not inside ±1
    rows = [*_baseline([0.505, 0.53, 0.525], "autos"), *_baseline(B)]
    verdict = _verdict(*rows)
    assert verdict.verdict == "equivalent"
    sentence = verdict_sentence(verdict, RECORDS)
    assert ": equivalent within ±2 points (TOST, 90% CI 0.2 to 1.8); paired difference +1.0 points, " in sentence
    narrow = _verdict(*rows, settings=VerdictSettings(equivalence_margin=1.0))
    assert narrow.verdict == "no significant difference"
    assert ": no significant difference (95% CI \u22120.2 to 2.2); paired difference" in \
        verdict_sentence(narrow, RECORDS)
    ninety = _verdict(*rows, settings=VerdictSettings(confidence=0.9, equivalence_margin=1.0))  # p < 0.1
    assert ninety.verdict == "better"
    assert "is better than" in verdict_sentence(ninety, RECORDS)
    assert ", 90% CI 0.2 to 1.8, Holm-adjusted p = 0.074" in verdict_sentence(ninety, RECORDS)
    for v in (verdict, narrow, ninety):
        assert "match" not in verdict_sentence(v, RECORDS)


def test_report_metrics_are_flat_and_small() -> None:
    results = {"a": _results(*_noisy("a", 0.03), target="a")}
    metrics = report_metrics(study_verdicts(results, RECORDS))
    assert list(metrics) == ["a@0.9@autos"]
    record = metrics["a@0.9@autos"]
    assert list(record) == ["diff", "ci_low", "ci_high", "p_adjusted", "n", "verdict"]
    assert record["diff"] == pytest.approx(3.0) and record["n"] == 3 and record["verdict"] == "better"
    assert all(not isinstance(v, (dict, list)) for v in record.values())


# --------------------------------------------------------------------------- controls and sources


def test_controls_pair_variants_and_modifiers_by_seed_and_source() -> None:
    rows = [_row("autos", seed, 0.50 + 0.01 * source, source=source) for source in (0, 1) for seed in (0, 1)]
    rows += [_row("autos", seed, 0.48 + 0.01 * source + 0.002 * seed, source=source, modifier="shuffle")
             for source in (0, 1) for seed in (0, 1)]
    rows += _baseline([0.40, 0.42], "magnitude") + _baseline([0.43, 0.44], "magnitude_floor")
    rows += _baseline([0.41, 0.40], "magnitude", modifier="shuffle")
    controls = {(c.label, c.reference): c for c in target_controls(_results(*rows), RECORDS)}
    assert list(controls) == [("autos+shuffle", "autos"), ("magnitude+shuffle", "magnitude"),
                              ("magnitude_floor", "magnitude")]
    shuffle = controls[("autos+shuffle", "autos")].estimate
    assert (shuffle.design, shuffle.unit, shuffle.n) == ("crossed", "sources", 2)  # matched on (seed, source)
    assert shuffle.values == pytest.approx((-0.019, -0.019))
    floor = controls[("magnitude_floor", "magnitude")].estimate
    assert (floor.design, floor.n) == ("seeds", 2) and floor.mean == pytest.approx(0.025)
    frame = controls_frame({"t": _results(*rows)}, RECORDS)
    assert list(frame["kind"]) == ["modifier", "modifier", "variant"]


def test_every_source_run_is_in_the_summary(tmp_path: Path) -> None:
    rows = [_row("autos", seed, 0.5 + 0.01 * source, source=source) for source in (0, 1) for seed in (0, 1)]
    rows += _baseline([0.45, 0.46], "snip")

    def curve(acc: float) -> dict[str, Any]:
        return {"rounds": [{"round": 0, "density": 1.0, "final_test_acc": acc},
                           {"round": 1, "density": 0.5, "final_test_acc": acc - 0.1}]}

    runs = [SourceRun(0, curve(0.8), {"scorer": {"spearman": 0.6, "topk_overlap_d0.1": 0.3}}),
            SourceRun(1, curve(0.7), {"scorer": {"spearman": 0.8, "topk_overlap_d0.1": 0.5}}),
            SourceRun(2)]  # its files are missing
    build_report({"t": _results(*rows)}, None, None, tmp_path, records=RECORDS, source_runs=runs)
    summary = (tmp_path / "summary.md").read_text()
    assert "| source 0 | 0.6000 | 0.3000 |" in summary and "| source 1 | 0.8000 | 0.5000 |" in summary
    assert "| mean | 0.7000 | 0.4000 |" in summary and "| sd | 0.1414 | 0.1414 |" in summary
    assert "**Source 2**: no scorer metrics found (metrics/scorer_2.json)." in summary
    assert "No IRP curve for source 2 (data/irp/2/curve.json)." in summary
    assert "No source ticket diagnostics for source 0 (data/scorer/0/source_ticket.json)" in summary
    with (tmp_path / "irp_curve.csv").open(newline="") as fh:
        assert [r["source"] for r in csv.DictReader(fh)] == ["0", "0", "1", "1"]
    assert (tmp_path / "figures" / "irp_curve.png").is_file()
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert verdicts["t@0.9@autos"]["unit"] == "sources" and verdicts["t@0.9@autos"]["n"] == 2
