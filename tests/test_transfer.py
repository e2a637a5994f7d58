"""The transfer loop: every (method, sparsity, seed) row, the sanity-check modifiers, evaluate-only methods."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from autos.config import parse_config
from autos.models import build_model
from autos.transfer import run_target

REPO = Path(__file__).resolve().parents[1]


def _config(methods: list[str], modifiers: list[str], settings: dict) -> object:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=methods, modifiers=modifiers, method_settings=settings, sparsities=[0.5, 0.8],
                           dense=True)
    raw["training"].update(batch_size=16, channels_last="off")
    return parse_config(raw)


def test_rows_modifiers_and_evaluate_only(tiny_data, tmp_path) -> None:
    cfg = _config(["random", "snip", "synflow", "lottery_jackpots"], ["shuffle", "reinit", "invert"],
                  {"snip": {"batch_size": 16}, "synflow": {"iterations": 3},
                   "lottery_jackpots": {"dense_epochs": 1, "search_epochs": 1, "search_batch_size": 16}})
    build = lambda seed: build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=seed)  # noqa: E731
    seen = []
    rows = run_target(cfg, "vgg16_cifar10", tiny_data, build=build, device=torch.device("cpu"), resources={},
                      cache_dir=tmp_path, on_result=lambda run, row, result: seen.append(run.name))
    assert len(seen) == len(rows)
    by_key = {(r["method"], r["modifier"], r["sparsity"]): r for r in rows}
    assert ("dense", "", 0.0) in by_key
    for sparsity in (0.5, 0.8):
        # score-based methods get all three checks; synflow/jackpots have no re-rankable scores: no invert
        for method in ("random", "snip"):
            assert {m for (meth, m, s) in by_key if meth == method and s == sparsity} == {"", "shuffle", "reinit", "invert"}
        for method in ("synflow", "lottery_jackpots"):
            assert {m for (meth, m, s) in by_key if meth == method and s == sparsity} == {"", "shuffle", "reinit"}
        base, shuffled = by_key[("snip", "", sparsity)], by_key[("snip", "shuffle", sparsity)]
        for layer, density in base["layer_density"].items():  # shuffle keeps per-layer densities exactly
            assert abs(shuffled["layer_density"][layer] - density) < 1e-12
        for row in rows:
            if row["method"] != "dense":
                assert abs(row["achieved_sparsity"] - row["sparsity"]) < 0.01
                assert row["pruned_nonzero_after_training"] == 0
                assert isinstance(row["collapsed"], bool) and row["effective_sparsity"] >= row["achieved_sparsity"] - 1e-12
        jackpot = by_key[("lottery_jackpots", "", sparsity)]
        assert jackpot["epochs"] == 0 and jackpot["info"]["kind"] == "trained"  # evaluated, not tuned (paper protocol)
        assert by_key[("lottery_jackpots", "reinit", sparsity)]["epochs"] == 1  # fresh weights are trained
        assert by_key[("snip", "", sparsity)]["epochs"] == 1
