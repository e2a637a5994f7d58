"""Sweep cells (autos.sweep.cells) and their executors (autos.sweep.executors): stable ids, result files that
survive a kill,
resumption that recomputes only the missing cells with identical rows, and the Ray backend against local."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autos.config import ExecutionConfig
from autos.data import prepare_dataset
from autos.files import TIMING_KEYS, without_keys
from autos.study import parse_study
from autos.sweep import executors
from autos.sweep.cells import RESULT_NEUTRAL, CellKey, CellResult, CellStore, cell_id, cell_inputs, plan_cells
from autos.sweep.executors import CellTask, ExecutionError, run_cells

REPO = Path(__file__).resolve().parents[1]


def _config(**execution: object) -> object:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=["random", "magnitude"], modifiers=["shuffle"], sparsities=[0.5, 0.9],
                           seeds=[0], dense=True)
    raw["training"].update(batch_size=32)
    raw["execution"] = dict(execution)
    return parse_study(raw)


def _cells(cfg, code: str = "code") -> list[tuple[CellKey, str]]:  # noqa: ANN001
    return [(k, cell_id(k, cell_inputs(cfg, k, method_settings={}, data_digest="d", scorer_digest=None,
                                       code_digest=code, device_type="cpu")))
            for k in plan_cells(cfg, "vgg16_cifar10")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = REPO.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("shared offline data not found")
    out = tmp_path_factory.mktemp("prep") / "cifar10"
    prepare_dataset("cifar10", search_dirs=[shared], out_dir=out, download=False, download_dir=None,
                    max_train_per_class=6, max_test_per_class=3)
    return out


def _task(cfg, prepared: Path, tmp: Path, threads: int | None = 1) -> CellTask:  # noqa: ANN001
    return CellTask(cfg=cfg, data_dir=prepared, root=REPO, cache_dir=tmp / "cache", torch_threads=threads)


def _rows(results: list[CellResult]) -> list[dict]:
    return [without_keys(r, TIMING_KEYS) for cell in results for r in cell.rows]


def test_plan_order_and_stable_ids() -> None:
    cfg = _config()
    keys = [k for k, _ in _cells(cfg)]
    assert [(k.method, k.sparsity) for k in keys] == [("dense", 0.0), ("random", 0.5), ("random", 0.9),
                                                       ("magnitude", 0.5), ("magnitude", 0.9)]
    ids = [c for _, c in _cells(cfg)]
    assert ids == [c for _, c in _cells(cfg)] and len(set(ids)) == len(ids)  # stable and distinct
    assert [c for _, c in _cells(cfg, code="other")] != ids  # a code change invalidates cached cells
    key = keys[1]
    base = cell_inputs(cfg, key, method_settings={}, data_digest="d", scorer_digest=None, code_digest="c",
                       device_type="cpu")
    changed = cell_inputs(cfg, key, method_settings={"scope": "layerwise"}, data_digest="d", scorer_digest=None,
                          code_digest="c", device_type="cpu")
    on_gpu = cell_inputs(cfg, key, method_settings={}, data_digest="d", scorer_digest=None, code_digest="c",
                         device_type="cuda")
    assert len({cell_id(key, base), cell_id(key, changed), cell_id(key, on_gpu)}) == 3  # GPU rows never mix in


def test_only_autos_cells_depend_on_the_scorer_and_features() -> None:
    """Retraining the scorer (or changing anything upstream of it) must not re-run a baseline or dense cell."""
    cfg = _config()
    raw = cfg.model_dump(mode="json")
    raw["transfer"]["methods"] = ["autos", "random"]
    raw["features"]["gradient_batch_size"] = 32
    changed_features = parse_study(raw)

    def ids(study, scorer: str) -> dict[str, str]:  # noqa: ANN001
        return {k.name: cell_id(k, cell_inputs(study, k, method_settings={}, data_digest="d", scorer_digest=scorer,
                                               code_digest="c", device_type="cpu"))
                for k in plan_cells(study, "vgg16_cifar10")}

    raw["features"]["gradient_batch_size"] = 64
    base = ids(parse_study(raw), "scorer-a")
    for other in (ids(parse_study(raw), "scorer-b"), ids(changed_features, "scorer-a")):
        assert {n for n in base if base[n] != other[n]} == {n for n in base if "/autos@" in n}


def test_modifiers_apply_to_the_listed_methods_only() -> None:
    raw = _config().model_dump(mode="json")
    raw["transfer"].update(methods=["random", "magnitude"], modifiers=["shuffle"], modifier_methods=["magnitude"])
    transfer = parse_study(raw).transfer
    assert transfer.modifiers_for("magnitude") == ["shuffle"] and transfer.modifiers_for("random") == []
    raw["transfer"]["modifier_methods"] = ["snip"]
    with pytest.raises(Exception, match="modifier_methods: 'snip' not in transfer.methods"):
        parse_study(raw)


def test_result_neutral_modules_are_not_imported_by_the_cell_computation() -> None:
    """Edits to RESULT_NEUTRAL modules keep cached cells; that is only sound if computing a cell never runs them."""
    code = "import sys, autos.sweep.run_cell; print(' '.join(sorted(m for m in sys.modules if m.startswith('autos'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=120).stdout.split()
    neutral = {"autos." + name.removesuffix(".py") for name in RESULT_NEUTRAL}
    assert "autos.sweep.run_cell" in loaded and "autos.pruners.autos_scorer" in loaded
    assert not [m for m in loaded if m in neutral or m.split(".")[:2] == ["autos", "report"]]


def test_store_refuses_corrupt_or_foreign_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CellStore(tmp_path)
    key, other = CellKey("t", "random", 0.5, 0), CellKey("t", "random", 0.9, 0)
    store.save(CellResult(key, [{"a": 1.25}], [[{"epoch": 1}]], cell_id="abc"))
    assert store.load(key, "abc").rows == [{"a": 1.25}]  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        assert store.load(other, "abc") is None  # another cell's file under this id: recomputed
        store.save(CellResult(key, [{"a": 1}], [[]], cell_id="abc"))
        store.path("abc").write_text("{not json")
        assert store.load(key, "abc") is None
    assert not store.path("abc").exists()
    assert sum("recomputing" in r.getMessage() for r in caplog.records) == 2


def test_interrupted_sweep_resumes_only_missing_cells_with_identical_rows(
        prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config()
    cells = _cells(cfg)
    task = _task(cfg, prepared, tmp_path)
    local = ExecutionConfig()
    reference = _rows(run_cells(cells, task, CellStore(tmp_path / "ref"), local, lambda c: None))

    store = CellStore(tmp_path / "run")
    done: list[str] = []

    def killed_after_two(cell: CellResult) -> None:
        done.append(cell.cell_id)
        if len(done) == 2:
            raise KeyboardInterrupt  # as SIGTERM would, between cells
    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, task, store, local, killed_after_two)
    assert len(list(store.folder.glob("*.json"))) == 2

    executed: list[str] = []
    real = executors.execute_cell
    monkeypatch.setattr(executors, "execute_cell", lambda t, k: executed.append(k.name) or real(t, k))
    resumed = run_cells(cells, task, store, local, lambda c: None)
    assert len(executed) == len(cells) - 2  # only the missing cells ran
    assert _rows(resumed) == reference  # identical rows, in the planned order


@pytest.mark.timeout(600)
def test_ray_backend_matches_local_and_refuses_impossible_requests(prepared: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    cfg = _config(backend="ray", num_cpus=1)
    cells = _cells(cfg)[:3]
    local = _rows(run_cells(cells, _task(cfg, prepared, tmp_path), CellStore(tmp_path / "local"),
                            ExecutionConfig(num_cpus=1), lambda c: None))
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        seen: list[str] = []
        remote = run_cells(cells, _task(cfg, prepared, tmp_path), CellStore(tmp_path / "ray"), cfg.execution,
                           lambda c: seen.append(c.key.name))
        assert _rows(remote) == local  # same rows whatever the backend (same threads per cell)
        assert seen == [k.name for k, _ in cells]  # handed to the driver in planned order
        with pytest.raises(ExecutionError, match="asks for 1 GPU"):
            run_cells(cells, _task(cfg, prepared, tmp_path), CellStore(tmp_path / "gpu"),
                      ExecutionConfig(backend="ray", num_gpus=1), lambda c: None)
    finally:
        ray.shutdown()


@pytest.mark.timeout(600)
def test_ray_failing_cell_is_retried_reported_by_id_while_the_others_finish(prepared: Path, tmp_path: Path) -> None:
    """A cell that raises in its worker is retried ``max_retries`` times, then named with its id and error; the
    other cells finish and are kept, and a re-run computes nothing that already finished."""
    ray = pytest.importorskip("ray")
    cfg = _config(backend="ray", num_cpus=1, max_retries=1)
    good = _cells(cfg)[:2]
    broken = (CellKey("vgg16_cifar10", "no_such_method", 0.5, 0), "brokencell0000000000")
    store = CellStore(tmp_path / "ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        done: list[str] = []
        with pytest.raises(ExecutionError) as failed:
            run_cells([good[0], broken, good[1]], _task(cfg, prepared, tmp_path), store, cfg.execution,
                      lambda c: done.append(c.cell_id))
        message = str(failed.value)
        assert "1 cell(s) failed" in message and "brokencell0000000000" in message and "no_such_method" in message
        assert done == [good[0][1]]  # on_done keeps the planned order: the cell after the failed one waits
        assert sorted(p.stem for p in store.folder.glob("*.json")) == sorted(cid for _, cid in good)  # kept
        started: list[str] = []
        rerun = run_cells(good, _task(cfg, prepared, tmp_path), store, cfg.execution, lambda c: None,
                          on_start=lambda key, cid: started.append(cid))
        assert [c.cell_id for c in rerun] == [cid for _, cid in good] and started == []  # restored, none recomputed
    finally:
        ray.shutdown()


def test_unreachable_ray_address_fails_fast_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = _config(backend="ray", address=f"127.0.0.1:{port}")
    with pytest.raises(ExecutionError, match=f"127.0.0.1:{port}.*does not answer"):
        run_cells(_cells(cfg)[:1], _task(cfg, tmp_path, tmp_path), CellStore(tmp_path / "s"), cfg.execution,
                  lambda c: None)
    assert not (tmp_path / "s").exists()  # nothing written
