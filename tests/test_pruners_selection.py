"""The shared selection of score methods (``ScorePruner.prune`` / ``prune_loop``): any score method runs one-shot or
on Synaptic-Flow's iterative schedule, SynFlow is its score plus that schedule, every result records its scope and
the modifiers read it; the schedule settings stay out of the records while at their one-shot defaults."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_data  # noqa: E402  (the shared synthetic ImageData)
from fast_settings import FAST_RECIPE, make_pruner  # the one table of fast method settings
from torch import nn

from autos.masking import Scores, invert_scores, kept_count, select_mask
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, PruneResult, ScorePruner, ScoreSettings, layer_floor_counts, prune_loop
from autos.pruners.erk import erk_counts
from autos.pruners.synflow import linearize_, synflow_scores
from autos.sweep.modifiers import MODIFIERS, invert, scope_of, selection_scope

DATA = make_tiny_data()


def _ctx(arch: str = "vgg16_bn", seed: int = 0) -> PruneContext:
    def build(s: int) -> nn.Module:
        return build_model(arch, num_classes=4, width=4, input_size=32, seed=s)

    return PruneContext(model=build(seed), data=DATA, recipe=FAST_RECIPE,
                        device=torch.device("cpu"), seed=seed, num_classes=4, build_model=build)


def _pruner(name: str, **settings: object) -> ScorePruner:
    """``name`` with its fast settings (tests/fast_settings.py) and ``settings`` on top: a score method."""
    pruner = make_pruner(name, **settings)
    assert isinstance(pruner, ScorePruner)
    return pruner


def _kept(masks: dict[str, torch.Tensor]) -> int:
    return sum(int(m.sum()) for m in masks.values())


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- any score method can iterate


class Recording(ScorePruner[ScoreSettings]):
    """|w| of the model it is given, remembering every model it scored (not registered)."""

    Settings = ScoreSettings

    def __init__(self, settings: ScoreSettings | None = None) -> None:
        super().__init__(settings)
        self.seen: list[dict[str, torch.Tensor]] = []

    def score(self, ctx: PruneContext) -> Scores:
        params = dict(ctx.model.named_parameters())
        self.seen.append({n: params[n].detach().clone() for n in ctx.prunable_names()})
        return {n: params[n].detach().abs() + 1.0 for n in ctx.prunable_names()}  # never zero: alive does the work


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_each_round_scores_the_masked_network_on_the_exponential_schedule(scope: str) -> None:
    ctx = _ctx()
    before = _state(ctx.model)
    pruner = Recording(ScoreSettings(scope=scope, iterations=4))
    density = 0.05
    result = pruner.prune(ctx, density)
    assert len(pruner.seen) == 4 and result.scores is None and result.scope == scope
    total = sum(m.numel() for m in result.masks.values())
    original = {n: w for n, w in pruner.seen[0].items()}
    alive = None
    for k, weights in enumerate(pruner.seen, start=1):  # round k sees the mask of round k - 1 applied
        if alive is not None:
            for n, w in weights.items():
                assert torch.equal(w, original[n] * alive[n]), "round k must score the network masked by round k-1"
        alive = select_mask({n: original[n].abs() + 1.0 for n in original}, density ** (k / 4), scope=scope,
                            alive=alive)
        if scope == "global":
            assert _kept(alive) == kept_count(total, density ** (k / 4))
    assert all(torch.equal(result.masks[n], alive[n]) for n in alive)
    assert all(torch.equal(before[k], v) for k, v in ctx.model.state_dict().items()), "ctx.model was modified"


@pytest.mark.parametrize("method,settings", [("magnitude", {}), ("magnitude", {"scope": "layerwise"}),
                                             ("snip", {}), ("random", {})])
def test_any_score_method_runs_iteratively(method: str, settings: dict) -> None:
    ctx = _ctx()
    density = 0.1
    one_shot = _pruner(method, **settings).prune(ctx, density)
    iterative = _pruner(method, **settings, iterations=3).prune(ctx, density)
    total = sum(m.numel() for m in iterative.masks.values())
    assert iterative.scores is None and one_shot.scores is not None  # only one-shot scores can be re-ranked
    assert iterative.scope == one_shot.scope == settings.get("scope", "layerwise" if method == "random" else "global")
    if iterative.scope == "global":
        assert _kept(iterative.masks) == kept_count(total, density)
    else:
        assert all(int(m.sum()) == kept_count(m.numel(), density) for m in iterative.masks.values())
    if method in ("magnitude", "random"):  # scores that masking does not reorder: iterating changes nothing
        assert all(torch.equal(one_shot.masks[n], iterative.masks[n]) for n in one_shot.masks)


def test_synflow_is_its_score_plus_the_shared_schedule() -> None:
    """Reference: the pre-redesign SynFlow loop (linearise once, multiply the mask in, keep d^(k/n), alive)."""
    ctx = _ctx("resnet18")
    density, iterations = 0.05, 4
    model = linearize_(ctx.copy_model())
    names = ctx.prunable_names(model)
    params = dict(model.named_parameters())
    theta0 = {n: params[n].detach().clone() for n in names}
    masks = {n: torch.ones(theta0[n].shape, dtype=torch.bool) for n in names}
    for k in range(1, iterations + 1):
        with torch.no_grad():
            for n in names:
                params[n].copy_(theta0[n] * masks[n])
        scores = synflow_scores(model, names, (3, 32, 32))
        masks = select_mask(scores, density ** (k / iterations), alive=masks)
    pruner = _pruner("synflow", iterations=iterations)
    result = pruner.prune(ctx, density)
    assert all(torch.equal(result.masks[n], masks[n]) for n in names)
    assert result.scores is None and result.scope == "global"
    assert result.info == {"synflow_iterations": iterations, "synflow_precision": "float64"}
    looped, _ = prune_loop(pruner.score, ctx, density, iterations=iterations)
    assert all(torch.equal(result.masks[n], looped[n]) for n in names)


def test_invert_setting_one_shot_equals_the_invert_modifier() -> None:
    ctx = _ctx()
    for scope in ("global", "layerwise"):
        plain = _pruner("magnitude", scope=scope).prune(ctx, 0.2)
        inverted = _pruner("magnitude", scope=scope, invert=True).prune(ctx, 0.2)
        assert plain.scores is not None and inverted.scores is not None
        expected = invert(plain.scores, 0.2, scope)
        assert all(torch.equal(inverted.masks[n], expected[n]) for n in expected)
        # the result keeps the scores it ranked (higher = keep), so re-inverting gives the plain mask back
        assert all(torch.equal(inverted.scores[n], invert_scores(plain.scores)[n]) for n in expected)


def test_schedule_settings_are_recorded_only_when_not_one_shot() -> None:
    assert PRUNERS.get("magnitude").Settings().model_dump(mode="json") == {"scope": "global"}  # nor layer_floor 0
    assert PRUNERS.get("magnitude").Settings(iterations=5, invert=True).model_dump(mode="json") == {
        "scope": "global", "iterations": 5, "invert": True}
    assert PRUNERS.get("random").Settings().model_dump(mode="json") == {}  # layer-wise by definition, not a setting
    with pytest.raises(ValueError):
        PRUNERS.get("random").Settings(scope="global")
    assert PRUNERS.get("synflow").Settings().model_dump(mode="json") == {
        "scope": "global", "iterations": 100, "invert": False, "precision": "float64"}
    assert PRUNERS.get("synflow").Settings(iterations=1).model_dump(mode="json")["iterations"] == 1
    with pytest.raises(ValueError):
        PRUNERS.get("snip").Settings(iterations=0)


# --------------------------------------------------------------------------- a floor per layer, for any score method


@pytest.mark.parametrize("iterations", [1, 3])
def test_layer_floor_keeps_a_share_of_erks_count_in_every_layer(iterations: int) -> None:
    ctx = _ctx("resnet18")
    names = ctx.prunable_names()
    density = 0.02
    plain = _pruner("magnitude", iterations=iterations).prune(ctx, density).masks
    assert any(int(plain[n].sum()) == 0 for n in names)  # global |w0| at 98% empties a layer of this model
    erk = erk_counts({n: plain[n].shape for n in names}, density)
    for fraction in (0.5, 1.0):
        result = _pruner("magnitude", iterations=iterations, layer_floor=fraction).prune(ctx, density)
        assert _kept(result.masks) == kept_count(sum(m.numel() for m in plain.values()), density)
        assert all(int(result.masks[n].sum()) >= int(fraction * erk[n]) for n in names)
        assert result.scores is None and result.scope == "global"  # the invert modifier cannot re-rank a floor
    full = _pruner("magnitude", layer_floor=1.0).prune(ctx, density).masks
    assert sum(abs(int(full[n].sum()) - erk[n]) for n in names) <= len(names)  # floor(1.0 x ERK) + the remainder


def test_layer_floor_counts_and_its_settings() -> None:
    scores = {"conv": torch.rand(16, 3, 3, 3), "fc": torch.rand(10, 64)}
    erk = erk_counts({n: s.shape for n, s in scores.items()}, 0.1)
    assert layer_floor_counts(scores, 0.1, 0.5) == {n: int(0.5 * c) for n, c in erk.items()}
    alive = {"conv": torch.zeros(16, 3, 3, 3, dtype=torch.bool), "fc": torch.ones(10, 64, dtype=torch.bool)}
    assert layer_floor_counts(scores, 0.1, 0.5, alive=alive)["conv"] == 0  # never more than is alive
    assert PRUNERS.get("snip").Settings(layer_floor=0.25).model_dump(mode="json")["layer_floor"] == 0.25
    with pytest.raises(ValueError, match="needs scope 'global'"):
        PRUNERS.get("magnitude").Settings(layer_floor=0.5, scope="layerwise")
    with pytest.raises(ValueError):
        PRUNERS.get("magnitude").Settings(layer_floor=1.5)


# --------------------------------------------------------------------------- the modifiers read the scope


def test_modifiers_read_the_recorded_scope_not_the_mask() -> None:
    ctx = _ctx()
    scores = _pruner("magnitude").score(ctx)
    layerwise = select_mask(scores, 0.2, scope="layerwise")
    # a mask that looks layer-wise, recorded as global: the record wins
    result = PruneResult(masks=layerwise, scores=scores, scope="global")
    assert scope_of(result, 0.2) == "global"
    inverted, _ = MODIFIERS.get("invert").variant(result, ctx, 0.2, 1)
    expected = invert(scores, 0.2, "global")
    assert all(torch.equal(inverted[n], expected[n]) for n in expected)
    # no record: the scope is read off the mask (the fallback, for hand-built results)
    unrecorded = PruneResult(masks=layerwise, scores=scores)
    assert scope_of(unrecorded, 0.2) == selection_scope(layerwise, 0.2) == "layerwise"
    inverted, _ = MODIFIERS.get("invert").variant(unrecorded, ctx, 0.2, 1)
    expected = invert(scores, 0.2, "layerwise")
    assert all(torch.equal(inverted[n], expected[n]) for n in expected)


def test_random_records_layerwise_and_its_inversion_keeps_every_layer_count() -> None:
    ctx = _ctx()
    result = PRUNERS.get("random")().prune(ctx, 0.3)
    assert result.scope == "layerwise"
    inverted, _ = MODIFIERS.get("invert").variant(result, ctx, 0.3, 1)
    assert {n: int(m.sum()) for n, m in inverted.items()} == {n: int(m.sum()) for n, m in result.masks.items()}
