"""MLflow adapter: the only module that imports mlflow.

Default store: SQLite at ``<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``, where root is
``autos.paths.project_root()`` (the study's own folder, also in a ``dvc exp run --temp`` copy);
``MLFLOW_TRACKING_URI`` overrides. Runs of a DVC experiment are tagged with its name and baseline commit.
One run per stage run, nested runs per IRP round and per (method, sparsity, seed). DVC's metrics files stay
the source of truth; MLflow mirrors them and holds plots and the scorer model.

MLflow state is kept true even when a stage dies:

* every run a Tracker starts is tagged with the owning process (``autos.host``, ``autos.pid``,
  ``autos.proc_start``); a new Tracker closes RUNNING runs of its experiment whose process is gone
  (status KILLED), so a stage killed by SIGKILL or a segfault leaves no run RUNNING after the next stage starts;
* a KeyboardInterrupt (SIGINT, and SIGTERM as ``run_stage`` maps it) ends the run as KILLED, not FAILED;
* an http(s) tracking server that does not answer fails at once with one line, not minutes of retries.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autos.errors import AutosError
from autos.paths import project_root

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"

TAG_HOST = "autos.host"
TAG_PID = "autos.pid"
TAG_PROC_START = "autos.proc_start"
TAG_CLOSED = "autos.closed_as_orphan"

# A RUNNING run without the owner tags comes from a version that did not write them, or from code outside the
# Tracker, so nothing says whether its process lives. Close it only once it is older than any stage could
# plausibly still be running (the paper study's longest stage takes hours, not days).
LEGACY_ORPHAN_AGE_S = 24 * 3600
PROBE_TIMEOUT_S = 5.0


class TrackingError(AutosError):
    """The tracking store cannot be used (e.g. the tracking server does not answer)."""


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or project_root()) / DB_NAME}"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- who owns a run -------------------------------------------------------------------------------------------

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


# --- tracking server ------------------------------------------------------------------------------------------

def _short_reason(exc: BaseException) -> str:
    """The innermost OS-level reason ('Connection refused'), not urllib3's multi-line retry summary."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError unless the http(s) tracking server at ``uri`` answers within ``timeout`` seconds.

    MLflow's own client retries an unreachable server for minutes and then fails with a long traceback; one
    short request without retries tells the user at once. Any HTTP answer counts (a 401 or 404 still means the
    server is there: MLflow reports those itself); TLS is verified the way MLflow does it.
    """
    import requests

    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
        verify: bool | str = False
    else:
        verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    url = uri.rstrip("/") + "/health"
    try:
        requests.get(url, timeout=timeout, verify=verify, allow_redirects=False).close()
    except requests.Timeout:
        reason = f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        reason = _short_reason(exc)
    else:
        return
    raise TrackingError(
        f"MLflow tracking server {uri} is unreachable ({reason}). Start the server, or unset "
        "MLFLOW_TRACKING_URI to log to the local SQLite store, or set tracking.enabled: false in the params file."
    )


# --- the tracker ----------------------------------------------------------------------------------------------

# Experiments the Trackers of this process use, so end_active_runs can find runs of this process that never
# reached MLflow's run stack (a signal between create_run and the stack push).
_experiment_ids: set[str] = set()


class Tracker:
    """Thin wrapper over MLflow's fluent API; a disabled tracker does nothing (tests, quick runs)."""

    def __init__(self, experiment: str, *, enabled: bool = True, root: Path | None = None,
                 probe_timeout: float = PROBE_TIMEOUT_S) -> None:
        self.enabled = enabled
        self.root = (root or project_root()).resolve()  # as_uri() below needs an absolute path
        self._mlflow: Any = None  # the mlflow module once enabled (imported lazily: it is slow to import)
        self.experiment_id: str | None = None
        if not enabled:
            return
        uri = tracking_uri(self.root)
        if uri.lower().startswith(("http://", "https://")):
            probe_server(uri, probe_timeout)
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        import mlflow

        self._mlflow = mlflow
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            location = None
            if uri.startswith("sqlite:"):
                location = (self.root / ARTIFACT_DIR).as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        _experiment_ids.add(self.experiment_id)
        try:
            self.close_orphans()
        except Exception as exc:  # noqa: BLE001 - stale runs in the UI must not stop a stage
            log.warning("could not close orphaned MLflow runs (%s)", exc)

    def close_orphans(self) -> list[str]:
        """Mark RUNNING runs of this experiment whose process is gone as KILLED; returns their ids.

        A run is an orphan if its owner tags name this host and a process that no longer exists (or a newer
        process that reuses its pid), or if it has no owner tags and started more than LEGACY_ORPHAN_AGE_S ago.
        Runs of live processes (a parallel ``dvc exp run --queue`` worker) and of other hosts are left alone.
        """
        if not self.enabled or self.experiment_id is None:
            return []
        from mlflow import MlflowClient

        client = MlflowClient()
        now_ms = int(time.time() * 1000)
        closed: list[str] = []
        for run in _running_runs(client, self.experiment_id):
            tags = run.data.tags
            alive = owner_alive(tags)
            if alive is None:
                if TAG_PID in tags or now_ms - (run.info.start_time or now_ms) < LEGACY_ORPHAN_AGE_S * 1000:
                    continue
                why = f"no owner tags and started over {LEGACY_ORPHAN_AGE_S // 3600} h ago"
            elif alive:
                continue
            else:
                why = f"process {tags.get(TAG_PID)} on {tags.get(TAG_HOST)} is gone"
            client.set_tag(run.info.run_id, TAG_CLOSED, f"{why}; closed by process {os.getpid()}")
            client.set_terminated(run.info.run_id, "KILLED", end_time=now_ms)
            log.warning("closed orphaned MLflow run %s (%s) as KILLED: %s", run.info.run_id, run.info.run_name, why)
            closed.append(run.info.run_id)
        return closed

    @contextmanager
    def run(self, name: str, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
            nested: bool = False) -> Iterator[Tracker]:
        if not self.enabled:
            yield self
            return
        all_tags = {**{k: str(v) for k, v in (tags or {}).items()}, **owner_tags()}
        with self._mlflow.start_run(run_name=name, nested=nested, tags=all_tags) as active:
            try:
                if params:
                    self.log_params(params)
                yield self
            except KeyboardInterrupt:
                # MLflow's ActiveRun.__exit__ ends every exception as FAILED; an interrupted run (Ctrl-C, or
                # SIGTERM via run_stage) was killed, not broken. Once it is off the stack __exit__ leaves it be.
                top = self._mlflow.active_run()
                if top is not None and top.info.run_id == active.info.run_id:
                    try:
                        self._mlflow.end_run("KILLED")  # pops the stack before it writes
                    except Exception as exc:  # noqa: BLE001 - keep the interrupt; the next Tracker closes the run
                        log.warning("could not end MLflow run %s as KILLED (%s)", active.info.run_id, exc)
                raise

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            flat = {k: (str(v)[:6000] if v is not None else "null") for k, v in flatten(params).items()}
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        numeric = {k: float(v) for k, v in flatten(metrics).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            self._mlflow.log_metrics(numeric, step=step)

    def log_history(self, history: list[Mapping[str, float]], prefix: str = "") -> None:
        for record in history:
            step = int(record.get("epoch", 0))
            self.log_metrics({f"{prefix}{k}": v for k, v in record.items() if k != "epoch"}, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            if Path(path).is_dir():
                self._mlflow.log_artifacts(str(path), artifact_path=artifact_path)
            else:
                self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, values: Mapping[str, Any], name: str) -> None:
        if self.enabled:
            self._mlflow.log_dict(dict(values), name)

    def log_scorer_model(self, scorer_dir: Path, registered_name: str) -> None:
        """Log the scorer as an MLflow pyfunc model built from code (no pickled module) and register it."""
        if not self.enabled:
            return
        from autos import mlflow_scorer

        self._mlflow.pyfunc.log_model(
            name="scorer",
            python_model=mlflow_scorer.__file__,
            artifacts={"scorer_dir": str(scorer_dir)},
            registered_model_name=registered_name,
            pip_requirements=["torch", "numpy", "pandas", "pydantic", "pyarrow"],
            code_paths=[str(Path(mlflow_scorer.__file__).parent)],
        )


def _running_runs(client: Any, experiment_id: str, extra_filter: str = "") -> Iterator[Any]:
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING'{extra_filter}",
                                  max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def end_active_runs(status: str = "KILLED") -> None:
    """End every run this process still has open with ``status`` (run_stage calls it on SIGTERM/SIGINT).

    Pops MLflow's whole run stack (otherwise MLflow's atexit hook would end the top run as FINISHED), then
    closes runs of this process that never reached the stack. A no-op when MLflow was never imported, so a
    stage that does not track pays no import. Failures are logged, not raised: the process is on its way out,
    and the next Tracker closes whatever is left as an orphan.
    """
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run(status)  # pops the stack before it writes, so this loop always ends
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.warning("could not end an open MLflow run as %s (%s); the next stage closes it", status, exc)
    try:
        if not _experiment_ids:
            return
        client = mlflow.MlflowClient()
        mine = owner_tags()
        pid_filter = f" and tags.`{TAG_PID}` = '{mine[TAG_PID]}'"
        for experiment_id in _experiment_ids:
            for run in _running_runs(client, experiment_id, pid_filter):
                if all(run.data.tags.get(k) == v for k, v in mine.items()):
                    client.set_terminated(run.info.run_id, status)
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.warning("could not end the open MLflow runs as %s (%s); the next stage closes them", status, exc)
