"""The transfer sweep in MLflow (``autos.tracking.sweep.SweepRuns`` over ``autos.sweep.executors.run_cells``): readable
and unique run names, runs RUNNING while their cell runs and FINISHED / FAILED / KILLED after, no duplicate runs
for cached cells, per-run figures, and the parent's summary metrics (mean, std and n over seeds, in percent).

Cells are faked (``executors.execute_cell`` replaced) except in the stage test at the end, which runs two real
tiny cells through ``stages.transfer.main``. Every test writes to a real SQLite store in tmp_path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rows import make_row
from test_tracking import client_for, empty_db, store  # noqa: F401  (fixtures: a fresh SQLite store)

from autos.config import ExecutionConfig
from autos.study import parse_study
from autos.sweep import executors
from autos.sweep.cells import DENSE, CellKey, CellResult, CellStore
from autos.sweep.executors import CellTask
from autos.sweep.plan import plan_cells
from autos.sweep.records import RunKey
from autos.tracking import Tracker
from autos.tracking.sweep import SweepRuns, log_sweep_summary, metric_label, parent_metrics

REPO = Path(__file__).resolve().parents[1]
transfer_stage = importlib.import_module("autos.pipeline.transfer")

EXPERIMENT = "test-sweep"
TARGET = "vgg16_cifar10"


def _config(execution: dict[str, Any] | None = None, **transfer: Any) -> Any:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=["random", "snip"], modifiers=["shuffle"], sparsities=[0.5, 0.9], seeds=[0, 1],
                           dense=True, method_settings={})
    raw["transfer"].update(transfer)
    raw["execution"] = execution or {"backend": "local"}
    return parse_study(raw)


def _cells(cfg: Any) -> list[tuple[CellKey, str]]:
    return [(k, hashlib.sha256(k.name.encode()).hexdigest()[:20]) for k in plan_cells(cfg, TARGET)]


def _fake_rows(cfg: Any, key: CellKey) -> CellResult:
    """What run_cell returns, with made-up numbers: the method's row, then one per modifier."""
    variants: list[str | None] = [None] + ([] if key.method == DENSE else cfg.transfer.modifiers_for(key.method))
    rows, histories = [], []
    for i, modifier in enumerate(variants):
        acc = 0.9 - key.sparsity / 2 - 0.1 * i + 0.01 * key.seed
        rows.append(make_row(key, acc, modifier))
        histories.append([{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 * e, "lr": 0.1, "test_loss": 2.1 / e,
                           "test_acc": acc * e / 2} for e in (1, 2)])
    return CellResult(key, rows, histories)


def _task(cfg: Any, tmp: Path) -> CellTask:
    return CellTask(cfg=cfg, root=REPO, cache_dir=tmp / "cache", torch_threads=None)


def _runs(root: Path) -> list[Any]:
    client = client_for(root)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _children(runs: list[Any], parent_id: str) -> list[Any]:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]


def _sweep(root: Path, cfg: Any, cells: list[tuple[CellKey, str]], store_dir: Path,
           execute: Callable[..., CellResult], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """One stage-like sweep under a parent run; returns (parent run id, results or the exception raised)."""
    monkeypatch.setattr(executors, "execute_cell", execute)
    tracker = Tracker(EXPERIMENT, root=root)
    outcome: Any = None
    try:
        with tracker.run(f"transfer {TARGET}", tags={"stage": "transfer"}):
            parent_id = tracker.active_run_id()
            assert parent_id is not None
            sweep = SweepRuns(tracker, CellStore(store_dir), parent_id)
            outcome = sweep.run(cells, _task(cfg, root), None, ExecutionConfig())  # type: ignore[arg-type]
            log_sweep_summary(tracker, TARGET, [row for cell in outcome for row in cell.rows], cells_total=len(cells),
                              cells_run=sweep.computed)
    except BaseException as exc:  # noqa: BLE001 - the tests look at what the sweep left behind
        outcome = exc
    return parent_id, outcome


def test_runs_are_live_named_unique_and_summarised(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cfg = _config()
    cells = _cells(cfg)
    client = client_for(store)
    seen_live: list[tuple[str, str]] = []

    def execute(task: CellTask, key: CellKey, data: object = None, validation: object = None) -> CellResult:
        cid = dict(cells)[key]
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        live = client.search_runs([experiment_id], filter_string=f"tags.cell = '{cid}'")
        assert len(live) == 1, "the cell's run is opened before the cell runs"
        seen_live.append((live[0].info.run_name, live[0].info.status))
        return _fake_rows(cfg, key)

    parent_id, results = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    assert isinstance(results, list), results
    assert [status for _, status in seen_live] == ["RUNNING"] * len(cells)
    assert seen_live[1][0] == f"{TARGET} / random / s=50% / seed 0"

    runs = _runs(store)
    cell_runs = _children(runs, parent_id)
    assert len(cell_runs) == len(cells) == 10
    names = [r.info.run_name for r in cell_runs]
    assert len(set(names)) == len(names)
    assert f"{TARGET} / dense / seed 1" in names and f"{TARGET} / snip / s=90% / seed 1" in names
    variants = [r for cell in cell_runs for r in _children(runs, cell.info.run_id)]
    assert sorted(r.info.run_name for r in variants) == sorted(f"{TARGET} / {m}+shuffle / s={s}% / seed {seed}"
                                                             for m in ("random", "snip") for s in (50, 90)
                                                             for seed in (0, 1))
    rows = [row for cell in results for row in cell.rows]
    assert len(cell_runs) + len(variants) == len(rows)  # one run per results row
    for run in cell_runs + variants:
        assert run.info.status == "FINISHED"
        assert run.info.end_time >= run.info.start_time
        assert "final_test_acc" in run.data.metrics and run.data.tags["stage"] == "transfer"
        assert client.get_metric_history(run.info.run_id, "test_acc")[-1].step == 2  # the per-epoch history
    snip = next(r for r in cell_runs if r.info.run_name == f"{TARGET} / snip / s=90% / seed 0")
    assert snip.data.params["modifier"] == "none" and snip.data.tags["modifier"] == "none"
    assert snip.data.params["info.kind"] == "pai"
    artifacts = {a.path for a in client.list_artifacts(snip.info.run_id)}
    assert {"layer_density.json", "plots"} <= artifacts
    plots = [a.path for a in client.list_artifacts(snip.info.run_id, "plots")]
    assert plots == ["plots/training_and_density.png"]
    png = Path(client.download_artifacts(snip.info.run_id, plots[0], str(store / "dl")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000

    parent = client.get_run(parent_id)
    metrics = parent.data.metrics
    # over seeds 0 and 1, in percent: mean, sample std, n
    assert {k: v for k, v in metrics.items() if k.startswith("acc/dense/")} == {
        "acc/dense/mean": 90.5, "acc/dense/std": 0.71, "acc/dense/n": 2}
    assert metrics["acc/snip/s90/mean"] == 45.5 and metrics["acc/random-shuffle/s50/mean"] == 55.5
    assert len([k for k in metrics if k.startswith("acc/")]) == 3 * 9  # dense + 2 methods x 2 variants x 2 sparsities
    assert {a.path for a in client.list_artifacts(parent_id, "plots")} == {"plots/accuracy_vs_sparsity.png"}


def test_cached_cells_are_referenced_not_retrained(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A later sweep lists every cell too: a cached cell's run there refers to the run that computed it (its numbers
    copied, nothing retrained, no figure), so every experiment's run list holds all its cells."""
    cfg = _config(methods=["random"], sparsities=[0.9], seeds=[0], modifiers=[])
    cells = _cells(cfg)
    computed: list[str] = []

    def execute(task: CellTask, key: CellKey, data: object = None, validation: object = None) -> CellResult:
        computed.append(key.name)
        return _fake_rows(cfg, key)

    first, _ = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    second, _ = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    assert len(computed) == 2  # the re-run restored both cells
    runs = _runs(store)
    originals = {r.data.tags["cell"]: r for r in _children(runs, first)}
    references = {r.data.tags["cell"]: r for r in _children(runs, second)}
    assert len(originals) == 2 and set(references) == set(originals)
    client = client_for(store)
    for cid, ref in references.items():
        assert ref.data.tags["autos.reference_to"] == originals[cid].info.run_id and ref.info.status == "FINISHED"
        assert ref.data.metrics["final_test_acc"] == originals[cid].data.metrics["final_test_acc"]
        assert client.list_artifacts(ref.info.run_id, "plots") == []  # the numbers only
        assert client.list_artifacts(originals[cid].info.run_id, "plots") != []
    assert client_for(store).get_run(second).data.tags["autos.cells_cached"] == "2"
    summary = client_for(store).get_run(second).data.metrics
    assert summary["acc/random/s90/mean"] == 45.0 and summary["acc/random/s90/n"] == 1
    assert "acc/random/s90/std" not in summary  # no spread from one seed

    # Rows saved, their runs in MLflow, the "logged" flag lost (a kill between ending the runs and saving the flag):
    # the next run finds the computing runs by their cell id and refers to them, it does not log them again.
    cell_store = CellStore(store / "cells")
    for key, cid in cells:
        cached = cell_store.load(key, cid)
        assert cached is not None and cached.logged
        cached.logged = False
        cell_store.save(cached)
    third, _ = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    third_runs = _children(_runs(store), third)
    assert {r.data.tags["autos.reference_to"] for r in third_runs} == {r.info.run_id for r in originals.values()}
    assert len(computed) == 2


def test_unlogged_cached_cell_is_logged_once(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cfg = _config(methods=["random"], sparsities=[0.9], seeds=[0], modifiers=["shuffle"])
    cells = _cells(cfg)
    cell_store = CellStore(store / "cells")
    for key, cid in cells:  # rows on disk, no run in MLflow
        result = _fake_rows(cfg, key)
        result.cell_id = cid
        cell_store.save(result)

    def execute(task: CellTask, key: CellKey, data: object = None, validation: object = None) -> CellResult:
        raise AssertionError("a cached cell must not run")

    first, _ = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    second, _ = _sweep(store, cfg, cells, store / "cells", execute, monkeypatch)
    runs = _runs(store)
    logged = _children(runs, first)
    assert sorted(r.info.run_name for r in logged) == [f"{TARGET} / dense / seed 0",
                                                       f"{TARGET} / random / s=90% / seed 0"]
    assert all(r.data.tags.get("autos.restored") == "true" and r.info.status == "FINISHED" for r in logged)
    variant = [r for cell in logged for r in _children(runs, cell.info.run_id)]
    assert [r.info.run_name for r in variant] == [f"{TARGET} / random+shuffle / s=90% / seed 0"]
    # logged once in full; the next sweep refers to those runs
    assert {r.data.tags.get("autos.reference_to") for r in _children(runs, second)} == {r.info.run_id for r in logged}
    assert all(c.logged for c in (cell_store.load(k, cid) for k, cid in cells) if c is not None)


def test_a_failing_cell_ends_failed_and_an_interrupted_one_killed(store: Path,  # noqa: F811
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(methods=["random"], sparsities=[0.9], seeds=[0], modifiers=[])
    cells = _cells(cfg)

    def broken(task: CellTask, key: CellKey, data: object = None, validation: object = None) -> CellResult:
        if key.method == "random":
            raise RuntimeError("boom\nout of memory in layer 3")
        return _fake_rows(cfg, key)

    parent, outcome = _sweep(store, cfg, cells, store / "a", broken, monkeypatch)
    assert isinstance(outcome, RuntimeError)
    by_name = {r.info.run_name: r for r in _children(_runs(store), parent)}
    assert by_name[f"{TARGET} / dense / seed 0"].info.status == "FINISHED"
    failed = by_name[f"{TARGET} / random / s=90% / seed 0"]
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "out of memory in layer 3"
    assert client_for(store).get_run(parent).info.status == "FAILED"

    def interrupted(task: CellTask, key: CellKey, data: object = None, validation: object = None) -> CellResult:
        raise KeyboardInterrupt

    parent, outcome = _sweep(store, cfg, cells, store / "b", interrupted, monkeypatch)
    assert isinstance(outcome, KeyboardInterrupt)
    statuses = Counter(r.info.status for r in _children(_runs(store), parent))
    assert statuses == {"KILLED": 1}  # the first cell's run; nothing else started
    assert client_for(store).get_run(parent).info.status == "KILLED"


def test_names_and_metric_keys() -> None:
    assert RunKey("t", "snip", 0.98, 0).title == "t / snip / s=98% / seed 0"
    assert RunKey("t", "snip", 0.995, 3, "invert").title == "t / snip+invert / s=99.5% / seed 3"
    assert RunKey("t", "dense", 0.0, 1).title == "t / dense / seed 1"
    assert metric_label("lottery_jackpots+shuffle") == "lottery_jackpots-shuffle"
    rows = [make_row(CellKey("t", "snip", 0.9, s), acc, m) for s, acc in ((0, 0.7), (1, 0.7 + 0.1 / 3), (2, 0.8))
            for m in (None, "reinit")]
    summary = {"mean": 74.44, "std": 5.09, "n": 3}  # percent, rounded: no float noise such as 74.44444444444444
    assert parent_metrics(rows) == {f"acc/{label}/s90/{k}": v for label in ("snip", "snip-reinit")
                                    for k, v in summary.items()}


def test_sibling_names_stay_unique(store: Path) -> None:  # noqa: F811
    tracker = Tracker(EXPERIMENT, root=store)
    with tracker.run("parent"):
        handles = [tracker.start_run("same") for _ in range(3)]
        for h in handles:
            h.end()
    assert sorted(h.name for h in handles) == ["same", "same (2)", "same (3)"]
    disabled = Tracker(EXPERIMENT, enabled=False).start_run("x")
    disabled.log_metrics({"a": 1.0})
    disabled.end("FAILED")  # a disabled tracker's handle does nothing


@pytest.fixture
def study(store: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A study root (the MLflow store's folder) with prepared CIFAR-10, a few images per class."""
    from autos.data import prepare_dataset

    prepare_dataset("cifar10", search_dirs=[shared_data], out_dir=store / "data" / "prepared" / "cifar10",
                    download=False, download_dir=None, max_train_per_class=4, max_test_per_class=2)
    shutil.copy(REPO / "paths.yaml", store / "paths.yaml")
    monkeypatch.setenv("AUTOS_ROOT", str(store))
    monkeypatch.chdir(store)
    return store


@pytest.mark.timeout(300)
def test_transfer_stage_logs_a_readable_sweep(study: Path, capfd: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    from autos.paths import study_paths
    from autos.pipeline.context import StageContext

    cfg = _config(methods=["random"], modifiers=["shuffle"], sparsities=[0.9], seeds=[0])
    cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"experiment": EXPERIMENT})})
    caplog.set_level(logging.INFO)
    transfer_stage.run(StageContext(name="transfer", cfg=cfg, root=study, paths=study_paths(study),
                                     args=argparse.Namespace(target=TARGET, params="params.yaml")))
    rows = json.loads((study / "data" / "transfer" / TARGET / "results.json").read_text())["rows"]
    assert [(r["method"], r["modifier"]) for r in rows] == [("dense", ""), ("random", ""), ("random", "shuffle")]

    runs = _runs(study)
    parent = next(r for r in runs if r.info.run_name == f"transfer {TARGET}")
    assert parent.info.status == "FINISHED"
    assert {"acc/dense/mean", "acc/random/s90/mean", "acc/random-shuffle/s90/n"} <= set(parent.data.metrics)
    assert parent.data.metrics["acc/random/s90/mean"] == round(100 * rows[1]["final_test_acc"], 2)
    assert parent.data.tags["autos.cells_run"] == "2"
    cell_runs = {r.info.run_name: r for r in _children(runs, parent.info.run_id)}
    assert sorted(cell_runs) == [f"{TARGET} / dense / seed 0", f"{TARGET} / random / s=90% / seed 0"]
    random_run = cell_runs[f"{TARGET} / random / s=90% / seed 0"]
    variant = _children(runs, random_run.info.run_id)
    assert [r.info.run_name for r in variant] == [f"{TARGET} / random+shuffle / s=90% / seed 0"]
    client = client_for(study)
    for run in [*cell_runs.values(), *variant]:
        assert run.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/training_and_density.png"]
    # the cell's run spans the cell: opened before the mask selection and training, closed after them
    took = (random_run.info.end_time - random_run.info.start_time) / 1000
    assert took >= random_run.data.metrics["train_seconds"] + random_run.data.metrics["select_seconds"] - 0.01

    lines = [r.getMessage() for r in caplog.records]
    assert f"transfer {TARGET}: cell 2/2 done (random s=90% seed 0, " in "\n".join(lines)
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert "\x1b[" not in text and "\r" not in text


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_cells_open_their_runs_when_a_slot_takes_them(store: Path, shared_data: Path) -> None:  # noqa: F811
    ray = pytest.importorskip("ray")
    from autos.data import load_prepared, prepare_dataset

    prepared = store / "prepared" / "cifar10"
    prepare_dataset("cifar10", search_dirs=[shared_data], out_dir=prepared, download=False, download_dir=None,
                    max_train_per_class=4, max_test_per_class=2)
    cfg = _config(methods=["random"], modifiers=[], sparsities=[0.5, 0.9], seeds=[0],
                  execution={"backend": "ray", "num_cpus": 1})
    cells = _cells(cfg)
    events: list[tuple[str, str]] = []

    class Recorded(SweepRuns):  # type: ignore[misc, valid-type]
        def on_start(self, key: CellKey, cid: str) -> None:
            super().on_start(key, cid)
            status = client_for(store).get_run(self.open[cid].run_id).info.status
            events.append(("start", f"{cid} {status}"))

        def on_finish(self, cell: CellResult) -> None:
            events.append(("finish", cell.cell_id))
            super().on_finish(cell)

    tracker = Tracker(EXPERIMENT, root=store)
    task = CellTask(cfg=cfg, root=REPO, cache_dir=store / "cache", torch_threads=1)
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        with tracker.run(f"transfer {TARGET}"):
            parent_id = tracker.active_run_id()
            results = Recorded(tracker, CellStore(store / "cells"), parent_id).run(cells, task,
                                                                                   load_prepared(prepared),
                                                                                   cfg.execution)
    finally:
        ray.shutdown()
    assert [r.cell_id for r in results] == [cid for _, cid in cells]
    in_flight, most = 0, 0
    for kind, what in events:
        in_flight += 1 if kind == "start" else -1
        most = max(most, in_flight)
        if kind == "start":
            assert what.endswith(" RUNNING")
    assert most == 2  # two slots: the third cell waits (and its run is opened) until one is free
    children = _children(_runs(store), parent_id)
    assert sorted(r.info.run_name for r in children) == sorted(
        [f"{TARGET} / dense / seed 0", f"{TARGET} / random / s=50% / seed 0", f"{TARGET} / random / s=90% / seed 0"])
    assert {r.info.status for r in children} == {"FINISHED"}
