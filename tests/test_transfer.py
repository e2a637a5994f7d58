"""The transfer loop: every (method, sparsity, seed) row, the sanity-check modifiers, evaluate-only methods."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TinyData, make_tiny_data  # noqa: E402  (the shared synthetic ImageData)

import autos.sweep.run_cell as transfer_module
from autos.masking import select_mask
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.study import parse_study
from autos.sweep import modifiers
from autos.sweep.modifiers import MODIFIERS
from autos.sweep.plan import plan_cells
from autos.sweep.run_cell import run_cell
from autos.training.batches import dataset_classes

REPO = Path(__file__).resolve().parents[1]


def run_target(cfg, target: str, data, *, build, cache_dir: Path) -> list[dict]:  # noqa: ANN001
    """Every row of a target's cells in this process (the stage runs the same cells through autos.sweep.executors)."""
    return [row.to_json() for key in plan_cells(cfg, target)
            for row in run_cell(cfg, key, data, build=build, device=torch.device("cpu"), cache_dir=cache_dir).rows]


def _config(methods: list[str], modifiers: list[str], settings: dict, variants: dict | None = None) -> object:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=methods, modifiers=modifiers, method_settings=settings, sparsities=[0.5, 0.8],
                           dense=True, variants=variants or {})
    raw["training"].update(batch_size=16)
    return parse_study(raw)


def test_rows_modifiers_and_evaluate_only(tiny_data, tmp_path) -> None:
    # SynFlow with 3 rounds is a variant of its own name (synflow is 100): the rows say which ran
    cfg = _config(["random", "snip", "synflow3", "lottery_jackpots"], ["shuffle", "reinit", "invert"],
                  {"snip": {"batch_size": 16},
                   "lottery_jackpots": {"dense_epochs": 1, "search_epochs": 1, "search_batch_size": 16}},
                  variants={"synflow3": {"method": "synflow", "settings": {"iterations": 3}}})
    build = lambda seed: build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=seed)  # noqa: E731
    rows = run_target(cfg, "vgg16_cifar10", tiny_data, build=build, cache_dir=tmp_path)
    by_key = {(r["method"], r["modifier"], r["sparsity"]): r for r in rows}
    assert ("dense", "", 0.0) in by_key
    for sparsity in (0.5, 0.8):
        # score-based methods get all three checks; synflow/jackpots have no re-rankable scores: no invert
        for method in ("random", "snip"):
            variants = {m for (meth, m, s) in by_key if meth == method and s == sparsity}
            assert variants == {"", "shuffle", "reinit", "invert"}
        for method in ("synflow3", "lottery_jackpots"):
            assert {m for (meth, m, s) in by_key if meth == method and s == sparsity} == {"", "shuffle", "reinit"}
        base, shuffled = by_key[("snip", "", sparsity)], by_key[("snip", "shuffle", sparsity)]
        for layer, density in base["layer_density"].items():  # shuffle keeps per-layer densities exactly
            assert abs(shuffled["layer_density"][layer] - density) < 1e-12
        for row in rows:
            if row["method"] != "dense":
                assert abs(row["achieved_sparsity"] - row["sparsity"]) < 0.01
                assert row["pruned_nonzero_after_training"] == 0
                assert isinstance(row["collapsed"], bool)
                assert row["effective_sparsity"] >= row["achieved_sparsity"] - 1e-12
        jackpot = by_key[("lottery_jackpots", "", sparsity)]
        assert jackpot["epochs"] == 0 and jackpot["info"]["kind"] == "trained"  # evaluated, not tuned (paper protocol)
        assert by_key[("lottery_jackpots", "reinit", sparsity)]["epochs"] == 1  # fresh weights are trained
        assert by_key[("snip", "", sparsity)]["epochs"] == 1


# --------------------------------------------------------------------------- invert keeps the method's scope


def _layer_counts(masks) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masks.items()}


def _ctx(data, seed: int = 0) -> PruneContext:
    from autos.config import TrainRecipe

    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=seed)
    return PruneContext(model=model, data=data, recipe=TrainRecipe(epochs=1, batch_size=16),
                        device=torch.device("cpu"), seed=seed, num_classes=4)


@pytest.mark.parametrize("method,settings", [("random", {}), ("magnitude", {"scope": "layerwise"})])
@pytest.mark.parametrize("density", [0.5, 0.2, 0.05])
def test_invert_of_a_layerwise_method_keeps_every_layer_count(tiny_data, method, settings, density) -> None:
    pruner = PRUNERS.get(method)(PRUNERS.get(method).Settings(**settings))
    ctx = _ctx(tiny_data)
    result = pruner.prune(ctx, density)
    assert result.scope == "layerwise"  # recorded by the method; the modifier reads it
    inverted, _ = MODIFIERS.get("invert").variant(result, ctx, density, 1)
    assert _layer_counts(inverted) == _layer_counts(result.masks)
    assert not any(bool((inverted[n] & result.masks[n]).any()) for n in inverted)  # the lowest scores, disjoint


def test_invert_of_a_global_method_stays_global(tiny_data) -> None:
    pruner = PRUNERS.get("magnitude")(PRUNERS.get("magnitude").Settings(scope="global"))
    ctx = _ctx(tiny_data)
    result = pruner.prune(ctx, 0.2)
    inverted, _ = MODIFIERS.get("invert").variant(result, ctx, 0.2, 1)
    expected = modifiers.invert(result.scores, 0.2, "global")
    assert all(torch.equal(inverted[n], m) for n, m in expected.items())
    assert _layer_counts(inverted) != _layer_counts(result.masks)  # global magnitude shifts the per-layer budget


def test_selection_scope_reads_the_mask_when_the_method_has_no_setting(tiny_data) -> None:
    ctx = _ctx(tiny_data)
    scores = PRUNERS.get("magnitude")().score(ctx)
    for scope in ("layerwise", "global"):
        masks = select_mask(scores, 0.2, scope=scope)
        assert modifiers.selection_scope(masks, 0.2) == scope
    assert modifiers.selection_scope(select_mask(scores, 0.2, scope="global"), 0.2, declared="layerwise") == "layerwise"
    with pytest.raises(ValueError, match="unknown scope"):
        modifiers.selection_scope(scores, 0.2, declared="per-channel")


# --------------------------------------------------------------------------- the class count comes from metadata


@dataclass
class _TenClasses(TinyData):
    """Prepared-like data declaring 10 classes whose training split holds only labels 0..8."""

    @property
    def num_classes(self) -> int:
        return 10


def _ten_classes() -> _TenClasses:
    base = make_tiny_data(num_classes=9)
    assert int(base.train_y.max()) == 8
    return _TenClasses(base.train_x, base.train_y, base.test_x, base.test_y)


def test_num_classes_comes_from_the_metadata_not_the_labels(tmp_path, monkeypatch) -> None:
    data = _ten_classes()
    assert dataset_classes(data) == 10
    cfg = _config(["random"], ["invert"], {})
    cfg = cfg.model_copy(update={"transfer": cfg.transfer.model_copy(update={"sparsities": [0.8], "dense": False})})
    contexts = []

    def spy(*args, **kwargs):
        contexts.append(PruneContext(*args, **kwargs))
        return contexts[-1]

    monkeypatch.setattr(transfer_module, "PruneContext", spy)
    models = []

    def build(seed):
        models.append(build_model("vgg16_bn", num_classes=data.num_classes, width=4, input_size=32, seed=seed))
        return models[-1]

    rows = run_target(cfg, "vgg16_cifar10", data, build=build, cache_dir=tmp_path)
    assert {c.num_classes for c in contexts} == {10}
    assert models[0].fc.out_features == 10
    assert all(row["final_test_acc"] >= 0 for row in rows)
    # random is layer-wise: its inverted mask keeps every layer's density (it used global scope before)
    by_modifier = {row["modifier"]: row for row in rows}
    assert by_modifier["invert"]["layer_density"] == by_modifier[""]["layer_density"]


def test_a_model_with_the_wrong_number_of_outputs_is_refused(tmp_path) -> None:
    data = _ten_classes()
    cfg = _config(["random"], [], {})
    build = lambda seed: build_model("vgg16_bn", num_classes=9, width=4, input_size=32, seed=seed)  # noqa: E731
    with pytest.raises(ValueError, match="9 outputs but the dataset has 10 classes"):
        run_target(cfg, "vgg16_cifar10", data, build=build, cache_dir=tmp_path)
