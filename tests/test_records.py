"""``autos.sweep.records``: the one run key and label shared by the transfer loop, its stage and the report."""

from __future__ import annotations

import importlib

import pytest
from rows import make_row

from autos.sweep.cells import CellKey
from autos.sweep.records import RunKey, label_of, run_label, transfer_metrics

ROWS = [
    {"target": "vgg", "method": "snip", "modifier": "", "sparsity": 0.9, "seed": 0},
    {"target": "vgg", "method": "snip", "modifier": "invert", "sparsity": 0.5, "seed": 1},
    {"target": "vgg", "method": "dense", "modifier": "", "sparsity": 0.0, "seed": 0},
    {"method": "random", "sparsity": 0.8, "seed": 2},  # no modifier key at all
    {"method": "magnitude", "modifier": None, "sparsity": 0.99, "seed": 0},
]


def test_labels() -> None:
    assert run_label("snip") == run_label("snip", "") == run_label("snip", None) == "snip"
    assert run_label("snip", "shuffle") == "snip+shuffle"
    assert [label_of(r) for r in ROWS] == ["snip", "snip+invert", "dense", "random", "magnitude"]


def test_label_of_equals_the_reports_run_label() -> None:
    report = importlib.import_module("autos.report")
    if not hasattr(report, "run_label"):
        pytest.skip("autos.report no longer defines run_label (wired to autos.sweep.records.label_of?)")
    assert [label_of(r) for r in ROWS] == [report.run_label(r) for r in ROWS]


def test_run_key_names_and_row_fields() -> None:
    key = RunKey("vgg", "snip", 0.9, 0)
    assert key.name == "snip / s=90% / seed 0" and key.metric_key == "snip@0.9" and key.label == "snip"
    assert key.title == "vgg / snip / s=90% / seed 0" and RunKey("vgg", "dense", 0.0, 1).title == "vgg / dense / seed 1"
    variant = RunKey("vgg", "snip", 0.5, 1, "invert")
    assert variant.name == "snip+invert / s=50% / seed 1" and variant.metric_key == "snip+invert@0.5"
    assert RunKey("vgg", "dense", 0.0, 0).metric_key == "dense"
    # the leading fields of a results row, in the rows' key order (results.json is byte-compared)
    assert list(variant.row_fields().items()) == [("target", "vgg"), ("method", "snip"), ("modifier", "invert"),
                                                  ("sparsity", 0.5), ("seed", 1)]
    assert key.row_fields()["modifier"] == "" and key.tags()["modifier"] == ""
    for row in ROWS[:3]:
        assert RunKey.of_row(row).row_fields() == row  # a row's key round-trips
    assert RunKey.of_row(ROWS[3], target="t").target == "t"
    with pytest.raises(AttributeError):
        key.seed = 3  # type: ignore[misc]  # frozen


def test_transfer_metrics_are_flat_percent_means_over_seeds() -> None:
    rows = [make_row(CellKey("t", "snip", 0.9, s), a) for s, a in ((0, 0.5), (1, 0.6))]
    rows.append(make_row(CellKey("t", "dense", 0.0, 0), 0.7))
    rows.append(make_row(CellKey("t", "snip", 0.9, 0), 0.25, "shuffle"))
    assert transfer_metrics(rows) == {"snip@0.9": 55.0, "dense": 70.0, "snip+shuffle@0.9": 25.0}
