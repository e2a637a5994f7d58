"""Sweep cells (autos.sweep.cells) and their executors (autos.sweep.executors): stable ids, result files that
survive a kill,
resumption that recomputes only the missing cells with identical rows, and the Ray backend against local."""

from __future__ import annotations

import ast
import json
import logging
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from rows import make_row

from autos.codebase import SRC
from autos.config import ExecutionConfig
from autos.data import prepare_dataset
from autos.data.prepared import PreparedData, load_prepared
from autos.errors import DataError
from autos.pruners import PRUNERS
from autos.study import parse_study
from autos.sweep import executors
from autos.sweep.cells import CellKey, CellResult, CellStore
from autos.sweep.executors import CellTask, ExecutionError, run_cells
from autos.sweep.plan import cell_code_digest, plan_sweep

REPO = Path(__file__).resolve().parents[1]


def _config(**execution: object) -> object:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["transfer"].update(methods=["random", "magnitude"], modifiers=["shuffle"], sparsities=[0.5, 0.9],
                           seeds=[0], dense=True)
    raw["training"].update(batch_size=32)
    raw["execution"] = dict(execution)
    return parse_study(raw)


def _cells(cfg, scorer_dir: Path = REPO / "no-scorer", **overrides: object) -> list[tuple[CellKey, str]]:  # noqa: ANN001
    values: dict = {"data_digest": "d", "scorer_dir": scorer_dir, "device_type": "cpu", "torch_threads": 1, **overrides}
    return plan_sweep(cfg, "vgg16_cifar10", **values).cells


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    shared = REPO.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("shared offline data not found")
    out = tmp_path_factory.mktemp("prep") / "cifar10"
    prepare_dataset("cifar10", search_dirs=[shared], out_dir=out, download=False, download_dir=None,
                    max_train_per_class=6, max_test_per_class=3)
    return load_prepared(out)


def _task(cfg, tmp: Path, threads: int | None = 1) -> CellTask:  # noqa: ANN001
    return CellTask(cfg=cfg, root=REPO, cache_dir=tmp / "cache", torch_threads=threads)


def _rows(results: list[CellResult]) -> list[dict]:
    return [r.to_json(timing=False) for cell in results for r in cell.rows]


def test_plan_order_and_stable_ids() -> None:
    cfg = _config()
    keys = [k for k, _ in _cells(cfg)]
    assert [(k.method, k.sparsity) for k in keys] == [("dense", 0.0), ("random", 0.5), ("random", 0.9),
                                                       ("magnitude", 0.5), ("magnitude", 0.9)]
    ids = [c for _, c in _cells(cfg)]
    assert ids == [c for _, c in _cells(cfg)] and len(set(ids)) == len(ids)  # stable and distinct
    # the data, the device and (on a CPU) the thread count are part of every id: rows never mix across them
    for change in ({"data_digest": "other"}, {"device_type": "cuda"}, {"torch_threads": 2}):
        assert all(a != b for a, b in zip(ids, [c for _, c in _cells(cfg, **change)], strict=True)), change
    raw = cfg.model_dump(mode="json")
    raw["transfer"]["methods"] = ["random", "snip"]
    base = dict(_cells(parse_study(raw)))
    raw["transfer"]["method_settings"] = {"snip": {"batch_size": 8}}
    changed = dict(_cells(parse_study(raw)))
    assert [changed[k] == c for k, c in base.items()] == [True, True, True, False, False]  # that method's cells


def _scorer_dir(tmp: Path, weights: str) -> Path:
    """The scorers of the smoke study's two source runs (sources.seeds [0, 1])."""
    for source in (0, 1):
        (tmp / str(source)).mkdir(parents=True, exist_ok=True)
        (tmp / str(source) / "scorer.json").write_text(json.dumps({"weights_sha256": f"{weights}-{source}"}))
    return tmp


def test_only_cells_reading_the_scorer_depend_on_it_and_on_the_features(tmp_path: Path) -> None:
    """Retraining the scorer (or changing anything upstream of it) must not re-run a baseline or dense cell."""
    raw = _config().model_dump(mode="json")
    raw["transfer"]["methods"] = ["autos", "random"]

    def ids(gradient_batch_size: int, weights: str) -> dict[str, str]:
        raw["features"]["gradient_batch_size"] = gradient_batch_size
        cells = _cells(parse_study(raw), scorer_dir=_scorer_dir(tmp_path / weights, weights))
        return {k.name: c for k, c in cells}

    base = ids(64, "scorer-a")
    for other in (ids(64, "scorer-b"), ids(32, "scorer-a")):
        assert {n for n in base if base[n] != other[n]} == {n for n in base if "/autos@" in n}
    with pytest.raises(DataError, match="no readable trained scorer"):  # only asked for when a method reads it
        _cells(parse_study(raw), scorer_dir=tmp_path / "missing")
    _cells(_config(), scorer_dir=tmp_path / "missing")


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the library's source, to edit."""
    src = tmp_path_factory.mktemp("code") / "src"
    shutil.copytree(SRC / "autos", src / "autos", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _digests(src: Path, methods: list[str]) -> dict[str, str]:
    return {"dense": cell_code_digest(None, src),
            **{m: cell_code_digest(PRUNERS.record(m).module, src) for m in methods}}


def test_adding_a_method_reruns_no_other_cell_and_editing_the_loop_reruns_all(code_copy: Path) -> None:
    methods = PRUNERS.names()
    before = _digests(code_copy, methods)
    assert len({before[m] for m in ("dense", "snip", "synflow", "autos")}) == 4  # each its own code
    pruners = code_copy / "autos" / "pruners"
    (pruners / "my_method.py").write_text(
        "from autos.pruners._registry import PRUNERS\nfrom autos.pruners.basic import Magnitude\n\n\n"
        "@PRUNERS.register('my_method')\nclass MyMethod(Magnitude):\n    title = 'Mine'\n")
    init = pruners / "__init__.py"
    init.write_text(init.read_text().replace("    grasp,\n", "    grasp,\n    my_method,\n"))
    assert _digests(code_copy, methods) == before  # a new method module and its import line re-run nothing
    snip = pruners / "snip.py"
    snip.write_text(snip.read_text() + "\n# an edit\n")
    after_snip = _digests(code_copy, methods)
    assert {m for m in methods if after_snip[m] != before[m]} == {"snip"}
    loop = code_copy / "autos" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n# an edit\n")
    after_loop = _digests(code_copy, methods)
    assert all(after_loop[m] != after_snip[m] for m in after_loop)  # the training loop: every cell


def test_the_registry_init_holds_imports_only() -> None:
    """autos/pruners/__init__.py is left out of the cells' code digest (RESULT_NEUTRAL): sound only while it holds
    nothing that runs but imports (a docstring, imports, __all__)."""
    tree = ast.parse((SRC / "autos" / "pruners" / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign"}, kinds
    assigned = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)]
    assert assigned == ["__all__"]


def test_modifiers_apply_to_the_listed_methods_only() -> None:
    raw = _config().model_dump(mode="json")
    raw["transfer"].update(methods=["random", "magnitude"], modifiers=["shuffle"], modifier_methods=["magnitude"])
    transfer = parse_study(raw).transfer
    assert transfer.modifiers_for("magnitude") == ["shuffle"] and transfer.modifiers_for("random") == []
    raw["transfer"]["modifier_methods"] = ["snip"]
    with pytest.raises(Exception, match="modifier_methods: 'snip' not in transfer.methods"):
        parse_study(raw)


def test_store_round_trips_a_cell(tmp_path: Path) -> None:
    store, key = CellStore(tmp_path), CellKey("t", "random", 0.5, 0)
    store.save(CellResult(key, [make_row(key, 0.25)], [[{"epoch": 1}]], cell_id="abc"))
    loaded = store.load(key, "abc")
    assert loaded is not None and loaded.rows == [make_row(key, 0.25)] and loaded.histories == [[{"epoch": 1}]]


def _edit_rows(path: Path, edit: Callable[[dict], object]) -> None:
    raw = json.loads(path.read_text())
    edit(raw["rows"][0])
    path.write_text(json.dumps(raw))


HOSTILE = {  # what a cached cell file may have become, and why it is not used
    "another cell's file under this id": None,
    "not JSON": lambda p: p.write_text("{not json"),
    "a JSON list": lambda p: p.write_text("[]"),
    "a directory in its place": lambda p: (p.unlink(), p.mkdir(), (p / "x").write_text("")),
    "a plausible value edited in (checksum)": lambda p: _edit_rows(p, lambda r: r.update(final_test_acc=0.999)),
    "an impossible accuracy": lambda p: _edit_rows(p, lambda r: r.update(final_test_acc=99.9)),
    "NaN": lambda p: p.write_text(p.read_text().replace('"final_test_acc": 0.5', '"final_test_acc": NaN')),
    "a string for a number": lambda p: _edit_rows(p, lambda r: r.update(final_test_acc="0.5")),
    "a missing key": lambda p: _edit_rows(p, lambda r: r.pop("final_test_acc")),
    "an unknown key": lambda p: _edit_rows(p, lambda r: r.update(accuracy=0.5)),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_store_recomputes_a_cell_whose_file_is_not_sound(case: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store, key = CellStore(tmp_path), CellKey("t", "random", 0.5, 0)
    store.save(CellResult(key, [make_row(key)], [[{"epoch": 1}]], cell_id="abc"))
    spoil = HOSTILE[case]
    asked = CellKey("t", "random", 0.9, 0) if spoil is None else key
    if spoil is not None:
        spoil(store.path("abc"))
    with caplog.at_level(logging.WARNING):
        assert store.load(asked, "abc") is None
    assert not store.path("abc").exists()  # removed: the cell is recomputed and saved afresh
    assert any("recomputing" in r.getMessage() for r in caplog.records)
    store.save(CellResult(asked, [make_row(asked)], [[{"epoch": 1}]], cell_id="abc"))
    assert store.load(asked, "abc") is not None


def test_interrupted_sweep_resumes_only_missing_cells_with_identical_rows(
        prepared: PreparedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config()
    cells = _cells(cfg)
    task = _task(cfg, tmp_path)
    local = ExecutionConfig()
    reference = _rows(run_cells(cells, task, prepared, CellStore(tmp_path / "ref"), local, lambda c: None))

    store = CellStore(tmp_path / "run")
    done: list[str] = []

    def killed_after_two(cell: CellResult) -> None:
        done.append(cell.cell_id)
        if len(done) == 2:
            raise KeyboardInterrupt  # as SIGTERM would, between cells
    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, task, prepared, store, local, killed_after_two)
    assert len(list(store.folder.glob("*.json"))) == 2

    executed: list[str] = []
    real = executors.execute_cell
    monkeypatch.setattr(executors, "execute_cell", lambda t, k, d, v=None: executed.append(k.name) or real(t, k, d, v))
    resumed = run_cells(cells, task, prepared, store, local, lambda c: None)
    assert len(executed) == len(cells) - 2  # only the missing cells ran
    assert _rows(resumed) == reference  # identical rows, in the planned order


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_backend_matches_local_and_refuses_impossible_requests(prepared: PreparedData, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    cfg = _config(backend="ray", num_cpus=1)
    cells = _cells(cfg)[:3]
    local = _rows(run_cells(cells, _task(cfg, tmp_path), prepared, CellStore(tmp_path / "local"),
                            ExecutionConfig(num_cpus=1), lambda c: None))
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        seen: list[str] = []
        remote = run_cells(cells, _task(cfg, tmp_path), prepared, CellStore(tmp_path / "ray"), cfg.execution,
                           lambda c: seen.append(c.key.name))
        assert _rows(remote) == local  # same rows whatever the backend (same threads per cell)
        assert seen == [k.name for k, _ in cells]  # handed to the driver in planned order
        with pytest.raises(ExecutionError, match="asks for 1 GPU"):
            run_cells(cells, _task(cfg, tmp_path), prepared, CellStore(tmp_path / "gpu"),
                      ExecutionConfig(backend="ray", num_gpus=1), lambda c: None)
    finally:
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ray_failing_cell_is_retried_reported_by_id_while_the_others_finish(prepared: PreparedData,
                                                                             tmp_path: Path) -> None:
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
            run_cells([good[0], broken, good[1]], _task(cfg, tmp_path), prepared, store, cfg.execution,
                      lambda c: done.append(c.cell_id))
        message = str(failed.value)
        assert "1 cell(s) failed" in message and "brokencell0000000000" in message and "no_such_method" in message
        assert done == [good[0][1]]  # on_done keeps the planned order: the cell after the failed one waits
        assert sorted(p.stem for p in store.folder.glob("*.json")) == sorted(cid for _, cid in good)  # kept
        started: list[str] = []
        rerun = run_cells(good, _task(cfg, tmp_path), prepared, store, cfg.execution, lambda c: None,
                          on_start=lambda key, cid: started.append(cid))
        assert [c.cell_id for c in rerun] == [cid for _, cid in good] and started == []  # restored, none recomputed
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_unreachable_ray_address_fails_fast_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = _config(backend="ray", address=f"127.0.0.1:{port}")
    with pytest.raises(ExecutionError, match=f"127.0.0.1:{port}.*does not answer"):
        run_cells(_cells(cfg)[:1], _task(cfg, tmp_path), None, CellStore(tmp_path / "s"),  # type: ignore[arg-type]
                  cfg.execution,
                  lambda c: None)
    assert not (tmp_path / "s").exists()  # nothing written


def test_a_methods_cells_share_one_key_across_sparsities_and_nothing_else() -> None:
    cfg = _config()
    plan = plan_sweep(cfg, "vgg16_cifar10", data_digest="d", scorer_dir=REPO, device_type="cpu", torch_threads=1)
    keys = {k.name: plan.share_key(k) for k, _ in plan.cells}
    assert keys["vgg16_cifar10/dense@0/seed0"] is None  # the dense cell shares nothing
    assert keys["vgg16_cifar10/random@0.5/seed0"] == keys["vgg16_cifar10/random@0.9/seed0"] is not None
    assert keys["vgg16_cifar10/random@0.5/seed0"] != keys["vgg16_cifar10/magnitude@0.5/seed0"]
    raw = cfg.model_dump(mode="json")
    raw["transfer"]["variants"] = {"magnitude_layerwise": {"method": "magnitude", "settings": {"scope": "layerwise"}}}
    raw["transfer"]["methods"] = ["random", "magnitude", "magnitude_layerwise"]
    other = plan_sweep(parse_study(raw), "vgg16_cifar10", data_digest="d", scorer_dir=REPO, device_type="cpu",
                       torch_threads=1)
    assert other.share_keys["magnitude_layerwise/0"] != plan.share_keys["magnitude/0"]  # a variant: its own work
    assert other.share_keys["random/0"] == plan.share_keys["random/0"]


@pytest.mark.ray
def test_address_auto_with_no_cluster_and_a_refused_token_are_one_sentence_each(monkeypatch) -> None:
    """`execution.address: auto` on a machine with no cluster, and a cluster that refuses this process's token (Ray
    2.59+ authenticates by token), end in an ExecutionError that says what to do, not in Ray's traceback."""
    ray = pytest.importorskip("ray")
    import types

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ExecutionError, match=r"no Ray cluster found at 'auto' .*ray start --head"):
        executors._connect(ray, "auto")
    assert not ray.is_initialized()

    def refuse(**kwargs: object) -> None:
        raise ray.exceptions.AuthenticationError("Invalid authentication token")

    fake = types.SimpleNamespace(init=refuse, exceptions=ray.exceptions)
    with pytest.raises(ExecutionError, match=r"refused this process's token \(Invalid authentication token\); run "
                                             r"`ray get-auth-token` on the head node and set RAY_AUTH_TOKEN"):
        executors._connect(fake, "10.0.0.1:6379")
