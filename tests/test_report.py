"""The study report on synthetic results: CSV shape, mean ± std cells, collapse markers, PNGs, summary links, the
source named up front, typed rows."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autos.errors import DataError
from autos.registry import MethodRecord
from autos.report import (
    COLLAPSE_MARK,
    DROPPED_KEYS,
    RESULT_COLUMNS,
    Source,
    build_report,
    load_results,
    relative_links,
    results_frame,
    scorer_table,
)
from autos.sweep.records import RunRow

TARGETS = ["vgg_c10", "resnet_tin"]
METHODS = ["autos", "random", "snip"]
SPARSITIES = [0.9, 0.98]
SEEDS = [0, 1]
COLLAPSED = ("resnet_tin", "snip", 0.98, 1)  # (target, method, sparsity, seed) of the one collapsed run
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RECORDS = {name: MethodRecord(name=name, title=title, kind="pai", needs_data=False, reads_scorer=False,
                              settings=object, module="tests")
           for name, title in [("autos", "AutoS"), ("random", "Random"), ("snip", "SNIP")]}
SOURCE = Source(model="resnet18", dataset="cifar10", width=4,
                irp={"num_rounds": 2, "final_density": 0.2, "schedule": "linear", "epochs_per_round": None})


def _acc(target: str, method: str, sparsity: float, seed: int) -> float:
    """A known, distinct accuracy per run (fraction)."""
    base = {"autos": 0.80, "random": 0.60, "snip": 0.70}[method] - (sparsity - 0.9) * 2
    return round(base - 0.1 * TARGETS.index(target) + 0.02 * seed, 6)


def _pruned_row(target: str, method: str, sparsity: float, seed: int) -> dict[str, Any]:
    collapsed = (target, method, sparsity, seed) == COLLAPSED
    acc = 0.1 if collapsed else _acc(target, method, sparsity, seed)
    return {"target": target, "method": method, "modifier": "", "sparsity": sparsity, "seed": seed,
            "achieved_sparsity": sparsity, "achieved_density": 1 - sparsity,
            "min_layer_density": 0.0 if collapsed else 0.01,
            "empty_layers": ["fc.weight"] if collapsed else [], "layer_density": {"conv.weight": 1 - sparsity},
            "effective_sparsity": min(1.0, sparsity + 0.003), "collapsed": collapsed,
            "pruned_nonzero_after_training": 0, "final_test_acc": acc, "best_test_acc": acc + 0.01,
            "best_epoch": 3, "final_test_loss": 1.0, "train_seconds": 10.0, "train_images_per_second": 500.0,
            "select_seconds": 0.5, "info": {"iterations": 1}, "epochs": 4}


def _dense_row(target: str, seed: int) -> dict[str, Any]:
    return {"target": target, "method": "dense", "modifier": "", "sparsity": 0.0, "seed": seed,
            "final_test_acc": 0.9 + 0.01 * seed, "best_test_acc": 0.92, "best_epoch": 4, "final_test_loss": 0.5,
            "train_seconds": 9.0, "train_images_per_second": 600.0, "select_seconds": 0.0, "info": {}, "epochs": 4}


def _write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    paths = []
    for target in TARGETS:
        rows = []
        for seed in SEEDS:
            rows.append(_dense_row(target, seed))
            rows += [_pruned_row(target, m, s, seed) for m in METHODS for s in SPARSITIES]
        spec = {"model": "vgg16_bn", "width": 16, "dataset": "cifar10", "epochs": None}
        paths.append(_write(tmp_path / "data/transfer" / target / "results.json",
                            {"target": target, "spec": spec, "rows": rows}))
    rounds = [{"round": r, "requested_density": 0.5 ** r, "density": 0.5 ** r, "min_layer_density": 0.5 ** r,
               "final_test_acc": 0.9 - 0.05 * r, "best_test_acc": 0.91 - 0.05 * r, "train_seconds": 5.0}
              for r in range(4)]
    curve = _write(tmp_path / "data/irp/curve.json", {"num_rounds": 3, "rounds": rounds})
    metric = {"spearman": 0.5, "mse": 0.1, "auc_all_rounds": 0.7, "topk_overlap_d0.1": 0.4}
    scorer = _write(tmp_path / "metrics/scorer.json", {
        "scorer": metric, "holdout_rows": 100,
        "baselines": {b: {k: v / 2 for k, v in metric.items() if k != "mse"}
                      for b in ("abs_w0", "abs_g0", "abs_w0_x_g0", "random")}})
    return {"results_dir": tmp_path / "data/transfer", "curve": curve, "scorer": scorer, "out": tmp_path / "reports",
            **{t: p for t, p in zip(TARGETS, paths, strict=True)}}


def _build(inputs: dict[str, Path], with_scorer: bool = True, source: Source | None = SOURCE) -> list[Path]:
    results = load_results(sorted(inputs["results_dir"].glob("*/results.json")))
    curve = json.loads(inputs["curve"].read_text())
    scorer = json.loads(inputs["scorer"].read_text()) if with_scorer else None
    return build_report(results, curve, scorer, inputs["out"], records=RECORDS, source=source)


def _table(markdown: str, title: str) -> list[list[str]]:
    """The Markdown table that follows the bold ``title`` line, as cell lists (header first, no align row)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"**{title}"))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            if rows:
                break
            continue
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return [rows[0]] + rows[2:]


def _cell(table: list[list[str]], method: str, column: str) -> str:
    header = table[0]
    row = next(r for r in table[1:] if r[0] == method)
    return row[header.index(column)]


def test_results_csv_has_one_line_per_run(inputs: dict[str, Path]) -> None:
    _build(inputs)
    with (inputs["out"] / "results.csv").open(newline="") as fh:
        lines = list(csv.reader(fh))
    header, body = lines[0], lines[1:]
    runs = len(TARGETS) * len(SEEDS) * (1 + len(METHODS) * len(SPARSITIES))
    assert len(body) == runs == 28
    assert len(set(header)) == len(header)
    assert all(len(line) == len(header) for line in body)
    assert {"target", "method", "modifier", "sparsity", "seed", "final_test_acc", "best_test_acc",
            "achieved_sparsity", "effective_sparsity", "collapsed", "empty_layers"} <= set(header)
    assert not {"layer_density", "info"} & set(header)
    frame = results_frame(load_results([inputs[t] for t in TARGETS]))
    assert list(frame.columns) == header and len(frame) == runs
    collapsed = [line for line in body if line[header.index("collapsed")] == "True"]
    assert len(collapsed) == 1 and collapsed[0][header.index("empty_layers")] == "fc.weight"
    assert {line[header.index("seed")] for line in body} == {"0", "1"}  # integers stay integers


def test_cell_shows_mean_and_std_over_seeds(inputs: dict[str, Path]) -> None:
    _build(inputs)
    markdown = (inputs["out"] / "vgg_c10.md").read_text()
    values = [_acc("vgg_c10", "random", 0.98, s) * 100 for s in SEEDS]
    mean = sum(values) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    final = _table(markdown, "Final-epoch")
    assert _cell(final, "random", "98%") == f"{mean:.1f} ± {std:.1f} (n=2)"
    assert _cell(final, "dense", "dense (0%)") == f"{90.5:.1f} ± {math.sqrt(0.5):.1f} (n=2)"
    assert _cell(final, "dense", "90%") == "—" and _cell(final, "autos", "dense (0%)") == "—"
    best = _table(markdown, "Best-epoch")
    assert _cell(best, "random", "98%") == f"{mean + 1:.1f} ± {std:.1f} (n=2)"
    assert [r[0] for r in final[1:]] == ["dense", *METHODS]
    with (inputs["out"] / "vgg_c10.csv").open(newline="") as fh:
        wide = list(csv.reader(fh))
    assert wide == final  # the CSV twin of the Markdown table
    with (inputs["out"] / "vgg_c10_cells.csv").open(newline="") as fh:
        cells = {(r["label"], float(r["sparsity"])): r for r in csv.DictReader(fh)}
    assert float(cells[("random", 0.98)]["final_test_acc_mean"]) == pytest.approx(mean / 100)
    assert float(cells[("random", 0.98)]["final_test_acc_std"]) == pytest.approx(std / 100)


def test_collapse_marker_only_on_the_collapsed_cell(inputs: dict[str, Path]) -> None:
    _build(inputs)
    target, method, sparsity, _ = COLLAPSED
    for name in TARGETS:
        markdown = (inputs["out"] / f"{name}.md").read_text()
        for title in ("Final-epoch", "Best-epoch"):
            table = _table(markdown, title)
            marked = [(r[0], table[0][i]) for r in table[1:] for i, c in enumerate(r) if COLLAPSE_MARK in c]
            assert marked == ([(method, f"{sparsity * 100:g}%")] if name == target else [])
        assert (COLLAPSE_MARK in markdown) == (name == target)  # the footnote only where a cell is marked
    assert "‡" not in (inputs["out"] / "vgg_c10.md").read_text()  # achieved == requested everywhere


def test_pngs_are_valid_and_nontrivial(inputs: dict[str, Path]) -> None:
    _build(inputs)
    for name in [*TARGETS, *(f"{t}_layers" for t in TARGETS), "irp_curve"]:
        data = (inputs["out"] / "figures" / f"{name}.png").read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 5_000
        assert (inputs["out"] / "svg" / f"{name}.svg").stat().st_size > 5_000  # its vector twin
    assert not (inputs["out"] / "figures" / "vgg_c10_sanity.png").exists()  # no modifiers ran
    assert {p.suffix for p in (inputs["out"] / "figures").iterdir()} == {".png"}  # dvc's image plots: PNGs only


def test_summary_links_exist_and_sections_present(inputs: dict[str, Path]) -> None:
    files = _build(inputs)
    summary = inputs["out"] / "summary.md"
    assert summary in files and all(p.exists() for p in files)
    text = summary.read_text()
    links = relative_links(text)
    assert {"results.csv", "figures/vgg_c10.png", "figures/resnet_tin.png", "vgg_c10.md", "figures/irp_curve.png",
            "figures/vgg_c10_layers.png", "svg/vgg_c10.svg", "paired.csv", "verdicts.json"} <= set(links)
    assert all((inputs["out"] / link).is_file() for link in links)
    for section in ("How to read", "Source IRP curve", "Scorer vs trivial baselines", "abs_w0_x_g0", "spearman",
                    "AutoS vs the best single-shot baseline", "Paired difference to AutoS"):
        assert section in text
    plots = inputs["out"] / "plots" / "vgg_c10.csv"
    with plots.open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["sparsity", "method", "final_test_acc", "std", "n"]
    assert len(lines) == 1 + 1 + len(METHODS) * len(SPARSITIES)
    assert (inputs["out"] / "irp_curve.csv").read_text().count("\n") == 1 + 4


def test_missing_scorer_metrics_and_curve_are_handled(inputs: dict[str, Path], tmp_path: Path) -> None:
    _build(inputs, with_scorer=False)
    text = (inputs["out"] / "summary.md").read_text()
    assert "No scorer metrics found" in text
    assert all((inputs["out"] / link).is_file() for link in relative_links(text))
    empty = build_report({}, None, None, tmp_path / "empty", records=RECORDS)
    assert (tmp_path / "empty" / "summary.md") in empty
    assert "No IRP curve found" in (tmp_path / "empty" / "summary.md").read_text()
    assert scorer_table(None) is None and scorer_table({"holdout_rows": 3}) is None


def test_source_ticket_section_and_figure(inputs: dict[str, Path]) -> None:
    ticket = {"density": 0.1, "overlap": {"autos": 0.61, "abs_w0": 0.6, "random": 0.1},
              "layers": [{"layer": "conv1.weight", "weights": 432, "irp_ticket": 0.4, "autos": 0.0, "abs_w0": 0.2},
                         {"layer": "fc.weight", "weights": 640, "irp_ticket": 0.05, "autos": 0.1, "abs_w0": 0.08}]}
    results = load_results(sorted(inputs["results_dir"].glob("*/results.json")))
    files = build_report(results, None, None, inputs["out"], ticket, records=RECORDS)
    assert inputs["out"] / "figures" / "source_ticket.png" in files
    assert (inputs["out"] / "svg" / "source_ticket.svg").is_file()
    text = (inputs["out"] / "summary.md").read_text()
    assert "AutoS's mask keeps 61.0% of the ticket, |w0|'s 60.0% and a random mask 10.0%" in text
    assert "| conv1 | 432 | 0.4000 | 0.0000 | 0.2000 |" in text
    assert all((inputs["out"] / link).is_file() for link in relative_links(text))
    build_report(results, None, None, inputs["out"] / "none", records=RECORDS)
    assert "No source ticket diagnostics" in (inputs["out"] / "none" / "summary.md").read_text()


def test_scorer_table_is_tolerant_of_shape() -> None:
    table = scorer_table({"scorer": {"spearman": 0.5, "overlap@0.1": float("nan")},
                          "baselines": {"abs_w0": {"spearman": 0.4}}, "note": "text"})
    assert table is not None
    assert table.header == ["metric", "scorer", "abs_w0"]
    assert table.rows == [["spearman", "0.5000", "0.4000"], ["overlap@0.1", "—", "—"]]


def test_results_columns_keep_their_order_and_cover_every_row_field() -> None:
    # the column order of results.csv is a contract (readers index it): today's order, exactly (source and
    # final_val_acc appear only when a row has them: a study without them writes the same bytes as before)
    assert RESULT_COLUMNS == [
        "target", "method", "modifier", "label", "sparsity", "seed", "source", "final_test_acc", "final_val_acc",
        "best_test_acc", "best_epoch",
        "achieved_sparsity", "achieved_density", "effective_sparsity", "min_layer_density", "collapsed",
        "num_empty_layers", "empty_layers", "pruned_nonzero_after_training", "final_test_loss", "epochs",
        "train_seconds", "select_seconds", "train_images_per_second"]
    dicts = {name for name, f in RunRow.model_fields.items() if "dict" in str(f.annotation)}
    assert dicts == DROPPED_KEYS  # the dict-valued fields are the only ones left out of results.csv
    missing = [name for name in RunRow.model_fields if name not in DROPPED_KEYS and name not in RESULT_COLUMNS]
    assert not missing, f"RunRow fields without a results.csv column: {missing}"


def test_a_bad_row_is_a_data_error_naming_the_file_and_the_row(inputs: dict[str, Path]) -> None:
    path = inputs["vgg_c10"]
    payload = json.loads(path.read_text())
    payload["rows"][3]["final_test_acc"] = 1.5  # out of range
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=rf"{path}, row 3 is not a valid result row \(final_test_acc"):
        load_results([path])
    path.write_text("{not json")
    with pytest.raises(DataError, match=f"{path}: not valid JSON"):
        load_results([path])


def test_rows_are_read_as_typed_rows(inputs: dict[str, Path]) -> None:
    results = load_results([inputs[t] for t in TARGETS])
    assert list(results) == sorted(TARGETS)
    rows = results["resnet_tin"].rows
    assert all(isinstance(r, RunRow) for r in rows) and len(rows) == 14
    assert [(r.label, r.sparsity, r.seed) for r in rows if r.is_collapsed] == [("snip", 0.98, 1)]
    assert results["vgg_c10"].spec == {"model": "vgg16_bn", "width": 16, "dataset": "cifar10", "epochs": None}


def test_summary_names_the_source_first(inputs: dict[str, Path]) -> None:
    _build(inputs)
    lines = (inputs["out"] / "summary.md").read_text().splitlines()
    assert lines[0] == "# AutoS study report"
    assert lines[2] == ("**Source.** ResNet-18 (width 4) on CIFAR-10 (model=resnet18, width=4, dataset=cifar10): IRP "
                        "ran on this model and the AutoS scorer learned from its surviving weights; every target's "
                        "AutoS masks come from that scorer. IRP: num_rounds=2, final_density=0.2, schedule=linear.")
    _build(inputs, source=None)  # not given: said so, in the same place
    lines = (inputs["out"] / "summary.md").read_text().splitlines()
    assert lines[2].startswith("**Source.** Not given to the report")


def test_report_imports_no_torch_nor_mlflow() -> None:
    code = ("import sys\nimport autos.report\n"
            "heavy = sorted(m for m in ('torch', 'mlflow', 'autos.pruners') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
