"""Methods that train to select a mask (docs/reference/methods.md): K-starts, dissipating gradients, their
combination (§3), Pruning from Scratch (§2), Lottery Jackpots (§4) and IMP on the target (§10).

CPU only and fast: width-4 ResNet-18 / VGG-16-BN at 32x32, 64 synthetic images, each method with its fast settings
(tests/fast_settings.py; a test that needs another value overrides it and says why). These are the methods' known
answers; the contract every method meets (kept counts, determinism, the model unchanged, ...) is in
test_pruners_contract.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TinyData  # noqa: E402  (the shared synthetic ImageData)
from fast_settings import make_pruner  # the one table of fast method settings
from torch import Tensor, nn

from autos.config import TrainRecipe
from autos.masking import kept_count, select_mask
from autos.models import build_model
from autos.pruners import lottery_jackpots
from autos.pruners.base import PruneContext, PruneResult, phase_recipe
from autos.pruners.irp_target import IRPTargetSettings, num_rounds_for
from autos.pruners.kstarts import KStartsSettings, candidate_masks
from autos.pruners.lottery_jackpots import short_restriction_
from autos.pruners.pruning_from_scratch import gate_groups
from autos.training import train

NUM_CLASSES = 10
ARCHS = ["resnet18", "vgg16_bn"]


def synthetic_data(n: int = 64) -> TinyData:
    g = torch.Generator().manual_seed(123)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(NUM_CLASSES).repeat(n // NUM_CLASSES + 1)[:n]
    return TinyData(x, y, x[:16].clone(), y[:16].clone())


def make_ctx(arch: str, seed: int = 0, cache_dir: Path | None = None, data: TinyData | None = None,
             recipe: TrainRecipe | None = None) -> PruneContext:
    def factory(s: int) -> nn.Module:
        return build_model(arch, num_classes=NUM_CLASSES, width=4, input_size=32, seed=s)

    return PruneContext(
        model=factory(0), data=data or synthetic_data(), recipe=recipe or TrainRecipe(epochs=1, batch_size=32),
        device=torch.device("cpu"), seed=seed, num_classes=NUM_CLASSES, build_model=factory, cache_dir=cache_dir,
    )


DENSITY = 0.3


def run(name: str, ctx: PruneContext, density: float = DENSITY, **overrides: Any) -> PruneResult:
    """``name`` with its fast settings (tests/fast_settings.py) and ``overrides`` on top, pruned to ``density``."""
    return make_pruner(name, **overrides).prune(ctx, density)


def state_of(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_kstarts_candidates_share_layer_densities() -> None:
    ctx = make_ctx("resnet18")
    candidates = candidate_masks(ctx, 0.2, KStartsSettings(k=3))
    assert len(candidates) == 3
    for masks in candidates:
        assert {n: int(m.sum()) for n, m in masks.items()} == {
            n: kept_count(m.numel(), 0.2) for n, m in candidates[0].items()
        }
    assert not torch.equal(candidates[0]["layer1.0.conv1.weight"], candidates[1]["layer1.0.conv1.weight"])
    erk = candidate_masks(ctx, 0.2, KStartsSettings(k=2, layer_densities="erk"))
    counts = [{n: int(m.sum()) for n, m in masks.items()} for masks in erk]
    assert counts[0] == counts[1]
    assert sum(counts[0].values()) == kept_count(sum(m.numel() for m in erk[0].values()), 0.2)
    result = run("kstarts", ctx, 0.2, k=3, fitness="both")
    chosen = candidates[int(result.info["kstarts_selected"])]
    assert all(torch.equal(result.masks[n], chosen[n]) for n in chosen)
    assert len(str(result.info["kstarts_fitness_values"]).split(",")) == 3
    params = dict(ctx.model.named_parameters())
    for n in chosen:  # the winner's trained weights, pruned positions zero (no rewind)
        assert not result.state_dict[n][~chosen[n]].any()
        assert not torch.equal(result.state_dict[n], params[n].detach())


def test_dissipating_prunes_weights_that_do_not_move() -> None:
    """Input channel 2 is exactly 0 after normalisation, so the first conv's weights on it get no gradient;
    without weight decay they keep their init value (drift 0) and are among the first ones pruned. (Dead ReLU
    positions deeper in the net also give zero-drift weights, so the prediction is checked against an
    independent dense run of the same phase recipe.)"""
    data = synthetic_data()
    data.train_x[:, 2] = 0
    data.mean = (0.5, 0.5, 0.0)
    ctx = make_ctx("vgg16_bn", data=data, recipe=TrainRecipe(epochs=1, batch_size=32, weight_decay=0.0))
    frozen = torch.zeros(4, 3, 3, 3, dtype=torch.bool)
    frozen[:, 2] = True  # the 36 weights of features.0 on input channel 2
    init = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
    dense = ctx.copy_model()
    train(dense, data, phase_recipe(ctx.recipe, 1), seed=ctx.seed, device=ctx.device, evaluate_every_epoch=False)
    still = {n: p.detach() == init[n] for n, p in dense.named_parameters() if n in ctx.prunable_names()}
    assert still["features.0.weight"][frozen].all()
    n_still = sum(int(m.sum()) for m in still.values())

    total = sum(m.numel() for m in still.values())
    room = {"max_epochs": 2}  # a second epoch allowed, so that stopping after the first is the method's decision
    result = run("dissipating", ctx, (total - 20) / total, **room)  # prune 20 <= n_still weights
    assert n_still >= 20
    assert result.info["pruned_by_drift"] == 20 and result.info["pruned_by_fallback"] == 0
    assert result.info["dissipating_epochs"] == 1  # the target was reached after the first epoch
    assert all(still[n][~m].all() for n, m in result.masks.items())  # only weights that did not move
    assert sum(int((~m).sum()) for m in result.masks.values()) == 20

    many = run("dissipating", ctx, 0.3, **room)  # far more to prune than did not move: every frozen weight goes
    assert not many.masks["features.0.weight"][frozen].any()
    assert all(not m[still[n]].any() for n, m in many.masks.items())
    assert many.info["pruned_by_drift"] >= n_still
    rewound = run("dissipating", ctx, 0.3, **room, rewind=True)
    assert rewound.state_dict is None and all(torch.equal(many.masks[n], rewound.masks[n]) for n in many.masks)


@pytest.mark.parametrize("arch", ARCHS)
def test_pfs_channels_consistent(arch: str) -> None:
    ctx = make_ctx(arch)
    result = run("pruning_from_scratch", ctx, 0.5)
    groups = gate_groups(ctx.model)
    assert len(groups) == (8 if arch == "resnet18" else 13)
    if arch == "resnet18":
        assert all(g.producer.endswith("conv1.weight") and g.consumer.endswith("conv2.weight") for g in groups)
    pruned_channels = 0
    expected = {n: torch.ones_like(m) for n, m in result.masks.items()}
    for g in groups:
        out_dead = ~result.masks[g.producer].flatten(1).any(1)  # conv out-channel fully zeroed
        in_dead = ~result.masks[g.consumer].transpose(0, 1).flatten(1).any(1)  # consumer in-channel zeroed
        assert torch.equal(out_dead, in_dead), g
        assert out_dead.sum() < g.channels  # min_channels = 1
        pruned_channels += int(out_dead.sum())
        expected[g.producer][out_dead] = False
        expected[g.consumer][:, out_dead] = False
    assert pruned_channels == result.info["total_channels"] - result.info["kept_channels"] > 0
    for n, mask in result.masks.items():  # nothing but whole channels is pruned
        assert torch.equal(mask, expected[n]), n
    assert result.state_dict is None and result.info["scratch_b_budget"].startswith("not applied")


def test_jackpots_cache_and_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = lottery_jackpots.train_dense

    def counting(ctx, recipe):  # noqa: ANN001, ANN202
        calls.append(recipe.epochs)
        return real(ctx, recipe)

    monkeypatch.setattr(lottery_jackpots, "train_dense", counting)
    ctx = make_ctx("resnet18", cache_dir=tmp_path)
    first = run("lottery_jackpots", ctx)
    assert calls == [1] and first.info["dense_cache"] == "miss" and first.info["kind"] == "trained"
    second = run("lottery_jackpots", make_ctx("resnet18", cache_dir=tmp_path), 0.5)
    assert calls == [1] and second.info["dense_cache"] == "hit"  # no retraining
    third = run("lottery_jackpots", make_ctx("resnet18", cache_dir=tmp_path), dense_epochs=2)
    assert calls == [1, 2]  # a different recipe is a different dense model

    dense = make_ctx("resnet18").copy_model()  # the dense model trained independently
    train(dense, ctx.data, ctx.recipe, seed=ctx.seed, device=ctx.device, evaluate_every_epoch=False)
    for state in (first.state_dict, second.state_dict):
        assert_same_state(state, {k: v.detach() for k, v in dense.state_dict().items()})
    assert not torch.equal(third.state_dict["conv1.weight"], first.state_dict["conv1.weight"])
    assert first.masks["fc.weight"].all() and first.info["classifier_dense"] == 1
    conv = [n for n in first.masks if n != "fc.weight"]  # per-layer budgets from the trained |W| (global)
    budgets = select_mask({n: first.state_dict[n].abs() for n in conv},
                          (kept_count(sum(m.numel() for m in first.masks.values()), DENSITY) - 320) / sum(
                              first.masks[n].numel() for n in conv))
    assert {n: int(first.masks[n].sum()) for n in conv} == {n: int(budgets[n].sum()) for n in conv}
    init = dict(ctx.model.named_parameters())["conv1.weight"]
    assert not torch.equal(first.state_dict["conv1.weight"], init.detach())


def test_short_restriction_swaps_within_the_budget() -> None:
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]).view(2, 3)
    score = torch.tensor([1.0, 0.2, 0.9, 0.99, 0.95, 0.1]).view(2, 3)  # 0.99, 0.95 beat kept 0.2 and 0.9
    assert short_restriction_(mask, score, rate=1.0) == 2
    assert mask.flatten().tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]).view(2, 3)
    assert short_restriction_(mask, score, rate=0.5) == 1  # ceil(0.5 * 2): the best revive, the worst drop
    assert mask.flatten().tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert short_restriction_(mask, score.clone().fill_(0.5), rate=1.0) == 0  # all tied: |A| = 0


def test_irp_rounds_and_rewind(tmp_path: Path) -> None:
    assert num_rounds_for(IRPTargetSettings(), 0.3) == 6  # 0.8^5 > 0.3 >= 0.8^6
    assert num_rounds_for(IRPTargetSettings(), 0.8 ** 3) == 3
    ctx = make_ctx("vgg16_bn", cache_dir=tmp_path)
    # the method's own schedule (the fast settings use 2 linear rounds): ceil(log 0.3 / log 0.55) = 3 rounds
    result = run("irp", ctx, 0.3, schedule="fraction", prune_fraction=0.45)
    # dense + rounds 1..P-1 are trained; the final ticket is trained by the pipeline, not here
    assert result.info["rounds"] == 3 and result.info["trainings"] == 3
    densities = [float(d) for d in str(result.info["round_densities"]).split(",")]
    assert densities[0] == 1.0 and abs(densities[-1] - 0.3) < 1e-4
    assert all(1 - b / a <= 0.45 + 1e-9 for a, b in zip(densities, densities[1:], strict=False))
    assert_same_state(result.state_dict, state_of(ctx.model))  # rewound to init
    assert not (tmp_path / "irp_target").exists() or not any((tmp_path / "irp_target").iterdir())
    two = run("irp", make_ctx("vgg16_bn"), 0.3)  # the fast settings: 2 linear rounds
    assert two.info["rounds"] == 2 and two.info["trainings"] == 2
