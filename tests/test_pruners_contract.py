"""The pruner contract, parametrized over EVERY registered method, with its fast settings (tests/fast_settings.py):
masks for exactly the prunable parameters (in order, on the CPU, bool, right shapes), the kept count (exact for a
global selection, per-layer rounding for a layer-wise one, one channel's cost for a structured one), no layer
emptied at 90% sparsity, finite scores, the selection scope recorded (a score method's is its ``scope`` setting),
flat info (and the epochs a method that trains spent), a complete state_dict if weights are returned, the model
unchanged, and masks, scores and weights deterministic under a seed. Once on VGG-16-bn with the classifier, once
on ResNet-18 without it (``include_classifier=False``).
Method-specific known answers live in test_pruners_pai.py, test_pruners_trained.py and test_pruners_selection.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TinyData  # noqa: E402  (the shared synthetic ImageData)
from fast_settings import FAST_RECIPE, fixed_scorer, make_pruner

from autos.masking import kept_count
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, PruneResult, ScorePruner
from autos.pruners.pruning_from_scratch import gate_groups

DENSITY = 0.1  # 90% sparsity: low enough that a method which empties a layer of these models shows it
STRUCTURED = {"pruning_from_scratch"}  # whole channels: the achieved density is reported, not exact
SCORER = fixed_scorer()  # an untrained but fixed scorer: the contract does not depend on its quality


def _ctx(data: TinyData, arch: str, include_classifier: bool, cache_dir: Path) -> PruneContext:
    build = lambda s: build_model(arch, num_classes=4, width=4, input_size=32, seed=s)  # noqa: E731
    return PruneContext(model=build(0), data=data, recipe=FAST_RECIPE, device=torch.device("cpu"), seed=0,
                        num_classes=4, include_classifier=include_classifier, build_model=build,
                        cache_dir=cache_dir, scorer=SCORER)


def _channel_cost(ctx: PruneContext) -> int:
    """Most prunable weights one gated channel carries (its conv's out-row plus its consumer's in-column)."""
    params = dict(ctx.model.named_parameters())
    return max(params[g.producer][0].numel() + params[g.consumer][:, 0].numel() for g in gate_groups(ctx.model))


def _check(method: str, ctx: PruneContext, result: PruneResult, before: dict[str, torch.Tensor]) -> None:
    """Every assertion of the contract on one result (``before``: ctx.model's state before pruning)."""
    pruner = make_pruner(method)
    params = dict(ctx.model.named_parameters())
    names = ctx.prunable_names()
    assert list(result.masks) == names, "masks for exactly the prunable parameters, in the model's order"
    for n, mask in result.masks.items():
        assert mask.dtype == torch.bool and mask.shape == params[n].shape and mask.device.type == "cpu", n
    assert all(bool(m.any()) for m in result.masks.values()), "a layer was emptied at 90% sparsity"
    total = sum(params[n].numel() for n in names)
    kept = sum(int(m.sum()) for m in result.masks.values())
    if method in STRUCTURED:
        assert result.info["params_pruned"] == kept and result.info["params_dense"] == total
        assert abs(result.info["achieved_density"] - DENSITY) <= _channel_cost(ctx) / total
        assert 0 < result.info["macs_pruned"] < result.info["macs_dense"]
    elif result.scope == "layerwise":  # every layer rounds its own count: at most one weight per layer off
        assert abs(kept - kept_count(total, DENSITY)) <= len(names), (kept, kept_count(total, DENSITY))
    else:
        assert kept == kept_count(total, DENSITY)
    assert result.scope in ("global", "layerwise"), "every method records the scope it selected with"
    if isinstance(pruner, ScorePruner):
        assert result.scope == pruner.settings.scope
    if result.scores is not None:
        assert list(result.scores) == names
        assert all(torch.isfinite(s).all() and s.shape == params[n].shape for n, s in result.scores.items())
    assert all(isinstance(v, (int, float, str)) for v in result.info.values()), "info is logged as flat values"
    if pruner.kind != "pai" or method in STRUCTURED:  # it trains: the epochs it cost are part of the record
        assert "extra_epochs" in result.info and "dense_epochs" in result.info
    after = ctx.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a pruner modified ctx.model"
    if result.state_dict is not None:
        assert result.state_dict.keys() == after.keys(), "weights to train from: a complete state_dict"


@pytest.mark.parametrize("method", PRUNERS.names())
def test_contract(method: str, tiny_data: TinyData, tmp_path: Path) -> None:
    ctx = _ctx(tiny_data, "vgg16_bn", True, tmp_path / "first")
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    result = make_pruner(method).prune(ctx, DENSITY)
    _check(method, ctx, result, before)

    again = make_pruner(method).prune(_ctx(tiny_data, "vgg16_bn", True, tmp_path / "again"), DENSITY)
    assert all(torch.equal(result.masks[n], again.masks[n]) for n in result.masks), "masks not deterministic"
    if result.scores is not None:
        assert again.scores is not None
        assert all(torch.equal(result.scores[n], again.scores[n]) for n in result.scores), "scores not deterministic"
    if result.state_dict is not None:
        assert again.state_dict is not None
        assert all(torch.equal(v, again.state_dict[k]) for k, v in result.state_dict.items()), "weights differ"


@pytest.mark.parametrize("method", PRUNERS.names())
def test_contract_on_resnet18_without_the_classifier(method: str, tiny_data: TinyData, tmp_path: Path) -> None:
    ctx = _ctx(tiny_data, "resnet18", False, tmp_path)
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    result = make_pruner(method).prune(ctx, DENSITY)
    assert "fc.weight" not in result.masks and "conv1.weight" in result.masks  # the last linear is left out
    _check(method, ctx, result, before)
