"""Who owns an MLflow run: tags naming the process that started it (host, pid, process start) and the DVC
experiment it belongs to, and whether that process still runs. A new ``Tracker`` closes the RUNNING runs of
processes that are gone (a stage killed by SIGKILL or a segfault), and leaves live ones alone; ``end_active_runs``
ends this process's own runs on the way out (``TRACKED_EXPERIMENTS``: where they are)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from autos.tracking.runs import _running_runs

log = logging.getLogger(__name__)

TAG_HOST = "autos.host"
TAG_PID = "autos.pid"
TAG_PROC_START = "autos.proc_start"
TAG_CLOSED = "autos.closed_as_orphan"

# A RUNNING run without the owner tags comes from a version that did not write them, or from code outside the
# Tracker, so nothing says whether its process lives. Close it only once it is older than any stage could
# plausibly still be running (the paper study's longest stage takes hours, not days).
LEGACY_ORPHAN_AGE_S = 24 * 3600


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """An identifier of when process ``pid`` started (None if it does not exist or cannot be read).

    A pid alone is reused by the kernel; (pid, start) names one process. On Linux: boot id plus the start time
    in clock ticks from /proc/<pid>/stat, both exact (psutil's float create_time is derived from the boot time,
    which can move by a second). Elsewhere psutil's create_time, compared with a tolerance. A zombie counts as
    gone: a SIGKILLed stage stays one until its parent reaps it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # Linux, and the process does not exist
        stat = ""
    except OSError:
        stat = ""
    if stat:
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces and parentheses
        if fields[0] in ("Z", "X"):
            return None
        return f"linux:{_boot_id()}:{fields[19]}"
    try:
        import psutil
    except ImportError:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"time:{proc.create_time():.3f}"
    except psutil.Error:
        return None


# Set by `dvc exp run` (and its --temp / --queue runs) for the stage commands; absent under plain `dvc repro`.
DVC_EXPERIMENT_TAGS = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}


def owner_tags() -> dict[str, str]:
    """Tags naming this process, written on every run a Tracker starts, plus the DVC experiment it belongs to."""
    tags = {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}
    tags.update({tag: os.environ[var] for var, tag in DVC_EXPERIMENT_TAGS.items() if os.environ.get(var)})
    start = process_start(os.getpid())
    if start is not None:
        tags[TAG_PROC_START] = start
    return tags


def _same_process(recorded: str, current: str) -> bool:
    if recorded.startswith("time:") and current.startswith("time:"):
        return abs(float(recorded[5:]) - float(current[5:])) < 1.0
    return recorded == current


def owner_alive(tags: Mapping[str, str]) -> bool | None:
    """Is the process that started a run with these tags still running? None: cannot tell.

    Only a run of this host can be judged (another host's pids mean nothing here); a run without owner tags
    cannot be judged either.
    """
    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if host is None or pid is None or not pid.isdigit():
        return None
    if host != socket.gethostname():
        return None
    other_user = False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        other_user = True  # exists, owned by another user (whose /proc entry may be hidden from us)
    current = process_start(int(pid))
    if current is None:
        # Gone or a zombie (Linux and psutil say so exactly); unreadable, we cannot tell: keep the run.
        readable = not other_user and (Path("/proc/self/stat").exists() or _have_psutil())
        return not readable
    recorded = tags.get(TAG_PROC_START)
    if recorded is None:
        return True  # same pid, no start recorded: assume it is the same process (never close a live run)
    return _same_process(recorded, current)


def _have_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


class TrackedExperiments:
    """The (store URI, experiment id) pairs the Trackers of this process log to; every Tracker adds its own.

    One registry per process, on purpose: ``end_active_runs`` is ``run_stage``'s last resort after SIGTERM/SIGINT,
    called from an ``except`` clause that has no Tracker at hand (a stage builds its own, ``StageContext.tracker``,
    deep inside), and what it must reach is per process too: MLflow's fluent run stack, and runs this process created
    but never pushed onto it (a signal between ``create_run`` and the push). A caller that does hold its experiments
    passes them to ``end_active_runs`` instead."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._lock = threading.Lock()

    def add(self, uri: str, experiment_id: str) -> None:
        with self._lock:
            self._entries[(uri, experiment_id)] = None

    def entries(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


TRACKED_EXPERIMENTS = TrackedExperiments()


def end_active_runs(status: str = "KILLED", experiments: Iterable[tuple[str, str]] | None = None) -> None:
    """End every run this process still has open with ``status`` (run_stage calls it on SIGTERM/SIGINT).

    Pops MLflow's whole run stack (otherwise MLflow's atexit hook would end the top run as FINISHED), then
    closes runs of this process that never reached the stack, in ``experiments`` ((store URI, experiment id)
    pairs; default: ``TRACKED_EXPERIMENTS``, every Tracker's of this process). A no-op when MLflow was never
    imported, so a stage that does not track pays no import. Failures are logged, not raised: the process is on its
    way out, and the next Tracker closes whatever is left as an orphan.
    """
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run(status)  # pops the stack before it writes, so this loop always ends
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.warning("could not end an open MLflow run as %s (%s); the next stage closes it", status, exc)
    mine = owner_tags()
    pid_filter = f" and tags.`{TAG_PID}` = '{mine[TAG_PID]}'"
    for uri, experiment_id in TRACKED_EXPERIMENTS.entries() if experiments is None else experiments:
        try:
            client = mlflow.MlflowClient(tracking_uri=uri)
            for run in _running_runs(client, experiment_id, pid_filter):
                if all(run.data.tags.get(k) == v for k, v in mine.items()):
                    client.set_terminated(run.info.run_id, status)
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.warning("could not end the open MLflow runs of experiment %s as %s (%s); the next stage closes them",
                        experiment_id, status, exc)
