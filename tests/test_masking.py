"""Mask invariants: exact kept counts, deterministic ties, pruned weights stay pruned, schedules in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from autos.irp.schedules import round_densities
from autos.masking import density_of, kept_count, mask_summary, prunable_parameters, select_mask
from autos.models import build_model


def _scores(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.rand(10, 5, generator=g), "b": torch.rand(7, generator=g), "c": torch.rand(3, 3, 3, generator=g)}


@pytest.mark.parametrize("density", [0.01, 0.1, 0.37, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_exact_kept_count(density: float, scope: str) -> None:
    scores = _scores()
    masks = select_mask(scores, density, scope=scope)
    if scope == "global":
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(84, density)
    else:
        for name, m in masks.items():
            assert int(m.sum()) == kept_count(scores[name].numel(), density)
    assert all(masks[n].shape == scores[n].shape and masks[n].dtype == torch.bool for n in scores)


def test_global_keeps_highest_scores() -> None:
    scores = _scores()
    masks = select_mask(scores, 0.25, scope="global")
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    dropped = torch.cat([scores[n][~masks[n]] for n in scores])
    assert kept.min() >= dropped.max()


def test_ties_are_deterministic_and_exact() -> None:
    scores = {"a": torch.ones(10), "b": torch.ones(10)}
    m1 = select_mask(scores, 0.35, scope="global")
    m2 = select_mask(scores, 0.35, scope="global")
    assert sum(int(m.sum()) for m in m1.values()) == 7  # not over-pruned or over-kept at the tie
    assert all(torch.equal(m1[n], m2[n]) for n in scores)
    assert m1["a"][:7].all() and not m1["b"].any()  # lower index first


def _sorted_reference(scores, density, scope, alive):  # noqa: ANN001, ANN202
    """The definition select_mask implements: a stable descending sort of the float64 scores, pruned at -inf."""

    def flat(name: str) -> torch.Tensor:
        s = scores[name].to(torch.float64).flatten()
        return s if alive is None else s.masked_fill(~alive[name].flatten(), float("-inf"))

    def top(values: torch.Tensor, k: int) -> torch.Tensor:
        keep = torch.zeros(values.numel(), dtype=torch.bool)
        keep[torch.sort(values, descending=True, stable=True).indices[:k]] = True
        return keep

    if scope == "layerwise":
        return {n: top(flat(n), kept_count(s.numel(), density)).view(s.shape) for n, s in scores.items()}
    keep = top(torch.cat([flat(n) for n in scores]), kept_count(sum(s.numel() for s in scores.values()), density))
    out, offset = {}, 0
    for n, s in scores.items():
        out[n] = keep[offset : offset + s.numel()].view(s.shape)
        offset += s.numel()
    return out


@pytest.mark.parametrize("seed", range(12))
def test_selection_equals_a_stable_sort_of_all_scores(seed: int) -> None:
    """Radix selection == stable sort: heavy ties, signed zeros, negatives, huge and tiny magnitudes, mixed dtypes,
    pruned weights, both scopes."""
    g = torch.Generator().manual_seed(seed)
    dtypes = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
    scores = {}
    for i in range(4):
        n = int(torch.randint(1, 400, (1,), generator=g))
        kind = (seed + i) % 4
        if kind == 0:  # few distinct values: ties across layers
            v = torch.randint(-3, 4, (n,), generator=g).double()
        elif kind == 1:  # signed zeros among ties
            v = torch.randint(0, 2, (n,), generator=g).double() * torch.where(torch.rand(n, generator=g) < 0.5, -1, 1)
            v = torch.where(v == 0, torch.where(torch.rand(n, generator=g) < 0.5, -0.0, 0.0), v)
        elif kind == 2:  # magnitudes over many decades, both signs
            v = torch.randn(n, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(-30, 30, (n,), generator=g)
        else:
            v = torch.rand(n, generator=g, dtype=torch.float64)
        scores[f"l{i}"] = v.to(dtypes[(seed + i) % 4 if kind != 2 else 1]).view(-1, 1)
    alive = None
    if seed % 2:
        alive = {n: torch.rand(s.shape, generator=g) < 0.7 for n, s in scores.items()}
        for m in alive.values():
            m.view(-1)[0] = True
    for scope in ("global", "layerwise"):
        for density in (0.05, 0.3, 0.5, 0.62):
            if scope == "layerwise" and alive is not None:
                continue  # layerwise with alive masks can ask for more than a layer has alive
            if alive is not None and kept_count(sum(s.numel() for s in scores.values()), density) > sum(
                int(m.sum()) for m in alive.values()
            ):
                continue
            got = select_mask(scores, density, scope=scope, alive=alive)
            want = _sorted_reference(scores, density, scope, alive)
            assert all(torch.equal(got[n], want[n]) for n in scores), (scope, density)


def test_pruned_weights_stay_pruned() -> None:
    scores = _scores()
    alive = select_mask(scores, 0.5)
    rescored = {n: torch.rand_like(s) for n, s in scores.items()}  # new scores would revive some weights
    nested = select_mask(rescored, 0.2, alive=alive)
    for n in scores:
        assert not (nested[n] & ~alive[n]).any()
    assert math.isclose(density_of(nested), kept_count(84, 0.2) / 84)


def test_too_dense_for_alive_and_bad_inputs() -> None:
    scores = _scores()
    alive = select_mask(scores, 0.1)
    with pytest.raises(ValueError, match="alive"):
        select_mask(scores, 0.5, alive=alive)
    with pytest.raises(ValueError, match="density"):
        select_mask(scores, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        select_mask({"a": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="scope"):
        select_mask(scores, 0.5, scope="blockwise")


def test_layer_floor_keeps_each_layers_best_and_ranks_the_rest_globally() -> None:
    # layer "b" scores below everything else, so the plain global ranking empties it
    scores = {"a": torch.arange(50.0).view(10, 5) + 100, "b": torch.arange(7.0), "c": torch.arange(27.0) + 50}
    assert int(select_mask(scores, 0.25)["b"].sum()) == 0
    masks = select_mask(scores, 0.25, floor={"b": 3, "c": 2})
    assert sum(int(m.sum()) for m in masks.values()) == kept_count(84, 0.25)  # the total is unchanged
    assert masks["b"].flatten().tolist() == [False] * 4 + [True] * 3  # b's floor: its three best
    assert int(masks["c"].sum()) == 2  # c's floor is met by its two best, and the ranking gives it no more
    assert masks["a"].flatten()[-16:].all() and int(masks["a"].sum()) == 16  # the rest: a's best, globally
    assert all(torch.equal(select_mask(scores, 0.25, floor={n: 0 for n in scores})[n], select_mask(scores, 0.25)[n])
               for n in scores)  # zero floors are the plain selection


def test_layer_floor_respects_pruned_weights_and_rejects_what_it_cannot_keep() -> None:
    scores = _scores()
    alive = select_mask(scores, 0.5)
    masks = select_mask({n: torch.rand_like(s) for n, s in scores.items()}, 0.2, alive=alive,
                        floor={"b": int(alive["b"].sum())})
    assert all(not (masks[n] & ~alive[n]).any() for n in scores) and torch.equal(masks["b"], alive["b"])
    with pytest.raises(ValueError, match="floor of layer 'b' is 8 weights; allowed: 0 to its 7"):
        select_mask(scores, 0.5, floor={"b": 8})
    with pytest.raises(ValueError, match="floors keep 34 weights, more than the 8"):
        select_mask(scores, 0.1, floor={"a": 30, "b": 4})
    with pytest.raises(ValueError, match="layer 'z'"):
        select_mask(scores, 0.5, floor={"z": 1})
    with pytest.raises(ValueError, match="needs scope 'global'"):
        select_mask(scores, 0.5, scope="layerwise", floor={"a": 1})


def test_prunable_parameters_and_classifier_switch() -> None:
    model = build_model("resnet18", num_classes=10, width=4, input_size=32, seed=0)
    with_fc = prunable_parameters(model, include_classifier=True)
    without_fc = prunable_parameters(model, include_classifier=False)
    assert "fc.weight" in with_fc and "fc.weight" not in without_fc
    assert all(n.endswith(".weight") and p.dim() in (2, 4) for n, p in with_fc.items())
    assert "layer2.0.shortcut.0.weight" in with_fc  # 1x1 shortcut convs are prunable (reference)
    assert not any("bn" in n for n in with_fc)


def test_summary_flags_empty_layers() -> None:
    masks = {"a": torch.zeros(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
    summary = mask_summary(masks)
    assert summary.empty_layers == ["a"] and summary.density == 0.5 and summary.min_layer_density == 0.0


@pytest.mark.parametrize("num_rounds,final", [(20, 0.01), (4, 0.1), (1, 0.5)])
def test_schedules_closed_form(num_rounds: int, final: float) -> None:
    linear = round_densities("linear", num_rounds, final)
    geometric = round_densities("geometric", num_rounds, final)
    for k in range(1, num_rounds + 1):
        assert math.isclose(linear[k - 1], 1 - (1 - final) * k / num_rounds)
        assert math.isclose(geometric[k - 1], final ** (k / num_rounds))
    assert math.isclose(linear[-1], final) and math.isclose(geometric[-1], final)
    # the reference: every round removes 4.95% of the original count (docs/reference/autos.md §2.2)
    if num_rounds == 20:
        assert math.isclose(linear[0] - linear[1], 0.0495)


def test_schedule_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="allowed: linear, geometric"):
        round_densities("cubic", 3, 0.1)
    with pytest.raises(ValueError):
        round_densities("linear", 0, 0.1)
