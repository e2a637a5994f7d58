"""MLflow adapter: the only module that imports mlflow.

Default store: SQLite at ``<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``, where root is
``autos.paths.project_root()`` (the study's own folder, also in a ``dvc exp run --temp`` copy);
``MLFLOW_TRACKING_URI`` overrides. Runs of a DVC experiment are tagged with its name and baseline commit.
One run per stage run (``Tracker.run``, MLflow's fluent run stack), nested runs per IRP round and per transfer
run. DVC's metrics files stay the source of truth; MLflow mirrors them and holds plots and the scorer model.

Runs that must be open while other work goes on (the transfer stage opens a cell's run when the cell starts, several
at once on Ray, and closes each when its cell finishes or fails) are ``RunHandle``s from ``Tracker.start_run``:
client-side runs with an explicit parent, off the fluent stack. Run names are unique within their parent (a
repeated name gets `` (2)``, `` (3)``, ...).

Nothing here draws a progress bar into a log: when stderr is no terminal, MLflow's artifact progress bars are off.

MLflow state is kept true even when a stage dies:

* every run a Tracker starts is tagged with the owning process (``autos.host``, ``autos.pid``,
  ``autos.proc_start``); a new Tracker closes RUNNING runs of its experiment whose process is gone
  (status KILLED), so a stage killed by SIGKILL or a segfault leaves no run RUNNING after the next stage starts;
* a KeyboardInterrupt (SIGINT, and SIGTERM as ``run_stage`` maps it) ends the run as KILLED, not FAILED;
* an http(s) tracking server that does not answer fails at once with one line, not minutes of retries.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autos.paths import project_root
from autos.tracking.ownership import LEGACY_ORPHAN_AGE_S, TAG_CLOSED, TAG_HOST, TAG_PID, owner_alive, owner_tags
from autos.tracking.runs import RunHandle, _running_runs, metric_values, param_values, plain_warnings
from autos.tracking.server import PROBE_TIMEOUT_S, TrackingError, probe_server

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"

__all__ = ["ARTIFACT_DIR", "DB_NAME", "RunHandle", "Tracker", "TrackingError", "end_active_runs", "tracking_uri"]


def tracking_uri(root: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or project_root()) / DB_NAME}"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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
        self._context_tags: dict[str, str] | None = None  # user, source, git commit: what fluent runs get
        self._child_names: dict[str, set[str]] = {}  # parent run id -> names of the children this tracker made
        if not enabled:
            return
        uri = tracking_uri(self.root)
        if uri.lower().startswith(("http://", "https://")):
            probe_server(uri, probe_timeout)
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        if not _stderr_is_terminal():  # a log file (DVC captures stderr): no tqdm carriage returns in it
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
        parent = self.active_run_id()
        if nested and parent is not None:
            name = self._unique_name(parent, name)
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

    def active_run_id(self) -> str | None:
        """The id of the innermost fluent run (``Tracker.run``) of this process, None when none is open."""
        if not self.enabled:
            return None
        active = self._mlflow.active_run()
        return None if active is None else str(active.info.run_id)

    def _unique_name(self, parent_id: str, name: str) -> str:
        taken = self._child_names.setdefault(parent_id, set())
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name} ({n})"
        if unique != name:
            log.warning("MLflow run name %r is taken under parent %s; using %r", name, parent_id, unique)
        taken.add(unique)
        return unique

    def _default_tags(self) -> dict[str, str]:
        if self._context_tags is None:
            try:
                from mlflow.tracking.context.registry import resolve_tags

                self._context_tags = {k: str(v) for k, v in resolve_tags({}).items()}
            except Exception as exc:  # noqa: BLE001 - context tags (user, source) are nice to have, never needed
                log.debug("no MLflow context tags (%s)", exc)
                self._context_tags = {}
        return dict(self._context_tags)

    def start_run(self, name: str, *, parent: RunHandle | str | None = None, tags: Mapping[str, Any] | None = None,
                  params: Mapping[str, Any] | None = None, start_time: float | None = None) -> RunHandle:
        """Open a run under ``parent`` (a handle or run id; default: the innermost ``Tracker.run``) and return its
        handle; it stays RUNNING until ``handle.end(...)``. ``start_time``: seconds since the epoch (default now).
        Such runs carry the owner tags, so a killed process's runs are closed like any other (KILLED)."""
        if not self.enabled:
            return RunHandle(None, None)
        parent_id = parent.run_id if isinstance(parent, RunHandle) else (parent or self.active_run_id())
        all_tags = {**self._default_tags(), **{k: str(v) for k, v in (tags or {}).items()}, **owner_tags()}
        if parent_id is not None:
            all_tags["mlflow.parentRunId"] = parent_id
            name = self._unique_name(parent_id, name)
        client = self._mlflow.MlflowClient()
        start_ms = int((time.time() if start_time is None else start_time) * 1000)
        run = client.create_run(self.experiment_id, start_time=start_ms, tags=all_tags, run_name=name)
        handle = RunHandle(client, run.info.run_id, name=name)
        if params:
            handle.log_params(params)
        return handle

    def has_run(self, tag: str, value: str, status: str = "FINISHED") -> bool:
        """Whether this experiment holds a run with tag ``tag`` = ``value`` and ``status``."""
        if not self.enabled or self.experiment_id is None:
            return False
        client = self._mlflow.MlflowClient()
        quoted = value.replace("'", "\\'")
        found = client.search_runs([self.experiment_id], max_results=1,
                                   filter_string=f"tags.`{tag}` = '{quoted}' and attributes.status = '{status}'")
        return len(found) > 0

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            self._mlflow.log_params(param_values(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        numeric = metric_values(metrics)
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

    def log_scorer_model(self, scorer_dir: Path, registered_name: str, inputs: Sequence[str] | None = None) -> None:
        """Log the scorer as an MLflow pyfunc model built from code (no pickled module) and register it.

        Its signature: one float32 column per scorer input (``inputs``, default: the ``inputs`` recorded in
        ``scorer.json``), in the scorer's order; the output is one float32 score per row. MLflow refuses float64
        columns for it (a narrowing cast): cast a DataFrame with ``df.astype("float32")`` first."""
        if not self.enabled:
            return
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, DataType, Schema

        from autos.tracking import scorer_model as mlflow_scorer

        if inputs is None:
            inputs = json.loads((Path(scorer_dir) / "scorer.json").read_text())["inputs"]
        import numpy as np
        import pandas as pd

        signature = ModelSignature(inputs=Schema([ColSpec(DataType.float, str(c)) for c in inputs]),
                                   outputs=Schema([ColSpec(DataType.float)]))
        example = pd.DataFrame({str(c): np.zeros(2, dtype=np.float32) for c in inputs})  # shown in the UI
        with plain_warnings():
            self._mlflow.pyfunc.log_model(
                name="scorer",
                python_model=mlflow_scorer.__file__,
                artifacts={"scorer_dir": str(scorer_dir)},
                registered_model_name=registered_name,
                signature=signature,
                input_example=example,
                pip_requirements=["torch", "numpy", "pandas", "pydantic", "pyarrow"],
                code_paths=[str(Path(mlflow_scorer.__file__).parent)],
            )


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
