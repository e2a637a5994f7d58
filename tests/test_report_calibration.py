"""Calibration against published numbers: the published file (parsed, checked against docs/reference/methods.md
§13a, registered names), sparsity matching, Spearman's ρ on known cases, the regime sentence, the report section and
the stage's reading of the file."""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest

from autos.errors import DataError
from autos.registry import MethodRecord
from autos.report import (
    NO_PUBLISHED,
    PUBLISHED_COLUMNS,
    PublishedPoint,
    TargetResults,
    build_report,
    calibrate_target,
    match_sparsity,
    parse_published,
    read_published,
    regime_sentence,
    relative_links,
    spearman,
)

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_FILE = REPO / "docs/reference/published_accuracies.csv"
METHODS = ("random", "magnitude", "snip", "grasp", "synflow")
# The committed default study at 98% (README, metrics/transfer_vgg16_cifar10.json, means over 3 seeds, %) and the
# published VGG-16-bn / CIFAR-10 numbers at 98.2% (§13a): the reviewer's ρ = 0.2
OURS_VGG = {"dense": 59.36, "random": 42.9, "magnitude": 47.84, "snip": 40.67, "grasp": 48.9, "synflow": 48.73}
PUBLISHED_VGG = {"random": 84.08, "magnitude": 90.93, "snip": 90.61, "grasp": 88.96, "synflow": 91.21}
RECORDS = {name: MethodRecord(name=name, title=name, kind="pai", needs_data=False, reads_scorer=False,
                              settings=object, module="tests") for name in ("autos", *METHODS)}


def _point(method: str, sparsity: float, pct: float, model: str = "vgg16_bn", dataset: str = "cifar10",
           n: int | None = 3) -> PublishedPoint:
    return PublishedPoint(dataset=dataset, model=model, method=method, sparsity=sparsity, accuracy=pct / 100, n=n,
                          source="paper, table 1")


def _published(grid: dict[float, dict[str, float]], dense: float | None = 93.5) -> list[PublishedPoint]:
    points = [_point(m, s, v) for s, values in grid.items() for m, v in values.items()]
    return points + ([_point("dense", 0.0, dense, n=None)] if dense is not None else [])


def _row(method: str, sparsity: float, seed: int, pct: float, modifier: str = "") -> dict[str, Any]:
    return {"target": "vgg", "method": method, "modifier": modifier, "sparsity": sparsity, "seed": seed,
            "final_test_acc": pct / 100, "best_test_acc": pct / 100, "best_epoch": 1, "final_test_loss": 1.0,
            "epochs": 1}


def _results(ours: dict[float, dict[str, float]], spec: dict[str, Any] | None = None,
             seeds: tuple[int, ...] = (0, 1, 2)) -> TargetResults:
    """``ours``: {sparsity: {label: pct}}; every seed gets pct + seed / 10 (so the mean is pct + 0.1)."""
    rows = [_row(label.partition("+")[0], s, seed, pct + seed / 10, label.partition("+")[2])
            for s, values in ours.items() for label, pct in values.items() for seed in seeds]
    spec = {"model": "vgg16_bn", "width": 16, "dataset": "cifar10"} if spec is None else spec
    return TargetResults.from_json({"target": "vgg", "spec": spec, "rows": rows})


def _default_vgg() -> TargetResults:
    ours = {s: {m: v for m, v in OURS_VGG.items() if (m == "dense") == (s == 0.0)} for s in (0.0, 0.98)}
    return _results(ours, seeds=(0,))


# --------------------------------------------------------------------------- matching and rank correlation


def test_nearest_published_sparsity_within_the_density_tolerance() -> None:
    grid = [0.9, 0.944, 0.982, 0.99]
    assert match_sparsity(0.9, grid) == 0.9 and match_sparsity(0.99, grid) == 0.99  # exact
    assert match_sparsity(0.98, grid) == 0.982  # densities 2% vs 1.8%
    assert match_sparsity(0.95, grid) == 0.944  # 5% vs 5.6%
    assert match_sparsity(0.985, grid) == 0.982  # 1.5% is nearer 1.8% than 1% in log density
    for far in (0.5, 0.8, 0.97, 0.999):  # no published point within a factor 1.25 of the density
        assert match_sparsity(far, grid) is None
    assert match_sparsity(0.0, grid) is None and match_sparsity(0.98, []) is None


def test_spearman_on_known_orders() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None  # fewer than 3 methods
    assert spearman([1, 2, 3], [5, 5, 5]) is None  # a constant side has no order
    ours, theirs = zip(*((OURS_VGG[m], PUBLISHED_VGG[m]) for m in METHODS), strict=True)
    assert spearman(ours, theirs) == pytest.approx(0.2)  # sum d^2 = 16 over 5: 1 - 6 * 16 / 120
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_calibrate_target_matches_model_dataset_and_nearest_point() -> None:
    published = _published({0.9: {"random": 91.0, "snip": 92.0, "synflow": 93.0},
                            0.982: {"random": 84.0, "snip": 90.0, "synflow": 91.0}})
    published.append(_point("random", 0.982, 50.0, model="resnet18"))  # another model: never used
    ours = {0.0: {"dense": 60.0}, 0.9: {"random": 50.0, "snip": 49.0, "synflow": 48.0, "autos": 55.0},
            0.98: {"random": 40.0, "snip": 41.0, "synflow": 42.0, "snip+shuffle": 10.0}, 0.97: {"snip": 45.0}}
    cal = calibrate_target(_results(ours), published)
    assert cal.covered and cal.title == "VGG-16 (width 16) on CIFAR-10"
    matched = {(line.method, line.sparsity): line for line in cal.lines}
    assert set(matched) == {("dense", 0.0), *((m, s) for m in ("random", "snip", "synflow") for s in (0.9, 0.98))}
    assert matched[("random", 0.98)].published.sparsity == 0.982  # 98% uses the 98.2% point
    assert matched[("random", 0.98)].published.accuracy == pytest.approx(0.84)
    assert matched[("random", 0.98)].diff * 100 == pytest.approx(40.1 - 84.0)  # our mean is pct + 0.1
    assert matched[("dense", 0.0)].ours.n == 3
    assert [(r.sparsity, r.published_sparsity, r.n) for r in cal.ranks] == [(0.9, 0.9, 3), (0.98, 0.982, 3)]
    assert cal.ranks[0].rho == pytest.approx(-1.0) and cal.ranks[1].rho == pytest.approx(1.0)
    assert cal.unpublished == ("autos",)  # modifier variants are never matched; 97% has no point near enough
    assert cal.setup == "width 16"


# --------------------------------------------------------------------------- the regime sentence


def test_regime_sentence_reflects_the_numbers() -> None:
    published = _published({0.982: PUBLISHED_VGG})
    reduced = regime_sentence(calibrate_target(_default_vgg(), published))
    assert reduced.startswith("Our dense VGG-16 (width 16) on CIFAR-10 reaches 59.4% against 93.5% published "
                              "(\u221234.1 points): this study runs at a reduced scale where the baselines rank "
                              "differently (Spearman ρ = 0.20 over 5 methods at 98%, published point 98.2%)")
    same_order = {m: v - 1.0 for m, v in PUBLISHED_VGG.items()}
    at_scale = calibrate_target(_results({0.0: {"dense": 93.0}, 0.98: same_order}), published)
    text = regime_sentence(at_scale)
    assert "at the published scale and the baselines rank as published (Spearman ρ = 1.00" in text
    reversed_order = {m: 100 - v for m, v in PUBLISHED_VGG.items()}
    text = regime_sentence(calibrate_target(_results({0.0: {"dense": 93.0}, 0.98: reversed_order}), published))
    assert "published scale, but the baselines rank differently (Spearman ρ = \u22121.00 over 5" in text
    text = regime_sentence(calibrate_target(_results({0.0: {"dense": 50.0}, 0.98: same_order}), published))
    assert "reduced scale, yet the baselines rank as published" in text
    no_dense = regime_sentence(calibrate_target(_results({0.98: same_order}), published))
    assert no_dense.startswith("VGG-16 (width 16) on CIFAR-10 has no dense run") and "rank as published" in no_dense
    two = regime_sentence(calibrate_target(_results({0.0: {"dense": 50.0}, 0.98: {"snip": 1, "grasp": 2}}), published))
    assert "too few methods" in two and "ρ" not in two


def test_regime_sentence_quotes_the_lowest_rho_and_says_when_uncalibrated() -> None:
    published = _published({0.9: {"random": 1.0, "snip": 2.0, "synflow": 3.0},
                            0.982: {"random": 1.0, "snip": 2.0, "synflow": 3.0}})
    ours = {0.0: {"dense": 93.0}, 0.9: {"random": 1.0, "snip": 2.0, "synflow": 3.0},
            0.98: {"random": 3.0, "snip": 2.0, "synflow": 1.0}}
    text = regime_sentence(calibrate_target(_results(ours), published))
    assert "rank differently (Spearman ρ = \u22121.00 over 3 methods at 98%" in text  # not the 1.00 at 90%
    other = regime_sentence(calibrate_target(_results(ours, {"model": "resnet18", "dataset": "cifar10"}), published))
    assert other == "No published numbers cover ResNet-18 on CIFAR-10: this target's regime is not calibrated."
    assert "records no model" in regime_sentence(calibrate_target(_results(ours, {}), published))
    unmatched = calibrate_target(_results({0.5: {"snip": 40.0}}), published)
    assert unmatched.covered and not unmatched.lines and "match none of its runs" in regime_sentence(unmatched)


# --------------------------------------------------------------------------- the published file


def test_published_file_parses_with_registered_names() -> None:
    from autos.data import DATASETS
    from autos.models import MODELS
    from autos.pruners import PRUNERS

    points = read_published(PUBLISHED_FILE)
    assert {p.method for p in points} <= {*PRUNERS.names(), "dense"}
    assert {p.model for p in points} <= set(MODELS.names())
    assert {p.dataset for p in points} <= {*DATASETS.names(), "cifar100"}  # CIFAR-100: published only
    pairs = {(p.dataset, p.model) for p in points}
    assert {("cifar10", "vgg16_bn"), ("tiny_imagenet", "resnet18")} <= pairs
    for pair in pairs:  # one dense row per model and dataset, every pruned row from 3 seeds where stated
        assert sum(1 for p in points if (p.dataset, p.model) == pair and p.method == "dense") == 1
    assert all(p.source and p.notes and math.isnan(p.std) for p in points)
    assert all("tiny" in p.notes for p in points if p.model == "resnet18")
    assert all("Gaussian" in p.notes for p in points if p.method == "random")


def _section_13a() -> dict[tuple[str, str, str, float], float]:
    """The §13a table of docs/reference/methods.md as {(dataset, model, method, sparsity): accuracy %}."""
    text = (REPO / "docs/reference/methods.md").read_text()
    section = text[text.index("### 13a."):text.index("### 13b.")]
    names = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "Tiny-ImageNet": "tiny_imagenet",
             "VGG-16-bn": "vgg16_bn", "ResNet-18": "resnet18"}
    table: dict[tuple[str, str, str, float], float] = {}
    dataset = model = ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[1].endswith("%"):
            continue
        if cells[0]:
            head = re.match(r"(\S+) / (\S+) \(dense ≈([\d.]+)\)", cells[0])
            assert head is not None, cells[0]
            dataset, model = names[head[1]], names[head[2]]
            table[(dataset, model, "dense", 0.0)] = float(head[3])
        sparsity = round(float(cells[1].rstrip("%")) / 100, 6)
        for method, cell in zip(METHODS, cells[2:], strict=True):
            table[(dataset, model, method, sparsity)] = float(cell.strip("*").split()[0])
    number = r"(\d+(?:\.\d+)?)"
    prose = re.search(rf"at 99\.9% on CIFAR-10 / VGG-16: Random {number}, Magnitude {number}, SNIP {number},\s+"
                      rf"GraSP {number}, SynFlow {number}", section)
    assert prose is not None
    table.update({("cifar10", "vgg16_bn", m, 0.999): float(v) for m, v in zip(METHODS, prose.groups(), strict=True)})
    return table


def test_published_file_holds_exactly_the_numbers_of_methods_md_13a() -> None:
    digest = _section_13a()
    assert len(digest) == 6 + 5 * (5 + 4 + 3 + 3 + 3 + 3)
    points = {(p.dataset, p.model, p.method, p.sparsity): p.accuracy * 100 for p in read_published(PUBLISHED_FILE)}
    assert points.keys() == digest.keys()
    assert all(points[key] == pytest.approx(value, abs=1e-9) for key, value in digest.items())


def _csv(*rows: str) -> str:
    return "\n".join([",".join(PUBLISHED_COLUMNS), *rows]) + "\n"


@pytest.mark.parametrize(("text", "message"), [
    ("a,b\n", r"line 1: the header must be"),
    (_csv("cifar10,vgg16_bn,snip,0.9,92.3,,3,paper,", "cifar10,vgg16_bn,grasp,0.9,high,,3,paper,"),
     r"line 3: accuracy 'high' is not a number"),
    (_csv("cifar10,vgg16_bn,snip,0.9,192.3,,3,paper,"), r"line 2: accuracy 192.3 is outside \[0, 100\]"),
    (_csv("cifar10,vgg16_bn,snip,0.9,92,,3,p,", "cifar10,vgg16_bn,snip,0.9,93,,3,p,"), r"line 3: a second row"),
    (_csv("cifar10,vgg16_bn,dense,0.5,92,,,p,"), r"line 2: only the dense row has sparsity 0"),
    (_csv("cifar10,vgg16_bn,snip,0,92,,,p,"), r"line 2: only the dense row has sparsity 0"),
    (_csv("cifar10,vgg16_bn,snip,0.9,92,,2.5,p,"), r"line 2: n 2.5 is not a whole number"),
    (_csv("cifar10,vgg16_bn,snip,0.9,92"), r"line 2: expected 9 fields"),
    (_csv(",vgg16_bn,snip,0.9,92,,3,p,"), r"line 2: dataset is empty"),
])
def test_a_malformed_published_file_is_a_data_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(DataError, match=r"^pub\.csv, " + message):
        parse_published(text, "pub.csv")


def test_published_file_units() -> None:
    (point,) = parse_published(_csv('cifar10,vgg16_bn,snip,0.944,91.79,0.4,3,"paper, table 2",note'))
    assert (point.sparsity, point.accuracy, point.std, point.n, point.source) == (
        0.944, pytest.approx(0.9179), pytest.approx(0.004), 3, "paper, table 2")


# --------------------------------------------------------------------------- the report section and the stage


def test_calibration_section_in_a_built_report(tmp_path: Path) -> None:
    results = {"vgg": _default_vgg()}
    published = _published({0.982: PUBLISHED_VGG})
    files = build_report(results, None, None, tmp_path / "r", records=RECORDS, published=published)
    out = tmp_path / "r"
    assert {out / "calibration.md", out / "calibration.csv"} <= set(files)
    sentence = regime_sentence(calibrate_target(results["vgg"], published))
    summary = (out / "summary.md").read_text()
    assert "## Calibration against published numbers" in summary and f"> **vgg.** {sentence}" in summary
    verdicts = summary.index(" vs the best single-shot baseline\n")
    assert summary.index("## Calibration") < verdicts < summary.index("## Transfer")
    assert {"calibration.md", "calibration.csv"} <= set(relative_links(summary))
    page = (out / "calibration.md").read_text()
    assert sentence in page and "| snip | 98% | 40.7 (n=1) | 90.6 (n=3) | 98.2% | \u221249.9 |" in page
    assert "Spearman ρ = 0.20 over 5 methods at 98%, published point 98.2% (random, magnitude, snip" in page
    with (out / "calibration.csv").open(newline="") as fh:
        lines = {r["method"]: r for r in csv.DictReader(fh)}
    assert set(lines) == {"dense", *METHODS}
    assert (lines["snip"]["published_sparsity"], lines["snip"]["diff_pp"], lines["snip"]["spearman_rho"]) == \
        ("0.982", "-49.94", "0.2")
    assert lines["dense"]["spearman_rho"] == "" and lines["dense"]["published_n"] == ""

    build_report(results, None, None, tmp_path / "none", records=RECORDS)  # no published numbers
    assert NO_PUBLISHED in (tmp_path / "none" / "summary.md").read_text()
    assert NO_PUBLISHED in (tmp_path / "none" / "calibration.md").read_text()
    assert (tmp_path / "none" / "calibration.csv").read_text().count("\n") == 1  # the header only


def test_stage_reads_the_published_file_from_the_root(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from autos.pipeline.report import PUBLISHED_ACCURACIES, read_published_accuracies

    assert (REPO / PUBLISHED_ACCURACIES).is_file()
    found = read_published_accuracies(REPO)
    assert found is not None and [(p.model, p.method, p.sparsity, p.accuracy) for p in found] == \
        [(p.model, p.method, p.sparsity, p.accuracy) for p in read_published(PUBLISHED_FILE)]
    with caplog.at_level(logging.WARNING, logger="autos.stage.report"):
        assert read_published_accuracies(tmp_path) is None
    assert "published_accuracies.csv not found" in caplog.text
    bad = tmp_path / PUBLISHED_ACCURACIES
    bad.parent.mkdir(parents=True)
    bad.write_text(_csv("cifar10,vgg16_bn,snip,0.9,oops,,3,p,"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(bad))}, line 2: accuracy 'oops'"):
        read_published_accuracies(tmp_path)
