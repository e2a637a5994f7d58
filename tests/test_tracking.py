"""MLflow state stays true: orphans of killed stages are closed, SIGTERM ends runs as KILLED, a dead or failing server
fails fast, the caller's environment is left as it was, and the scorer is logged with its signature in plain text.
The store itself (creation, faults, copied workspaces): tests/test_tracking_store.py.

Everything runs against a real SQLite store in tmp_path; the killed and interrupted stages are real child processes.
"""

from __future__ import annotations

import http.server
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autos import tracking
from autos.errors import AutosError
from autos.tracking import TAG_HOST, TAG_PID, TAG_PROC_START, Tracker, TrackingError

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "test-tracking"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables created once (the schema migrations take seconds per new store)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / tracking.DB_NAME
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, empty_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SQLite store; MLflow's process-wide state (URI, run stack) is reset afterwards for other tests."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AUTOS_ROOT", raising=False)
    shutil.copyfile(empty_db, tmp_path / tracking.DB_NAME)
    yield tmp_path
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
    tracking.TRACKED_EXPERIMENTS.clear()


def client_for(root: Path):  # noqa: ANN201 - mlflow is imported lazily
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking.tracking_uri(root))


def runs_by_name(root: Path) -> dict[str, object]:
    client = client_for(root)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id], max_results=1000)}


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from autos.tracking import Tracker
tracker = Tracker({experiment!r}, root=Path({root!r}))
with tracker.run("killed parent", tags={{"stage": "test"}}):
    with tracker.run("killed child", nested=True):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_stage_runs_are_closed_on_the_next_start(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A run of this (live) process, open across everything below: neither the child's Tracker nor ours may close it.
    live_tracker = Tracker(EXPERIMENT, root=store)
    with live_tracker.run("live"):
        child = subprocess.run([sys.executable, "-c", KILLED_CHILD.format(experiment=EXPERIMENT, root=str(store))],
                               env=child_env(), cwd=store, capture_output=True, text=True, timeout=120)
        assert child.returncode == -signal.SIGKILL, child.stderr
        before = runs_by_name(store)
        assert {n: r.info.status for n, r in before.items()} == {
            "live": "RUNNING", "killed parent": "RUNNING", "killed child": "RUNNING"}
        child_pid = before["killed parent"].data.tags[TAG_PID]
        assert before["killed child"].data.tags[TAG_PID] == child_pid != str(os.getpid())
        assert before["killed parent"].data.tags[TAG_HOST] == socket.gethostname()

        # Legacy runs (no owner tags), another host's run, and a run whose pid now belongs to another process.
        client = client_for(store)
        experiment_id = live_tracker.experiment_id
        now_ms = int(time.time() * 1000)
        old = client.create_run(experiment_id, run_name="legacy old",
                                start_time=now_ms - (tracking.LEGACY_ORPHAN_AGE_S + 60) * 1000)
        client.create_run(experiment_id, run_name="legacy fresh", start_time=now_ms - 60_000)
        client.create_run(experiment_id, run_name="other host",
                          tags={TAG_HOST: "elsewhere.invalid", TAG_PID: "1", TAG_PROC_START: "linux:x:1"})
        client.create_run(experiment_id, run_name="pid reused",
                          tags={TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid()), TAG_PROC_START: "linux:x:1"})

        caplog.set_level(logging.WARNING, logger="autos.tracking")
        Tracker(EXPERIMENT, root=store)  # what the next stage does first
        after = runs_by_name(store)
        assert after["live"].info.status == "RUNNING"
        assert after["legacy fresh"].info.status == "RUNNING"
        assert after["other host"].info.status == "RUNNING"
        for name in ("killed parent", "killed child", "legacy old", "pid reused"):
            assert after[name].info.status == "KILLED", name
            assert after[name].info.end_time is not None
            assert tracking.TAG_CLOSED in after[name].data.tags
            assert any(after[name].info.run_id in r.getMessage() and name in r.getMessage() for r in caplog.records)
        assert after["legacy old"].info.run_id == old.info.run_id
        assert sum("orphan" in r.getMessage() for r in caplog.records) == 4
    assert runs_by_name(store)["live"].info.status == "FINISHED"


def test_orphans_are_closed_without_running_a_stage(store: Path) -> None:
    """After a SIGKILLed stage, when the next `dvc repro` has nothing to do no Tracker starts: `python -m
    autos.tracking.orphans` (run by `make mlflow-ui`) closes them in every experiment of the workspace's store."""
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD.format(experiment=EXPERIMENT, root=str(store))],
                           env=child_env(), cwd=store, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert {r.info.status for r in runs_by_name(store).values()} == {"RUNNING"}
    tidy = subprocess.run([sys.executable, "-m", "autos.tracking.orphans"], cwd=store, capture_output=True, text=True,
                          env={**child_env(), "AUTOS_ROOT": str(store)}, timeout=120)
    assert tidy.returncode == 0 and "closed 2 orphaned MLflow run(s)" in tidy.stdout, tidy.stderr
    assert {r.info.status for r in runs_by_name(store).values()} == {"KILLED"}


# run_stage as the stages call it; only the config loading is stubbed (validating the smoke config imports torch,
# seconds that test nothing here).
INTERRUPTED_STAGE = """
import sys, time
from pathlib import Path
import autos.pipeline.context
from autos.tracking import Tracker
from autos.pipeline.context import parser, run_stage

autos.pipeline.context.load_study = lambda path: None
autos.pipeline.context.study_paths = lambda root: None

def main(ctx):
    tracker = Tracker({experiment!r}, root=Path({root!r}))
    with tracker.run("stage parent"):
        with tracker.run("stage child", nested=True):
            print("ready", flush=True)
            time.sleep(60)

run_stage("fake_stage", main, parser("test"))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_stage_and_runs_as_killed(store: Path, signum: int) -> None:
    code = INTERRUPTED_STAGE.format(experiment=EXPERIMENT, root=str(store))
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env(), cwd=store,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = threading.Event()
        threading.Thread(target=lambda: proc.stdout.readline() == "ready\n" and ready.set(), daemon=True).start()
        assert ready.wait(timeout=120), proc.stderr.read() if proc.poll() is not None else "child not ready"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"fake_stage: interrupted ({name})"
    runs = runs_by_name(store)
    assert runs["stage parent"].info.status == "KILLED"
    assert runs["stage child"].info.status == "KILLED"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_with_one_clear_line(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError) as info:
        Tracker(EXPERIMENT, root=store, probe_timeout=1.0)
    message = str(info.value)
    assert isinstance(info.value, AutosError)
    assert uri in message and "Connection refused" in message
    assert "MLFLOW_TRACKING_URI" in message and "tracking.enabled: false" in message
    assert "\n" not in message


def test_silent_server_times_out() -> None:
    # Accepts the connection (the kernel's backlog) but never answers.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(TrackingError, match="no answer within 0.3 s"):
            tracking.probe_server(uri, timeout=0.3)


@contextmanager
def http_server(status: int) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering every GET with ``status``; yields its URL and the paths it was asked for."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            paths.append(self.path)
            self.send_error(status)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", paths
    finally:
        server.shutdown()
        server.server_close()


def test_any_http_answer_below_500_counts_as_reachable() -> None:
    with http_server(404) as (url, paths):
        assert tracking.probe_server(f"{url}/prefix/", timeout=5.0) is None
    assert paths == ["/prefix/health"]  # one request, no retries


@pytest.mark.parametrize("status", [502, 503])
def test_a_server_answering_5xx_fails_in_seconds(store: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    with http_server(status) as (url, paths):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        started = time.monotonic()
        with pytest.raises(TrackingError) as info:
            Tracker(EXPERIMENT, root=store, probe_timeout=2.0)
    assert time.monotonic() - started < 5.0
    assert paths == ["/health"]
    message = str(info.value)
    assert f"{url} is unavailable (it answers HTTP {status})" in message and "\n" not in message


def test_tracker_leaves_the_environment_as_it_was(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLFLOW_* variable is set or changed; writes are synchronous even when the caller asks MLflow for async."""
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    before = dict(os.environ)
    tracker = Tracker(EXPERIMENT, root=store)
    with tracker.run("env"):
        tracker.log_metrics({"a": 1.0})
        handle = tracker.start_run("handle")
        handle.log_metrics({"b": 2.0})
        # synchronous: visible to another client at once, before any flush
        assert client_for(store).get_run(tracker.active_run_id()).data.metrics == {"a": 1.0}
        assert client_for(store).get_run(handle.run_id).data.metrics == {"b": 2.0}
        handle.end()
    assert dict(os.environ) == before


def test_progress_bars_are_off_for_a_transfer_only(monkeypatch: pytest.MonkeyPatch) -> None:
    name = tracking.tracker.PROGRESS_BAR_VAR
    monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking.tracker, "_stderr_is_terminal", lambda: False)
    with tracking.tracker.quiet_artifact_transfers():
        assert os.environ[name] == "false"
    assert name not in os.environ
    monkeypatch.setenv(name, "true")  # the caller's choice stands
    with tracking.tracker.quiet_artifact_transfers():
        assert os.environ[name] == "true"
    monkeypatch.setattr(tracking.tracker, "_stderr_is_terminal", lambda: True)
    monkeypatch.delenv(name)
    with tracking.tracker.quiet_artifact_transfers():  # a terminal shows bars
        assert name not in os.environ


def test_owner_tags_name_this_process() -> None:
    tags = tracking.owner_tags()
    assert tags[TAG_PID] == str(os.getpid()) and tags[TAG_HOST] == socket.gethostname()
    assert tracking.owner_alive(tags) is True
    assert tracking.owner_alive({**tags, TAG_PROC_START: "linux:x:1"}) is False  # pid reused by a newer process
    assert tracking.owner_alive({**tags, TAG_HOST: "elsewhere.invalid"}) is None
    assert tracking.owner_alive({}) is None
    # A child that exited but is not reaped yet (a zombie, as a SIGKILLed stage is until DVC waits for it) is gone.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while tracking.process_start(child.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tracking.owner_alive({**tags, TAG_PID: str(child.pid)}) is False
    finally:
        child.wait(timeout=30)
    assert tracking.owner_alive({**tags, TAG_PID: str(child.pid)}) is False


def test_end_active_runs_closes_this_process_runs_only(store: Path) -> None:
    """run_stage's last resort: the run stack, plus runs created but never pushed (a signal inside start_run), in the
    experiments every Tracker of this process registered (or those passed explicitly)."""
    tracker = Tracker(EXPERIMENT, root=store)
    experiment = (tracking.tracking_uri(store), tracker.experiment_id)
    assert tracking.TRACKED_EXPERIMENTS.entries() == [experiment]
    client = client_for(store)
    off_stack = client.create_run(tracker.experiment_id, run_name="off stack", tags=tracking.owner_tags())
    foreign = client.create_run(tracker.experiment_id, run_name="foreign",
                                tags={**tracking.owner_tags(), TAG_PID: str(os.getppid())})
    with tracker.run("on stack"):
        tracking.end_active_runs("KILLED", experiments=[])  # the stack only
    assert runs_by_name(store)["on stack"].info.status == "KILLED"
    assert client.get_run(off_stack.info.run_id).info.status == "RUNNING"
    tracking.end_active_runs("KILLED", experiments=[experiment])
    assert client.get_run(off_stack.info.run_id).info.status == "KILLED"
    later = client.create_run(tracker.experiment_id, run_name="later", tags=tracking.owner_tags())
    tracking.end_active_runs("KILLED")  # default: the registry
    assert client.get_run(later.info.run_id).info.status == "KILLED"
    assert client.get_run(foreign.info.run_id).info.status == "RUNNING"


def test_open_run_handles_are_closed_like_stack_runs(store: Path) -> None:
    """Runs opened with start_run (off the fluent stack: the transfer stage's live cell runs) carry the owner tags,
    so an interrupted stage's last resort and the next stage's orphan sweep both reach them."""
    tracker = Tracker(EXPERIMENT, root=store)
    with tracker.run("parent"):
        live = tracker.start_run("cell", tags={"stage": "test"})
        done = tracker.start_run("finished cell")
        done.end("FINISHED")
        assert live.status == "RUNNING"
        tracking.end_active_runs("KILLED")
    runs = runs_by_name(store)
    assert runs["cell"].info.status == "KILLED" and runs["finished cell"].info.status == "FINISHED"
    assert runs["cell"].data.tags["mlflow.parentRunId"] == runs["parent"].info.run_id
    assert runs["cell"].data.tags[TAG_PID] == str(os.getpid()) and runs["cell"].data.tags["stage"] == "test"
    assert runs["parent"].info.status == "KILLED"


@pytest.mark.timeout(300)
def test_scorer_model_has_a_signature_and_logs_plain_text(store: Path, capfd: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    import torch

    from autos.scorer import build_scorer, predict, save_scorer

    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    save_scorer(store / "scorer", net.eval(), "mlp", settings, {})
    environment = dict(os.environ)
    tracker = Tracker(EXPERIMENT, root=store)
    with caplog.at_level("WARNING"), tracker.run("train_scorer mlp"):
        tracker.log_scorer_model(store / "scorer", registered_name="test-tracking-scorer")  # inputs from scorer.json
        run_id = tracker.active_run_id()
    logged = capfd.readouterr()  # what a stage's log gets: no progress bar, no colour codes
    assert dict(os.environ) == environment  # nothing set behind the caller's back
    info = mlflow.models.get_model_info(f"runs:/{run_id}/scorer")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(settings.inputs)
    assert {str(t) for t in info.signature.inputs.input_types()} == {"DataType.float"}
    assert [str(t) for t in info.signature.outputs.input_types()] == ["DataType.float"]
    assert info.saved_input_example_info is not None

    frame = pd.DataFrame({c: np.linspace(-1, 1, 5, dtype=np.float32) for c in settings.inputs})
    loaded = mlflow.pyfunc.load_model("models:/test-tracking-scorer/1")
    scores = np.asarray(loaded.predict(frame))
    assert scores.shape == (5,)
    expected = predict(net, {c: frame[c].to_numpy() for c in settings.inputs})
    assert np.allclose(scores, expected)
    with pytest.raises(Exception, match="float64"):  # the signature holds the dtype: no silent narrowing
        loaded.predict(frame.astype("float64"))

    for text in (logged.out, logged.err, caplog.text):
        assert "\x1b[" not in text and "\r" not in text
    assert not any("type hints" in r.getMessage() for r in caplog.records)
