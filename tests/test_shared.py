"""Work a method's cells share across sparsities (autos.pruners.shared): computed once per (target, method, seed),
read back bit-identical, so every sparsity's mask is the one a cell computing alone selects."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_data
from fast_settings import fixed_scorer, make_pruner

from autos.models import build_model
from autos.pruners.base import PruneContext, ScorePruner
from autos.pruners.shared import shared_result
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
