"""Work a method's cells share across sparsities (autos.pruners.shared): computed once per (target, method, seed),
read back bit-identical, so every sparsity's mask is the one a cell computing alone selects."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_data
from fast_settings import fixed_scorer, make_pruner

from autos.irp.schedules import through_densities
from autos.masking import kept_count
from autos.models import build_model
from autos.pruners.base import PruneContext, ScorePruner
from autos.pruners.shared import shared_result
from autos.sweep.cells import CellKey
from autos.sweep.executors import next_ready
from tests.fast_settings import FAST_RECIPE

ONE_SHOT = ["random", "magnitude", "snip", "grasp", "prospr", "autos"]


def test_computed_once_read_back_identical_and_recomputed_when_damaged(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"w": torch.randn(5, 3, generator=torch.Generator().manual_seed(len(calls)))}

    first = shared_result(tmp_path, "key", "scores", compute)
    again = shared_result(tmp_path, "key", "scores", compute)
    assert len(calls) == 1 and torch.equal(first["w"], again["w"])
    shared_result(tmp_path, "other", "scores", compute)  # another key: its own result
    assert len(calls) == 2
    (tmp_path / "key-scores.pt").write_bytes(b"not a torch file")
    shared_result(tmp_path, "key", "scores", compute)
    assert len(calls) == 3
    shared_result(None, "key", "scores", compute)
    shared_result(tmp_path, None, "scores", compute)
    assert len(calls) == 5  # without a folder or a key, nothing is shared


def _ctx(share_dir: Path | None, share_key: str | None) -> PruneContext:
    def build(seed: int) -> torch.nn.Module:
        return build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=seed)

    return PruneContext(model=build(0), data=make_tiny_data(), recipe=FAST_RECIPE, device=torch.device("cpu"),
                        seed=0, num_classes=4, build_model=build, scorer=fixed_scorer(), share_dir=share_dir,
                        share_key=share_key)


@pytest.mark.parametrize("method", ONE_SHOT)
def test_every_sparsity_selects_what_a_cell_alone_selects_from_one_scoring(method: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pruner = make_pruner(method)
    assert isinstance(pruner, ScorePruner)
    calls: list[int] = []
    real = type(pruner).score
    monkeypatch.setattr(type(pruner), "score", lambda self, ctx: calls.append(1) or real(self, ctx))
    for density in (0.3, 0.05):
        alone = make_pruner(method).prune(_ctx(None, None), density).masks
        together = make_pruner(method).prune(_ctx(tmp_path, "k"), density).masks
        assert all(torch.equal(alone[n], together[n]) for n in alone), density
    assert len(calls) == 2 + 1  # two cells alone, and one scoring for the two that share


def _slow_compute(path: str) -> None:
    def compute() -> dict[str, torch.Tensor]:
        with open(path + ".calls", "a") as f:
            f.write("x")
        time.sleep(1.0)
        return {"w": torch.ones(3)}

    shared_result(Path(path), "k", "scores", compute)


def test_cells_running_at_once_compute_it_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_slow_compute, args=(str(tmp_path),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert Path(str(tmp_path) + ".calls").read_text() == "x"


def test_one_irp_run_passes_through_every_evaluated_density() -> None:
    schedule = through_densities([0.5, 0.1, 0.05, 0.3], 0.2)
    assert schedule[-1] == 0.05 and {0.5, 0.3, 0.1, 0.05} <= set(schedule)  # exactly, not the 0.8^k grid
    kept = [b / a for a, b in zip([1.0, *schedule], schedule, strict=False)]
    assert all(0.8 - 1e-12 <= k < 1 for k in kept)  # no round prunes more than 20% of the survivors
    assert len(schedule) == 4 + 3 + 5 + 4  # ceil(log(ratio) / log(0.8)) between consecutive densities


def test_irp_on_the_target_runs_once_for_every_sparsity_and_nests_its_masks(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import autos.pruners.irp_target as irp_target

    runs: list[int] = []
    real = irp_target.run_irp
    monkeypatch.setattr(irp_target, "run_irp", lambda *a, **k: runs.append(1) or real(*a, **k))
    densities = (0.5, 0.2)
    masks = {}
    for density in densities:
        ctx = dataclasses.replace(_ctx(tmp_path, "k"), densities=densities, cache_dir=tmp_path / "cache")
        result = make_pruner("irp", schedule="fraction", prune_fraction=0.5, epochs_per_round=1).prune(ctx, density)
        masks[density] = result.masks
        assert result.info["shared_run_rounds"] == 3  # 1 -> 0.5 -> 0.316 -> 0.2
        total = sum(m.numel() for m in result.masks.values())
        assert sum(int(m.sum()) for m in result.masks.values()) == kept_count(total, density)
    assert len(runs) == 1
    assert all(bool((masks[0.2][n] <= masks[0.5][n]).all()) for n in masks[0.5])  # pruned on the way down


def test_a_methods_later_cells_wait_for_the_one_that_computes_what_they_share() -> None:
    keys = [(CellKey("t", "snip", s, 0), f"snip{s}") for s in (0.5, 0.9)] + [(CellKey("t", "erk", 0.5, 0), "erk")]
    after = {"snip0.9": "snip0.5"}
    assert next_ready(keys, after, waiting={"snip0.5", "snip0.9", "erk"}) == 0
    assert next_ready(keys[1:], after, waiting={"snip0.5", "snip0.9", "erk"}) == 1  # snip@0.9 waits: erk goes
    assert next_ready(keys[1:2], after, waiting={"snip0.5"}) is None
    assert next_ready(keys[1:2], after, waiting=set()) == 0  # settled (finished or failed): it may start
