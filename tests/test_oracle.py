"""IRP on the target as an oracle: masks kept only where needed, packed losslessly, overlaps computed per seed,
stored with the cell, and shown in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autos.models import build_model
from autos.pruners import PRUNERS
from autos.report import TargetResults, target_markdown
from autos.study import parse_study
from autos.sweep.cells import CellKey, CellResult, CellStore
from autos.sweep.oracle import keeps_mask, oracle_overlaps, pack_masks, unpack_mask
from autos.sweep.run_cell import run_cell

REPO = Path(__file__).resolve().parents[1]


def test_pack_round_trip_keeps_every_bit_in_order() -> None:
    g = torch.Generator().manual_seed(0)
    masks = {"a": torch.rand(3, 5, generator=g) < 0.3, "b": torch.rand(13, generator=g) < 0.5}
    flat = unpack_mask(pack_masks(masks))
    assert flat.dtype == bool and flat.size == 28
    assert np.array_equal(flat, torch.cat([masks["a"].flatten(), masks["b"]]).numpy())


def test_keeps_mask_only_when_the_oracle_runs() -> None:
    assert keeps_mask(["autos", "irp", "snip"], "autos") and keeps_mask(["autos", "irp"], "irp")
    assert keeps_mask(["magnitude", "irp"], "magnitude")
    assert not keeps_mask(["autos", "irp", "snip"], "snip")
    assert not keeps_mask(["autos", "magnitude"], "autos")  # no oracle: nothing is kept


def test_overlaps_by_sparsity_and_seed() -> None:
    ticket = {"x": torch.tensor([True, True, False, False, False, False, False, True])}
    half = {"x": torch.tensor([True, False, True, False, False, False, False, True])}
    none = {"x": torch.tensor([False, False, True, True, True, False, False, False])}
    records = oracle_overlaps([("irp", 0.6, 0, pack_masks(ticket)), ("autos", 0.6, 0, pack_masks(half)),
                               ("magnitude", 0.6, 0, pack_masks(none)), ("autos", 0.6, 1, pack_masks(half))])
    assert records == [{"method": "autos", "sparsity": 0.6, "seed": 0, "overlap": pytest.approx(2 / 3),
                        "chance": 3 / 8},
                       {"method": "magnitude", "sparsity": 0.6, "seed": 0, "overlap": 0.0, "chance": 3 / 8}]
    with pytest.raises(ValueError, match="weights, the oracle has"):
        oracle_overlaps([("irp", 0.6, 0, pack_masks(ticket)), ("autos", 0.6, 0, pack_masks({"y": torch.ones(3)}))])


def test_cells_keep_the_mask_the_store_round_trips_it_and_the_report_shows_it(tiny_data, tmp_path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=["random", "magnitude", "irp"], modifiers=[], sparsities=[0.7], seeds=[0],
                           dense=False, method_settings={"irp": {"prune_fraction": 0.5}})
    raw["training"].update(batch_size=16, epochs=1)
    cfg = parse_study(raw)
    build = lambda seed: build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=seed)  # noqa: E731
    target = next(iter(cfg.transfer.targets))
    cells = {m: run_cell(cfg, CellKey(target, m, 0.7, 0), tiny_data, build=build, device=torch.device("cpu"),
                         cache_dir=tmp_path)
             for m in ("random", "magnitude", "irp")}
    assert cells["random"].mask is None
    for method in ("magnitude", "irp"):
        kept = unpack_mask(cells[method].mask)
        assert abs(kept.mean() - 0.3) < 0.01 and "mask" not in cells[method].rows[0].to_json()  # not in the rows

    store = CellStore(tmp_path / "cells")
    store.save(CellResult(cells["irp"].key, cells["irp"].rows, cells["irp"].histories, cell_id="c1",
                          mask=cells["irp"].mask))
    loaded = store.load(cells["irp"].key, "c1")
    assert loaded is not None and loaded.mask == cells["irp"].mask

    records = oracle_overlaps((c.key.method, c.key.sparsity, c.key.seed, c.mask) for c in cells.values()
                              if c.mask is not None)
    assert [r["method"] for r in records] == ["magnitude"] and 0.0 <= records[0]["overlap"] <= 1.0
    page = target_markdown(TargetResults(target, tuple(cells["magnitude"].rows), oracle_overlap=tuple(records)),
                           PRUNERS.records())
    assert "Overlap with IRP run on this target" in page
    assert f"| magnitude | 70% | {100 * records[0]['overlap']:.1f} (n=1) | 30 |" in page
