"""The tracking store is usable, or a stage stops with one sentence: a fresh SQLite store is created once and atomically
(a creator killed half way, two creators at once), a half-made one is recreated when it holds no runs and refused
otherwise, runtime faults (a missing folder, a too long experiment name, a full disk) are named, and a copied
workspace writes its artifacts into its own folder.

Stores are real SQLite files in tmp_path; the killed and concurrent creators are real child processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tracking import EXPERIMENT, child_env, client_for, empty_db, runs_by_name, store  # noqa: F401  (fixtures)

from autos import tracking
from autos.tracking import Tracker, TrackingError

DB = tracking.DB_NAME


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace without a store yet; MLflow's process-wide state is reset afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AUTOS_ROOT", raising=False)
    yield tmp_path
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
    tracking.TRACKED_EXPERIMENTS.clear()


CREATE = """
import logging, sys
from pathlib import Path
from autos.tracking import Tracker
logging.basicConfig(level=logging.INFO)
tracker = Tracker({experiment!r}, root=Path({root!r}))
with tracker.run("created by " + sys.argv[1]):
    pass
"""


# A creator that stops half way through MLflow's schema migrations and waits there to be killed: the kill lands
# inside the creation whatever the machine's speed.
HALF_WAY = """
import time
from alembic import command
from alembic.script import ScriptDirectory
real_upgrade = command.upgrade
def half_way(config, revision, *args, **kwargs):
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())[::-1]  # the first one first
    real_upgrade(config, revisions[len(revisions) // 2].revision, *args, **kwargs)
    print("half way", flush=True)
    time.sleep(600)
command.upgrade = half_way
"""


def _creator(root: Path, name: str, preamble: str = "") -> subprocess.Popen[str]:
    code = preamble + CREATE.format(experiment=EXPERIMENT, root=str(root))
    return subprocess.Popen([sys.executable, "-c", code, name], env=child_env(), cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_creation_killed_half_way_leaves_no_store_and_the_next_tracker_makes_one(fresh: Path) -> None:
    proc = _creator(fresh, "killed", HALF_WAY)
    tmp = fresh / f"{DB}.creating-{proc.pid}"
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "half way", proc.communicate(timeout=30)[1]
        assert proc.poll() is None and tmp.exists() and tmp.stat().st_size > 0  # half-made, under its temp name
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert not (fresh / DB).exists()  # nothing half-written under the store's name
    assert tmp.exists()

    tracker = Tracker(EXPERIMENT, root=fresh)
    with tracker.run("after the kill"):
        pass
    assert runs_by_name(fresh)["after the kill"].info.status == "FINISHED"
    assert not list(fresh.glob(f"{DB}.creating-*"))  # the killed creator's temp file is gone


def test_two_processes_creating_one_store_at_once_both_log(fresh: Path) -> None:
    procs = [_creator(fresh, name) for name in ("first", "second")]
    try:
        outcomes = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for proc, (_, stderr) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, stderr
        assert "alembic_tmp" not in stderr and "Traceback" not in stderr
    assert sum(err.count("store:creating MLflow store") for _, err in outcomes) == 1  # made once, the other waited
    runs = runs_by_name(fresh)
    assert {runs[f"created by {n}"].info.status for n in ("first", "second")} == {"FINISHED"}
    assert not list(fresh.glob(f"{DB}.creating-*"))


def _half_migrated(db: Path, empty_db: Path, runs: int) -> None:  # noqa: F811
    """A store as MLflow leaves it when killed in a migration: a batch-migration temp table left behind."""
    shutil.copyfile(empty_db, db)
    client = client_for(db.parent)
    for i in range(runs):
        client.create_run("0", run_name=f"old run {i}")
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250), value VARCHAR(5000))")
    con.close()


def test_a_half_migrated_store_without_runs_is_made_again(fresh: Path, empty_db: Path,  # noqa: F811
                                                          caplog: pytest.LogCaptureFixture) -> None:
    _half_migrated(fresh / DB, empty_db, runs=0)
    caplog.set_level(logging.WARNING, logger="autos.tracking")
    tracker = Tracker(EXPERIMENT, root=fresh)
    with tracker.run("after repair"):
        pass
    assert runs_by_name(fresh)["after repair"].info.status == "FINISHED"
    assert any("half-created" in r.getMessage() and "_alembic_tmp_tags" in r.getMessage() for r in caplog.records)
    assert tracking.store.inspect_store(fresh / DB).problem() is None  # type: ignore[union-attr]


STAGE = """
from pathlib import Path
import autos.pipeline.context
from autos.tracking import Tracker
from autos.pipeline.context import parser, run_stage

autos.pipeline.context.load_study = lambda path: None
autos.pipeline.context.study_paths = lambda root: None
run_stage("fake_stage", lambda ctx: Tracker({experiment!r}, root=Path({root!r})), parser("test"))
"""


def test_a_half_migrated_store_with_runs_stops_the_stage_with_one_line(fresh: Path, empty_db: Path) -> None:  # noqa: F811
    db = fresh / DB
    _half_migrated(db, empty_db, runs=2)
    before = db.read_bytes()
    stage = subprocess.run([sys.executable, "-c", STAGE.format(experiment=EXPERIMENT, root=str(fresh))],
                           env=child_env(), cwd=fresh, capture_output=True, text=True, timeout=240)
    assert stage.returncode == 1, stage.stderr
    assert "Traceback" not in stage.stderr
    last = stage.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fake_stage: The MLflow store {db} was left half-migrated (leftover migration table "
                           "_alembic_tmp_tags) and holds 2 runs: ")
    assert "mlflow db upgrade" in last and "move it aside" in last
    assert db.read_bytes() == before  # refused, not touched


def test_a_file_that_is_no_database_is_named(fresh: Path) -> None:
    (fresh / DB).write_bytes(b"not a database" * 100)
    with pytest.raises(TrackingError, match=f"The MLflow store {fresh / DB} cannot be read .*move it aside"):
        Tracker(EXPERIMENT, root=fresh)


@pytest.mark.parametrize("folder", ["missing/sub", "a-file"])
def test_a_store_in_a_folder_that_does_not_exist_is_named(fresh: Path, monkeypatch: pytest.MonkeyPatch,
                                                          folder: str) -> None:
    (fresh / "a-file").write_text("not a folder")
    uri = f"sqlite:///{fresh / folder / DB}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError) as info:
        Tracker(EXPERIMENT, root=fresh)
    message = str(info.value)
    assert message.startswith(f"The folder {fresh / folder} of the MLflow store {fresh / folder / DB} does not exist")
    assert "MLFLOW_TRACKING_URI" in message and "\n" not in message
    assert not (fresh / "missing").exists()  # no folder made from a typo


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_store_in_a_read_only_folder_is_named(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fresh / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / DB}")
        with pytest.raises(TrackingError, match=f"Cannot create the MLflow store {folder / DB} .*writable"):
            Tracker(EXPERIMENT, root=fresh)
    finally:
        folder.chmod(0o755)


def test_a_too_long_experiment_name_is_refused_before_anything_is_written(fresh: Path) -> None:
    with pytest.raises(TrackingError) as info:
        Tracker("x" * 10_000, root=fresh)
    message = str(info.value)
    assert "10000 characters" in message and "limit of 500" in message and "tracking.experiment" in message
    assert "\n" not in message and len(message) < 300
    assert not (fresh / DB).exists()


def test_a_full_disk_in_a_stage_is_one_sentence_and_ends_the_run_failed(store: Path,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc
    import sqlalchemy.orm

    def full(self: object) -> None:
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))

    tracker = Tracker(EXPERIMENT, root=store)
    with pytest.raises(TrackingError) as from_tracker, tracker.run("full disk"):
        handle = tracker.start_run("cell")
        with monkeypatch.context() as patch:
            patch.setattr(sqlalchemy.orm.Session, "commit", full)
            with pytest.raises(TrackingError) as from_handle:
                handle.log_metrics({"acc": 0.5})
            tracker.log_metrics({"acc": 0.5})
    handle.end("FAILED")
    for info in (from_handle, from_tracker):
        message = str(info.value)
        assert message == (f"MLflow store {tracking.tracking_uri(store)} cannot be used: the disk is full; free space "
                           f"on {store}, or set tracking.enabled: false in the params file.")
    assert runs_by_name(store)["full disk"].info.status == "FAILED"


def _artifact_files(root: Path) -> list[str]:
    folder = root / tracking.ARTIFACT_DIR
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_copied_workspace_writes_artifacts_into_its_own_folder(store: Path, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    note = tmp_path_factory.mktemp("note") / "note.txt"
    note.write_text("hello")
    original = Tracker(EXPERIMENT, root=store)
    with original.run("in original"):
        original.log_artifact(note)
    copy = tmp_path_factory.mktemp("copy") / "workspace"
    shutil.copytree(store, copy)

    caplog.set_level(logging.WARNING, logger="autos.tracking")
    copied = Tracker(EXPERIMENT, root=copy)
    assert sum("was copied or moved" in r.getMessage() for r in caplog.records) == 1
    with copied.run("in copy"):
        copied.log_artifact(note)
    in_copy = runs_by_name(copy)
    copy_root = (copy / tracking.ARTIFACT_DIR).as_uri()
    for name in ("in original", "in copy"):  # old runs read the copy's artifacts, new ones write there
        assert in_copy[name].info.artifact_uri.startswith(copy_root + "/"), name
        assert (copy / tracking.ARTIFACT_DIR / in_copy[name].info.run_id / "artifacts" / "note.txt").is_file()
    assert [a.path for a in client_for(copy).list_artifacts(in_copy["in original"].info.run_id)] == ["note.txt"]
    assert _artifact_files(store) == [f"{runs_by_name(store)['in original'].info.run_id}/artifacts/note.txt"]

    caplog.clear()
    Tracker(EXPERIMENT, root=copy)  # relocated once: no warning again
    again = Tracker(EXPERIMENT, root=store)  # the original, used again, still writes into its own folder
    with again.run("original again"):
        again.log_artifact(note)
    assert not any("copied" in r.getMessage() for r in caplog.records)
    assert runs_by_name(store)["original again"].info.artifact_uri.startswith((store / "mlartifacts").as_uri() + "/")
    assert len(_artifact_files(store)) == 2 and len(_artifact_files(copy)) == 2
