"""Paired differences to AutoS, their t-intervals and the verdicts, checked against hand computations on synthetic
rows (no training): 3 seeds with known accuracies give a known mean difference and t-interval. The statistics of
the verdict table (designs, Holm, TOST, the validation choice) have known-answer tests in test_report_stats.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from autos.registry import MethodRecord
from autos.report import (
    TargetResults,
    accuracy_figure,
    build_report,
    format_cell,
    method_kinds,
    paired_differences,
    paired_table,
    report_metrics,
    single_shot_baselines,
    study_verdicts,
    target_markdown,
    target_verdicts,
    verdict_metrics,
    verdict_sentence,
)
from autos.report.aggregate import cell_stats
from autos.report.stats import t_interval, t_quantile

T_975 = {1: 12.706204736174698, 2: 4.302652729911275, 4: 2.7764451051977987, 30: 2.042272456301238}
# the registry's records of the methods used here (the report is handed them; it imports no registry)
RECORDS = {name: MethodRecord(name=name, title=title, kind=kind, needs_data=False, reads_scorer=False,
                              settings=object, module="tests")
           for name, title, kind in [("autos", "AutoS", "pai"), ("snip", "SNIP", "pai"), ("synflow", "SynFlow", "pai"),
                                     ("random", "Random", "pai"), ("kstarts", "K-starts", "early"),
                                     ("irp", "IRP", "trained")]}


def _row(method: str, sparsity: float, seed: int, acc: float, modifier: str = "", **extra: Any) -> dict[str, Any]:
    return {"target": "t", "method": method, "modifier": modifier, "sparsity": sparsity, "seed": seed,
            "final_test_acc": acc, "best_test_acc": acc, "best_epoch": 1, "final_test_loss": 1.0, "epochs": 1,
            **extra}


def _raw(accs: dict[str, list[float]], sparsity: float = 0.98, seeds: tuple[int, ...] = (0, 1, 2),
         **extra: Any) -> dict[str, Any]:
    rows = [_row("dense", 0.0, s, 0.9) for s in seeds]
    for label, values in accs.items():
        method, _, modifier = label.partition("+")
        rows += [_row(method, sparsity, s, v, modifier) for s, v in zip(seeds, values, strict=True)]
    return {"target": "t", "rows": rows, **extra}


def _payload(accs: dict[str, list[float]], sparsity: float = 0.98, seeds: tuple[int, ...] = (0, 1, 2),
             **extra: Any) -> TargetResults:
    return TargetResults.from_json(_raw(accs, sparsity, seeds, **extra))


def _rows(*raw: dict[str, Any]) -> tuple[Any, ...]:
    return TargetResults.from_json({"target": "t", "rows": list(raw)}).rows


def test_t_quantile_matches_the_table() -> None:
    for dof, value in T_975.items():
        assert t_quantile(0.975, dof) == pytest.approx(value, rel=1e-9)
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_paired_difference_and_interval_by_hand() -> None:
    # SynFlow - AutoS per seed: [3, 2, 5] pp -> mean 10/3, sd sqrt(7/3), se sqrt(7/9), half-width t(0.975, 2) * se
    payload = _payload({"autos": [0.50, 0.52, 0.51], "synflow": [0.53, 0.54, 0.56]})
    (diff,) = paired_differences(payload.rows)
    half = T_975[2] * math.sqrt(7 / 9)
    assert (diff.label, diff.reference, diff.n, diff.seeds) == ("synflow", "autos", 3, (0, 1, 2))
    assert diff.mean * 100 == pytest.approx(10 / 3)
    assert diff.std * 100 == pytest.approx(math.sqrt(7 / 3))
    assert diff.ci_low * 100 == pytest.approx(10 / 3 - half)  # -0.461
    assert diff.ci_high * 100 == pytest.approx(10 / 3 + half)  # 7.128
    assert diff.label_mean - diff.reference_mean == pytest.approx(diff.mean)
    table = paired_table(payload.rows)
    assert table is not None and table.header == ["method", "98%"]
    assert table.rows == [["synflow", "+3.3 [\u22120.5, 7.1] (n=3)"]]
    (verdict,) = target_verdicts(payload, RECORDS)
    assert verdict.baseline == "synflow" and verdict.verdict == "no significant difference"
    found = verdict.estimate
    assert found is not None and found.mean * 100 == pytest.approx(-10 / 3)  # AutoS - SynFlow
    assert found.ci_low * 100 == pytest.approx(-10 / 3 - half)
    assert (found.design, found.unit, found.n) == ("seeds", "pairs", 3)


def test_only_seeds_present_for_both_are_paired() -> None:
    rows = _rows(*[_row("autos", 0.9, s, 0.5 + 0.01 * s) for s in (0, 1, 2)],
                 *[_row("snip", 0.9, s, 0.4 + 0.02 * s) for s in (1, 2, 3)])
    (diff,) = paired_differences(rows)
    assert diff.seeds == (1, 2) and diff.n == 2
    assert diff.mean * 100 == pytest.approx(((0.42 - 0.51) + (0.44 - 0.52)) / 2 * 100)
    assert diff.ci_low * 100 == pytest.approx(-8.5 - T_975[1] * math.sqrt(0.5) / math.sqrt(2))  # sd / sqrt(n)


CHOSEN_ON_TEST = "(chosen on the test set: no validation split was held out)"
NO_SOURCE = "(two-sided paired t-test over n=3 seed pairs). Source spreads: n/a (no source model involved)."


@pytest.mark.parametrize(("autos", "synflow", "verdict", "sentence"), [
    ([0.40, 0.42, 0.41], [0.45, 0.46, 0.47], "worse",
     f"t at 98% sparsity: AutoS 41.0 ± 1.0 is worse than the best single-shot baseline SynFlow 46.0 ± 1.0 "
     f"{CHOSEN_ON_TEST}: paired difference \u22125.0 points, 95% CI \u22127.5 to \u22122.5, Holm-adjusted p = 0.013 "
     f"{NO_SOURCE}"),
    ([0.45, 0.46, 0.47], [0.40, 0.42, 0.41], "better",
     f"t at 98% sparsity: AutoS 46.0 ± 1.0 is better than the best single-shot baseline SynFlow 41.0 ± 1.0 "
     f"{CHOSEN_ON_TEST}: paired difference +5.0 points, 95% CI 2.5 to 7.5, Holm-adjusted p = 0.013 {NO_SOURCE}"),
    ([0.50, 0.52, 0.51], [0.53, 0.54, 0.56], "no significant difference",
     f"t at 98% sparsity: AutoS 51.0 ± 1.0 vs the best single-shot baseline SynFlow 54.3 ± 1.5 {CHOSEN_ON_TEST}: no "
     "significant difference (95% CI \u22127.1 to 0.5); paired difference \u22123.3 points, Holm-adjusted p = 0.063 "
     f"{NO_SOURCE}"),
])
def test_verdict_wording(autos: list[float], synflow: list[float], verdict: str, sentence: str) -> None:
    payload = _payload({"autos": autos, "synflow": synflow, "random": [0.1, 0.1, 0.1]})
    (found,) = target_verdicts(payload, RECORDS)
    assert found.verdict == verdict
    assert verdict_sentence(found, RECORDS) == sentence
    assert "matches" not in sentence and "indistinguishable" not in sentence


def test_one_seed_gives_no_verdict_and_no_fake_std() -> None:
    payload = _payload({"autos": [0.40], "synflow": [0.45]}, seeds=(0,))
    (found,) = target_verdicts(payload, RECORDS)
    assert found.verdict == "no verdict" and found.estimate is not None and found.estimate.n == 1
    sentence = verdict_sentence(found, RECORDS)
    assert sentence == ("t at 98% sparsity: AutoS 40.0 (n=1) vs the best single-shot baseline SynFlow 45.0 (n=1) "
                        f"{CHOSEN_ON_TEST}: paired difference \u22125.0 points from one seed only, so no verdict is "
                        "possible.")
    assert "±" not in sentence and "CI" not in sentence
    cell = cell_stats(payload.rows)[("autos", 0.98)]
    assert format_cell(cell) == "40.0 (n=1)"
    markdown = target_markdown(payload, RECORDS)
    assert "40.0 (n=1)" in markdown and "± 0.0" not in markdown
    table = paired_table(payload.rows)
    assert table is not None and table.rows == [["synflow", "+5.0 (n=1)"]]
    record = verdict_metrics({"t": payload}, RECORDS)["t@0.98@autos"]
    assert {k: record[k] for k in ("method_mean", "best_baseline", "baseline_mean", "diff", "ci_low", "ci_high", "p",
                                   "p_adjusted", "n", "unit", "verdict")} == {
        "method_mean": 40.0, "best_baseline": "synflow", "baseline_mean": 45.0, "diff": -5.0, "ci_low": None,
        "ci_high": None, "p": None, "p_adjusted": None, "n": 1, "unit": "pairs", "verdict": "no verdict"}


ACCS = {"autos": [0.40, 0.41, 0.42], "snip": [0.38, 0.39, 0.40], "synflow": [0.44, 0.45, 0.46],
        "kstarts": [0.60, 0.61, 0.62], "irp": [0.70, 0.71, 0.72], "synflow+shuffle": [0.80, 0.81, 0.82],
        "newmethod": [0.9, 0.9, 0.9]}


def test_best_single_shot_baseline_excludes_other_kinds_modifiers_and_dense() -> None:
    # Higher than every single-shot baseline: an early method, a trained one, a modifier variant; dense is dense.
    payload = _payload(ACCS)
    assert single_shot_baselines(payload, RECORDS) == ["snip", "synflow"]  # newmethod: no record, no kind
    (found,) = target_verdicts(payload, RECORDS)
    assert found.baseline == "synflow" and found.verdict == "worse"
    labels = [d.label for d in paired_differences(payload.rows)]
    assert labels == ["snip", "synflow", "synflow+shuffle", "kstarts", "newmethod", "irp"]  # all vs AutoS
    # a method without a record takes the kind its results recorded; a record's kind wins over the results'
    meta = _payload(ACCS, methods={"newmethod": {"kind": "pai"}, "snip": {"kind": "trained"}})
    assert single_shot_baselines(meta, RECORDS) == ["snip", "synflow", "newmethod"]
    assert method_kinds(meta, RECORDS) == {"dense": "dense", "autos": "pai", "snip": "pai", "synflow": "pai",
                                           "kstarts": "early", "irp": "trained", "newmethod": "pai"}
    assert single_shot_baselines(payload, {}) == []  # unknown kind: never a baseline


def test_verdict_without_baseline_or_shared_seed() -> None:
    alone = _payload({"autos": [0.40, 0.41, 0.42], "irp": [0.5, 0.5, 0.5]})
    (found,) = target_verdicts(alone, RECORDS)
    assert found.verdict == "no baseline" and found.baseline is None
    assert "no single-shot baseline ran at this sparsity" in verdict_sentence(found, RECORDS)
    (found,) = target_verdicts(TargetResults("t", _rows(_row("autos", 0.9, 0, 0.5), _row("snip", 0.9, 1, 0.4))),
                               RECORDS)
    assert found.verdict == "no verdict" and found.estimate is None
    assert "share no seed" in verdict_sentence(found, RECORDS)


def test_identical_differences_give_a_point_interval() -> None:
    payload = _payload({"autos": [0.40, 0.41, 0.42], "snip": [0.40, 0.41, 0.42]})
    (found,) = target_verdicts(payload, RECORDS)
    d = found.estimate
    assert d is not None and d.ci_low == d.ci_high == pytest.approx(0.0, abs=1e-12) and d.p == 1.0
    assert found.verdict == "equivalent"  # a zero-width interval at 0 lies inside any margin


def test_study_without_autos_has_no_paired_table_and_does_not_crash(tmp_path: Path) -> None:
    payload = _payload({"snip": [0.40, 0.41, 0.42], "synflow": [0.44, 0.45, 0.46]})
    assert paired_differences(payload.rows) == [] and paired_table(payload.rows) is None
    assert target_verdicts(payload, RECORDS) == []
    files = build_report({"t": payload}, None, None, tmp_path, records=RECORDS)
    assert all(p.is_file() for p in files)
    assert json.loads((tmp_path / "verdicts.json").read_text()) == {}
    with (tmp_path / "paired.csv").open(newline="") as fh:
        assert len(list(csv.reader(fh))) == 1  # the header only
    assert "Paired difference" not in (tmp_path / "t.md").read_text()
    assert "No method under test (autos) ran on any target" in (tmp_path / "summary.md").read_text()


def test_paired_csv_verdicts_json_and_summary(tmp_path: Path) -> None:
    payload = _payload({"autos": [0.50, 0.52, 0.51], "synflow": [0.53, 0.54, 0.56], "snip+invert": [0.1] * 3})
    build_report({"t": payload}, None, None, tmp_path, records=RECORDS)
    with (tmp_path / "paired.csv").open(newline="") as fh:
        lines = {r["label"]: r for r in csv.DictReader(fh)}
    assert set(lines) == {"synflow", "snip+invert"}
    syn = lines["synflow"]
    half = T_975[2] * math.sqrt(7 / 9)
    assert (syn["target"], syn["method"], syn["modifier"], syn["kind"], syn["n"], syn["seeds"]) == \
        ("t", "synflow", "", "pai", "3", "0;1;2")
    assert float(syn["diff_mean_pp"]) == pytest.approx(10 / 3, abs=1e-4)
    assert float(syn["ci_low_pp"]) == pytest.approx(10 / 3 - half, abs=1e-4)
    assert float(syn["ci_high_pp"]) == pytest.approx(10 / 3 + half, abs=1e-4)
    assert float(syn["autos_mean_pct"]) == pytest.approx(51.0)
    assert lines["snip+invert"]["modifier"] == "invert"
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert list(verdicts) == ["t@0.98@autos"]
    record = verdicts["t@0.98@autos"]
    assert {k: record[k] for k in ("target", "sparsity", "method", "best_baseline", "baseline_chosen_on",
                                   "method_mean", "baseline_mean", "diff", "ci_low", "ci_high", "n", "unit",
                                   "test", "correction", "equivalence_margin", "verdict")} == {
        "target": "t", "sparsity": 0.98, "method": "autos", "best_baseline": "synflow", "baseline_chosen_on": "test",
        "method_mean": 51.0, "baseline_mean": 54.33, "diff": -3.33, "ci_low": round(-10 / 3 - half, 2),
        "ci_high": round(-10 / 3 + half, 2), "n": 3, "unit": "pairs", "test": "two-sided paired t-test",
        "correction": "holm", "equivalence_margin": 2.0, "verdict": "no significant difference"}
    assert record["p_adjusted"] == record["p"] == pytest.approx(0.0634, abs=1e-4)  # one verdict: Holm changes nothing
    summary = (tmp_path / "summary.md").read_text()
    assert "## AutoS vs the best single-shot baseline" in summary and "**Statistical model.**" in summary
    assert "vs the best single-shot baseline SynFlow 54.3 ± 1.5 (chosen on the test set: no validation split was " \
        "held out): no significant difference (95% CI \u22127.1 to 0.5)" in summary
    assert summary.count("no significant difference (95% CI") == 1  # not repeated inside the target's section
    assert "| t | 98% | AutoS | SynFlow (test) | \u22123.3 | \u22127.1 to 0.5 | 3 pairs | 0.063 | 0.063 | \u2014 | " \
        "\u2014 | no significant difference |" in summary
    page = (tmp_path / "t.md").read_text()
    assert "**Paired difference to AutoS**" in page and "no significant difference (95% CI" in page


def test_a_method_known_only_from_the_records_gets_its_title_and_baseline_status(tmp_path: Path) -> None:
    # "zap" is in no table of the report, and results.json records no kind for it: only its record says what it is
    zap = MethodRecord(name="zap", title="ZAP-42", kind="pai", needs_data=False, reads_scorer=False,
                       settings=object, module="tests")
    records = {**RECORDS, "zap": zap}
    payload = _payload({"autos": [0.40, 0.41, 0.42], "snip": [0.38, 0.39, 0.40], "zap": [0.50, 0.51, 0.52],
                        "kstarts": [0.60, 0.61, 0.62]})
    assert single_shot_baselines(payload, RECORDS) == ["snip"]  # without its record: unknown kind, no baseline
    assert single_shot_baselines(payload, records) == ["snip", "zap"]
    (found,) = target_verdicts(payload, records)
    assert found.baseline == "zap" and found.verdict == "worse"
    assert "worse than the best single-shot baseline ZAP-42 51.0 ± 1.0" in verdict_sentence(found, records)
    legend = {t.get_text() for t in accuracy_figure(payload.rows, title="t", records=records).axes[0]
              .get_legend().get_texts()}
    assert {"ZAP-42", "SNIP", "K-starts"} <= legend and "zap" not in legend
    build_report({"t": payload}, None, None, tmp_path, records=records)
    with (tmp_path / "paired.csv").open(newline="") as fh:
        assert {r["label"]: r["kind"] for r in csv.DictReader(fh)}["zap"] == "pai"
    assert json.loads((tmp_path / "verdicts.json").read_text())["t@0.98@autos"]["best_baseline"] == "zap"
    # a method with neither record nor recorded kind: its name, never a baseline
    (found,) = target_verdicts(payload, RECORDS)
    assert found.baseline == "snip"
    legend = {t.get_text() for t in accuracy_figure(payload.rows, title="t", records=RECORDS).axes[0]
              .get_legend().get_texts()}
    assert "zap" in legend


def test_stage_logs_verdicts_under_valid_mlflow_keys() -> None:
    import re

    from autos.pipeline.report import verdict_mlflow_metrics

    payload = _payload({"autos": [0.50, 0.52, 0.51], "synflow": [0.53, 0.54, 0.56]}, sparsity=0.995,
                       target="vgg16_cifar10")
    metrics = verdict_mlflow_metrics(report_metrics(study_verdicts({"vgg16_cifar10": payload}, RECORDS)))
    assert metrics["verdict/vgg16_cifar10/s99.5/autos/diff"] == pytest.approx(-3.33)
    assert metrics["verdict/vgg16_cifar10/s99.5/autos/n"] == 3.0
    assert metrics["verdict/vgg16_cifar10/s99.5/autos/p_adjusted"] == pytest.approx(0.0634, abs=1e-4)
    assert all(re.fullmatch(r"[\w\-. /]+", key) for key in metrics)


def test_report_stage_writes_verdicts_to_reports_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import shutil

    import yaml

    from autos.paths import study_paths
    from autos.pipeline.context import StageContext
    from autos.pipeline.report import run as main
    from autos.study import parse_study

    repo = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo / "configs" / "smoke.yaml").read_text())
    raw["tracking"]["enabled"] = False
    raw["transfer"]["method_settings"].pop("autos", None)  # whatever the profile sets, AutoS runs as registered here
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(repo / "paths.yaml", tmp_path / "paths.yaml")
    target = next(iter(raw["transfer"]["targets"]))
    results = tmp_path / "data" / "transfer" / target / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(_raw({"autos": [0.40, 0.42, 0.41], "synflow": [0.45, 0.46, 0.47]}, target=target)))
    monkeypatch.setenv("AUTOS_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    paths = study_paths(tmp_path)
    main(StageContext(name="report", cfg=parse_study(raw), args=argparse.Namespace(params="params.yaml"),
                      root=tmp_path, paths=paths))
    verdicts = json.loads((paths.reports / "verdicts.json").read_text())
    metrics = json.loads((paths.metrics / "report.json").read_text())
    key = f"{target}@0.98@autos"
    assert list(metrics) == list(verdicts) == [key]  # flat: one small dict of numbers per verdict, for dvc metrics
    assert metrics[key] == {name: verdicts[key][name]
                            for name in ("diff", "ci_low", "ci_high", "p_adjusted", "n", "verdict")}
    assert metrics[key]["verdict"] == "worse" and metrics[key]["n"] == 3
    assert (paths.reports / "svg" / f"{target}.svg").is_file() and (paths.reports / "summary.md").is_file()
    # the stage hands the report the registry's records (titles) and the study's source (smoke: resnet18, width 4)
    summary = (paths.reports / "summary.md").read_text().splitlines()
    assert summary[0] == "# AutoS study report"
    assert summary[2].startswith("**Source.** ResNet-18 (width 4) on CIFAR-10 (model=resnet18, width=4, "
                                 "dataset=cifar10)") and "IRP: num_rounds=2, final_density=0.2" in summary[2]
    assert "worse than the best single-shot baseline SynFlow" in (paths.reports / f"{target}.md").read_text()
