"""A stage stops when the DVC process that launched it is gone (SIGTERM to `dvc` alone used to leave the stage
training on its own): the launcher is found among the ancestors, and its death unwinds the stage as SIGTERM does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from autos.pipeline.launcher import is_dvc, launcher_pid, watch

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def test_dvc_is_recognised_however_it_was_started() -> None:
    assert is_dvc(["/repo/.venv/bin/dvc", "repro"]) and is_dvc(["python", "-m", "dvc", "exp", "run"])
    assert is_dvc(["/usr/bin/python3", "/repo/.venv/bin/dvc", "repro"])
    assert not is_dvc(["python", "-m", "stages.irp"]) and not is_dvc(["bash", "-c", "dvcx"]) and not is_dvc([])


def test_watch_calls_back_once_the_process_is_gone() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    gone = threading.Event()
    stop = watch(proc.pid, gone.set, interval=0.1)
    try:
        assert not gone.wait(0.5)  # alive: nothing
        proc.terminate()
        proc.wait(timeout=10)
        assert gone.wait(5)
    finally:
        stop.set()


STAGE = """
import sys, time
sys.path.insert(0, {src!r})
from autos.pipeline.context import parser, run_stage

def main(ctx):
    print("stage started", flush=True)
    time.sleep(60)

run_stage("fake", main, parser("a stage that would run for a minute"))
"""

# A stand-in for DVC: a script named `dvc` that runs the stage as its child and waits for it.
FAKE_DVC = """#!{python}
import subprocess, sys
sys.exit(subprocess.call([{python!r}, {stage!r}, "--params", {params!r}]))
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_sigterm_to_the_launcher_alone_stops_the_stage(tmp_path: Path) -> None:
    stage = tmp_path / "stage.py"
    stage.write_text(textwrap.dedent(STAGE.format(src=str(REPO_ROOT / "src"))))
    dvc = tmp_path / "dvc"
    dvc.write_text(FAKE_DVC.format(python=sys.executable, stage=str(stage),
                                   params=str(REPO_ROOT / "configs" / "smoke.yaml")))
    dvc.chmod(0o755)
    (tmp_path / "paths.yaml").write_text((REPO_ROOT / "paths.yaml").read_text())  # a study root needs its layout
    env = {**os.environ, "AUTOS_ROOT": str(tmp_path)}
    launcher = subprocess.Popen([str(dvc)], cwd=tmp_path, env=env)
    child = None
    try:
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline:  # the stage process, once it has started
            found = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True)
            child = int(found.stdout.split()[0]) if found.stdout.strip() else None
            time.sleep(0.2)
        assert child is not None
        time.sleep(3)  # past its imports, into main()
        assert _running(child), "the stage ended on its own before the test could stop it"
        assert launcher_pid(child) == launcher.pid  # the stage found its DVC ancestor
        launcher.send_signal(signal.SIGTERM)  # DVC alone, as a scheduler ending the job would
        launcher.wait(timeout=10)
        deadline, stopped = time.monotonic() + 15, False
        while not stopped and time.monotonic() < deadline:
            stopped = not _running(child)
            time.sleep(0.2)
        assert stopped, "the stage went on after its launcher was gone"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if child is not None and _running(child):
            os.kill(child, signal.SIGKILL)
