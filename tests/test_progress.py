"""Progress a person can read in a log (autos.progress): the sweep counter and its ETA, heartbeats of long loops,
plain lines (no bars, no escape codes) when stderr is no terminal. Clocks are fake: no test sleeps."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from rows import make_row

from autos import training
from autos.config import ExecutionConfig, TrainRecipe
from autos.models import build_model
from autos.progress import Heartbeat, SweepProgress, duration, percent
from autos.pruners import PRUNERS
from autos.pruners import base as pruners_base
from autos.pruners.base import PruneContext, prune_loop
from autos.study import parse_study
from autos.sweep import executors
from autos.sweep.cells import CellKey, CellResult, CellStore
from autos.sweep.executors import CellTask, describe, run_cells, slots
from autos.sweep.plan import plan_cells

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_formats() -> None:
    assert [percent(s) for s in (0.98, 0.995, 0.9, 0.07, 0.5)] == ["98%", "99.5%", "90%", "7%", "50%"]
    assert [duration(s) for s in (0.4, 41, 89, 95, 720, 5300, 5460, 7500)] == [
        "0 s", "41 s", "89 s", "2 min", "12 min", "88 min", "1 h 31 min", "2 h 05 min"]
    assert describe(CellKey("t", "snip", 0.98, 0)) == "snip s=98% seed 0"
    assert describe(CellKey("t", "dense", 0.0, 2)) == "dense seed 2"


def test_sweep_eta_uses_cells_computed_here_only() -> None:
    clock = FakeClock()
    progress = SweepProgress("transfer t", total=10, cached=3, clock=clock)
    assert progress.eta_seconds() is None  # no rate yet: cached cells do not count
    progress.started("a")
    clock.advance(40)
    assert progress.finished("a", "snip s=98% seed 0") == (
        "transfer t: cell 4/10 done (snip s=98% seed 0, 40 s), 3 cached, ~4 min left")  # 6 left x 40 s
    progress.started("b")
    clock.advance(60)
    line = progress.finished("b", "snip s=99% seed 0")
    assert progress.mean_seconds == 50 and progress.eta_seconds() == 5 * 50
    assert line.endswith("(snip s=99% seed 0, 60 s), 3 cached, ~4 min left")
    progress.started("c")
    clock.advance(5)
    assert "FAILED (dense seed 1, after 5 s)" in progress.failed("c", "dense seed 1")
    assert progress.remaining == 4 and progress.eta_seconds() == 4 * 50
    for cid in "defg":
        progress.started(cid)
        clock.advance(50)
        line = progress.finished(cid, "x")
    assert line == "transfer t: cell 10/10 done (x, 50 s), 3 cached, 1 failed, all done"


def test_sweep_eta_with_cells_running_side_by_side() -> None:
    clock = FakeClock()
    progress = SweepProgress("transfer t", total=6, clock=clock)
    progress.started("a")
    progress.started("b")  # two slots (Ray)
    clock.advance(100)
    progress.finished("a", "x")
    assert progress.parallel == 2
    # b has run 100 s of a 100 s mean: done any moment; 4 queued cells on 2 slots take 2 x 100 s
    assert progress.eta_seconds() == pytest.approx(200)
    progress.started("c")
    clock.advance(30)
    # c needs ~70 s more; 3 queued cells (b counted as running) share 2 slots
    assert progress.eta_seconds() == pytest.approx(70 + 3 * 100 / 2)


def test_heartbeat_logs_at_most_every_period(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    beat = Heartbeat(30, clock=clock)
    caplog.set_level(logging.INFO, logger="autos.progress")
    fired = []
    for _ in range(21):  # 21 rounds of 7 s: lines at 35, 70, 105, 140 s
        fired.append(beat.beat("round %d", len(fired) + 1))
        clock.advance(7)
    assert sum(fired) == 4 and beat.fired == 4
    assert [r.getMessage() for r in caplog.records] == ["round 6", "round 11", "round 16", "round 21"]
    quick = Heartbeat(30, clock=FakeClock())
    assert not quick.beat("never") and quick.fired == 0


def _ctx() -> PruneContext:
    from conftest import make_tiny_data

    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
    return PruneContext(model=model, data=make_tiny_data(), recipe=TrainRecipe(epochs=1, batch_size=16),
                        device=torch.device("cpu"), seed=0, num_classes=4)


def test_long_iterative_scoring_says_where_it_is(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    pruner = PRUNERS.get("magnitude")()

    def slow_score(ctx: PruneContext):  # noqa: ANN202 - each round "takes" 20 s
        clock.advance(20)
        return pruner.score(ctx)

    slow_score.__self__ = pruner  # type: ignore[attr-defined]  # as a bound method: the method's name is known
    monkeypatch.setattr(pruners_base, "Heartbeat", partial(Heartbeat, clock=clock))
    caplog.set_level(logging.INFO, logger="autos.pruners.base")
    prune_loop(slow_score, _ctx(), 0.2, iterations=6)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["magnitude: scoring round 3/6 (40 s so far)", "magnitude: scoring round 5/6 (80 s so far)",
                        "magnitude: 6 scoring round(s) done in 120 s"]
    caplog.clear()
    prune_loop(pruner.score, _ctx(), 0.2, iterations=3)  # quick: silent (the real clock)
    assert not caplog.records


def _config() -> object:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=["random"], modifiers=[], sparsities=[0.5, 0.9], seeds=[0], dense=True)
    return parse_study(raw)


def test_run_cells_logs_a_counter_with_eta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    cfg = _config()
    keys = plan_cells(cfg, "vgg16_cifar10")
    cells = [(k, f"cell{i}") for i, k in enumerate(keys)]
    store = CellStore(tmp_path)
    cached = CellResult(keys[0], [make_row(keys[0])], [[]], cell_id="cell0")
    store.save(cached)
    clock = FakeClock()
    events: list[str] = []

    def execute(task: CellTask, key: CellKey, data: object, validation: object = None) -> CellResult:
        clock.advance(30)
        events.append(f"run {key.sparsity}")
        return CellResult(key, [make_row(key)], [[]])

    monkeypatch.setattr(executors, "execute_cell", execute)
    caplog.set_level(logging.INFO, logger="autos.sweep.executors")
    task = CellTask(cfg=cfg, root=REPO, cache_dir=tmp_path, torch_threads=None)  # type: ignore[arg-type]
    results = run_cells(cells, task, None, store, ExecutionConfig(),  # type: ignore[arg-type]
                        lambda c: events.append(f"done {c.cell_id}"),
                        on_start=lambda k, c: events.append(f"start {c}"),
                        on_finish=lambda r: events.append(f"finish {r.cell_id}"), clock=clock)
    assert [r.cell_id for r in results] == ["cell0", "cell1", "cell2"]
    assert events == ["done cell0", "start cell1", "run 0.5", "finish cell1", "done cell1",
                      "start cell2", "run 0.9", "finish cell2", "done cell2"]  # no start/finish for the cached cell
    lines = [r.getMessage() for r in caplog.records]
    assert "transfer vgg16_cifar10: cell 2/3 done (random s=50% seed 0, 30 s), 1 cached, ~30 s left" in lines
    assert "transfer vgg16_cifar10: cell 3/3 done (random s=90% seed 0, 30 s), 1 cached, all done" in lines
    assert "transfer vgg16_cifar10: cell 2/3 started (random s=50% seed 0)" in lines


def test_a_failing_local_cell_is_reported_then_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config()
    cells = [(k, f"cell{i}") for i, k in enumerate(plan_cells(cfg, "vgg16_cifar10"))]
    failed: list[tuple[str, str]] = []

    def execute(task: CellTask, key: CellKey, data: object, validation: object = None) -> CellResult:
        raise ValueError("first line\nthe reason")

    monkeypatch.setattr(executors, "execute_cell", execute)
    task = CellTask(cfg=cfg, root=REPO, cache_dir=tmp_path, torch_threads=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the reason"):
        run_cells(cells, task, None, CellStore(tmp_path), ExecutionConfig(),  # type: ignore[arg-type]
                  lambda c: None,
                  on_fail=lambda k, c, m: failed.append((c, m)))
    assert failed == [("cell0", "the reason")]


def test_ray_slots_follow_the_cluster_resources() -> None:
    assert slots({"CPU": 8.0}, ExecutionConfig(backend="ray", num_cpus=2)) == 4
    assert slots({"CPU": 8.0, "GPU": 1.0}, ExecutionConfig(backend="ray", num_cpus=1, num_gpus=0.25)) == 4
    assert slots({"CPU": 2.0, "GPU": 4.0}, ExecutionConfig(backend="ray", num_cpus=1, num_gpus=1)) == 2
    assert slots({"CPU": 0.5}, ExecutionConfig(backend="ray", num_cpus=1)) == 1  # at least one


def test_training_writes_plain_lines_when_not_a_tty(tiny_data, quick_recipe: TrainRecipe,  # noqa: ANN001
                                                    capfd: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training.callbacks, "STEP_LOG_SECONDS", 0.0)  # every step is "long": the intra-epoch line shows
    caplog.set_level(logging.INFO, logger="autos.training")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))  # the loop, not a net, is tested
    recipe = quick_recipe.model_copy(update={"epochs": 2})
    training.train(model, tiny_data, recipe, seed=0, device=torch.device("cpu"), desc="t / snip / s=90% / seed 0")
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert "\x1b[" not in text and "\r" not in text  # no bar drawn into a log
    lines = [r.getMessage() for r in caplog.records]
    assert [sum(f" epoch {e}/2 loss " in line for line in lines) for e in (1, 2)] == [1, 1]
    assert any(line.startswith("t / snip / s=90% / seed 0 epoch 1/2: step 1/4") for line in lines)
