"""The pruner contract, parametrized over EVERY registered method: masks only for prunable parameters, right
shapes and dtype, exact (or reported) kept count, finite scores, the selection scope recorded (a score method's
is its ``scope`` setting), the model unchanged, deterministic under a seed.
Method-specific known answers live in test_pruners_pai.py and test_pruners_trained.py."""

from __future__ import annotations

import math

import pytest
import torch

from autos.config import TrainRecipe
from autos.masking import kept_count, prunable_parameters
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, ScorePruner
from autos.scorer import build_scorer

# Small settings so every method runs in seconds; the defaults are exercised by the default study.
FAST_SETTINGS = {
    "snip": {"batch_size": 16},
    "grasp": {"samples_per_class": 2},
    "synflow": {"iterations": 5},
    "prospr": {"num_steps": 1, "batch_size": 16},
    "kstarts": {"k": 2},
    "dissipating": {"max_epochs": 1},
    "kstarts_dissipating": {"kstarts": {"k": 2}, "dissipating": {"max_epochs": 1}},
    "pruning_from_scratch": {"gate_epochs": 1, "batch_size": 16},
    "lottery_jackpots": {"dense_epochs": 1, "search_epochs": 1, "search_batch_size": 16},
    "irp": {"schedule": "linear", "num_rounds": 2, "epochs_per_round": 1},
}
# Structured methods cannot hit an exact unstructured count; they report the achieved density instead.
DENSITY_TOLERANCE = {"pruning_from_scratch": 0.1}


def _scorer() -> tuple:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net, settings = build_scorer("mlp", {"hidden": [8]})
        net.prepare(torch.randn(256, len(settings.inputs)))
    return net.eval(), "mlp", settings, {}


SCORER = _scorer()  # an untrained but fixed scorer: the contract does not depend on its quality


def _ctx(tiny_data, seed: int, tmp_path) -> PruneContext:
    build = lambda s: build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=s)  # noqa: E731
    return PruneContext(model=build(0), data=tiny_data, recipe=TrainRecipe(epochs=1, batch_size=16),
                        device=torch.device("cpu"), seed=seed, num_classes=4, build_model=build,
                        cache_dir=tmp_path, scorer=SCORER)


@pytest.mark.parametrize("method", PRUNERS.names())
def test_contract(method: str, tiny_data, tmp_path) -> None:
    pruner_cls = PRUNERS.get(method)
    pruner = pruner_cls(pruner_cls.Settings(**FAST_SETTINGS.get(method, {})))
    ctx = _ctx(tiny_data, seed=0, tmp_path=tmp_path)
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    density = 0.3
    result = pruner.prune(ctx, density)

    prunable = prunable_parameters(ctx.model)
    assert set(result.masks) == set(prunable)
    for name, mask in result.masks.items():
        assert mask.dtype == torch.bool and mask.shape == prunable[name].shape
    total = sum(p.numel() for p in prunable.values())
    kept = sum(int(m.sum()) for m in result.masks.values())
    tolerance = DENSITY_TOLERANCE.get(method)
    if tolerance is None:
        expected = kept_count(total, density)
        # layer-wise methods round per layer: at most one weight per layer off the global count
        assert abs(kept - expected) <= len(prunable), (kept, expected)
    else:
        assert math.isclose(kept / total, density, abs_tol=tolerance)
    if result.scores is not None:
        assert set(result.scores) == set(prunable)
        assert all(torch.isfinite(s).all() and s.shape == prunable[n].shape for n, s in result.scores.items())
    assert result.scope in ("global", "layerwise"), "every method records the scope it selected with"
    if isinstance(pruner, ScorePruner):
        assert result.scope == pruner.settings.scope
    after = ctx.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a pruner modified ctx.model"
    if result.state_dict is not None:
        assert set(result.state_dict) <= set(after)

    again = pruner.prune(_ctx(tiny_data, seed=0, tmp_path=tmp_path), density)
    assert all(torch.equal(result.masks[n], again.masks[n]) for n in result.masks), "not deterministic"
