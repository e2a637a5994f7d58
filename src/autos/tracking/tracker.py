"""MLflow adapter: the only package that imports mlflow.

Default store: SQLite at ``<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``, where root is
``autos.paths.project_root()`` (the study's own folder, also in a ``dvc exp run --temp`` copy);
``MLFLOW_TRACKING_URI`` overrides (a SQLite store named there keeps its artifacts in ``mlartifacts`` beside its
file). Runs of a DVC experiment are tagged with its name and baseline commit. One run per stage run
(``Tracker.run``, MLflow's fluent run stack), nested runs per IRP round and per transfer run. DVC's metrics files
stay the source of truth; MLflow mirrors them and holds plots and the scorer model.

Runs that must be open while other work goes on (the transfer stage opens a cell's run when the cell starts, several
at once on Ray, and closes each when its cell finishes or fails) are ``RunHandle``s from ``Tracker.start_run``:
client-side runs with an explicit parent, off the fluent stack. Run names are unique within their parent (a
repeated name gets `` (2)``, `` (3)``, ...).

The Tracker leaves the process environment as the caller had it. MLflow's fluent API exports what it is told
(``set_tracking_uri`` writes ``MLFLOW_TRACKING_URI``, ``set_experiment`` ``MLFLOW_EXPERIMENT_ID``): the URI's variable
is put back at once, and runs name their experiment instead. Every write is passed ``synchronous=True`` (an error
surfaces at its call, a killed stage has nothing queued), whatever ``MLFLOW_ENABLE_ASYNC_LOGGING`` says. MLflow's
artifact progress bars have no switch but their environment variable: it is set for the duration of an artifact
transfer only, when stderr is no terminal and the caller left it unset (``quiet_artifact_transfers``). HTTP retries
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``) are the caller's to set.

The store is usable or the stage stops with one sentence (``TrackingError``; ``autos.tracking.store``, where each
fault is listed: a half-made store, a server that does not answer, a missing folder, a full disk).

A copied or moved workspace writes into its own folder: MLflow stores absolute artifact locations
(``file:///<root>/mlartifacts``), so a copy of a workspace would write the artifacts of its new runs into the
original's folder. When the Tracker of the workspace's own store (``<root>/mlflow.db``) finds its experiment's
artifact location in another folder's ``mlartifacts``, it logs a warning and rewrites every location under that
folder (experiments, runs, models) to the same place under ``<root>/mlartifacts``: the copy's runs, old and new,
then read and write the copy's artifacts, and the original is never written. A store named by
``MLFLOW_TRACKING_URI`` is never rewritten (several workspaces may share it).

MLflow state is kept true even when a stage dies:

* every run a Tracker starts is tagged with the owning process (``autos.host``, ``autos.pid``,
  ``autos.proc_start``); a new Tracker closes RUNNING runs of its experiment whose process is gone
  (status KILLED), so a stage killed by SIGKILL or a segfault leaves no run RUNNING after the next stage starts;
* a KeyboardInterrupt (SIGINT, and SIGTERM as ``run_stage`` maps it) ends the run as KILLED, any other error as
  FAILED; ``end_active_runs`` is the last resort for runs the unwinding did not reach.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from autos.paths import project_root
from autos.tracking.ownership import (
    LEGACY_ORPHAN_AGE_S,
    TAG_CLOSED,
    TAG_HOST,
    TAG_PID,
    TRACKED_EXPERIMENTS,
    TrackedExperiments,
    end_active_runs,
    owner_alive,
    owner_tags,
)
from autos.tracking.runs import RunHandle, _running_runs, metric_values, param_values, plain_warnings
from autos.tracking.server import PROBE_TIMEOUT_S, probe_server
from autos.tracking.store import (
    ARTIFACT_DIR,
    DB_NAME,
    MAX_EXPERIMENT_NAME,
    TrackingError,
    artifact_root,
    ensure_sqlite_store,
    relocate_artifacts,
    sqlite_path,
    stale_artifact_root,
    store_errors,
    tracking_uri,
)

log = logging.getLogger(__name__)

__all__ = ["ARTIFACT_DIR", "DB_NAME", "TRACKED_EXPERIMENTS", "RunHandle", "TrackedExperiments", "Tracker",
           "TrackingError", "end_active_runs", "tracking_uri"]


def _use_fluent_uri(mlflow: Any, uri: str) -> None:
    """Point MLflow's fluent API (a process-wide URI) at ``uri``. ``mlflow.set_tracking_uri`` also exports
    ``MLFLOW_TRACKING_URI`` (for subprocesses); the caller's value is put back, so the environment stays the
    caller's, a later Tracker of this process for another root does not read this one's store from it, and child
    processes (a Ray worker, a nested stage) do not inherit it. (``mlflow.set_experiment``, which exports
    ``MLFLOW_EXPERIMENT_ID`` likewise, is not called: runs name their experiment.)"""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


PROGRESS_BAR_VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def quiet_artifact_transfers() -> Iterator[None]:
    """No tqdm progress bars (carriage returns) in a log file while MLflow moves artifacts inside the block.

    MLflow's only switch for them is the environment variable ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, read when a
    bar starts (MLflow 3.x has no API for it). When stderr is no terminal and the caller left it unset, it is set
    to false for the block alone and removed afterwards: the caller's environment is as it was."""
    if PROGRESS_BAR_VAR in os.environ or _stderr_is_terminal():
        yield
        return
    os.environ[PROGRESS_BAR_VAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR_VAR, None)


class Tracker:
    """Thin wrapper over MLflow's fluent API; a disabled tracker does nothing (tests, quick runs).

    Every MLflow call raises TrackingError (one sentence) when the store fails; see the module docstring."""

    def __init__(self, experiment: str, *, enabled: bool = True, root: Path | None = None,
                 probe_timeout: float = PROBE_TIMEOUT_S) -> None:
        self.enabled = enabled
        self.root = (root or project_root()).resolve()  # as_uri() below needs an absolute path
        self.uri = tracking_uri(self.root)
        self._mlflow: Any = None  # the mlflow module once enabled (imported lazily: it is slow to import)
        self.experiment_id: str | None = None
        self._context_tags: dict[str, str] | None = None  # user, source, git commit: what fluent runs get
        self._child_names: dict[str, set[str]] = {}  # parent run id -> names of the children this tracker made
        self.closed_orphans: list[str] = []  # ids of the orphaned runs it closed when it opened the experiment
        if not enabled:
            return
        if len(experiment) > MAX_EXPERIMENT_NAME:
            raise TrackingError(f"The MLflow experiment name ({len(experiment)} characters, {experiment[:40]!r}...) "
                                f"is longer than MLflow's limit of {MAX_EXPERIMENT_NAME}: shorten "
                                "tracking.experiment in the params file.")
        if self.uri.lower().startswith(("http://", "https://")):
            probe_server(self.uri, probe_timeout)
        with self._errors():
            self.experiment_id = self._open_experiment(experiment)
        TRACKED_EXPERIMENTS.add(self.uri, self.experiment_id)
        try:
            self.closed_orphans = self.close_orphans()
        except Exception as exc:  # noqa: BLE001 - stale runs in the UI must not stop a stage
            log.warning("could not close orphaned MLflow runs (%s)", exc)

    def _errors(self) -> AbstractContextManager[None]:
        return store_errors(self.uri)

    def _open_experiment(self, name: str) -> str:
        """Create the store and the experiment when they are missing; returns the experiment id."""
        db = sqlite_path(self.uri)
        if db is not None:
            ensure_sqlite_store(db)
        import mlflow

        self._mlflow = mlflow
        _use_fluent_uri(mlflow, self.uri)
        client = mlflow.MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                client.create_experiment(name, artifact_location=None if db is None else artifact_root(db))
            except mlflow.exceptions.MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # else another process created it just now
                    raise
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise TrackingError(f"MLflow store {self.uri} did not keep the new experiment {name!r}: check it.")
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"The MLflow experiment {name!r} of {self.uri} is deleted: restore it (`mlflow "
                                f"experiments restore --experiment-id {experiment.experiment_id}`) or choose another "
                                "tracking.experiment.")
        if db is not None and db == self.root / DB_NAME:
            self._follow_workspace(db, experiment.artifact_location)
        return str(experiment.experiment_id)  # passed to every run: mlflow.set_experiment would export it

    def _follow_workspace(self, db: Path, location: str) -> None:
        """A copied or moved workspace's store points its artifact locations at this workspace (module docstring)."""
        expected = artifact_root(db)
        old = stale_artifact_root(location, expected)
        if old is None:
            return
        log.warning("MLflow store %s was copied or moved: its artifacts were in %s; runs of this workspace now "
                    "read and write %s", db, old, expected)
        relocate_artifacts(db, old, expected)

    def close_orphans(self) -> list[str]:
        """Mark RUNNING runs of this experiment whose process is gone as KILLED; returns their ids.

        A run is an orphan if its owner tags name this host and a process that no longer exists (or a newer
        process that reuses its pid), or if it has no owner tags and started more than LEGACY_ORPHAN_AGE_S ago.
        Runs of live processes (a parallel ``dvc exp run --queue`` worker) and of other hosts are left alone.
        """
        if not self.enabled or self.experiment_id is None:
            return []
        client = self._mlflow.MlflowClient(tracking_uri=self.uri)
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
        """A fluent run around the block: FINISHED when it completes, KILLED on KeyboardInterrupt (Ctrl-C, or
        SIGTERM via run_stage: killed, not broken), FAILED on any other error, which is then re-raised unchanged."""
        if not self.enabled:
            yield self
            return
        all_tags = {**{k: str(v) for k, v in (tags or {}).items()}, **owner_tags()}
        parent = self.active_run_id()
        if nested and parent is not None:
            name = self._unique_name(parent, name)
        with self._errors():
            run_id = self._mlflow.start_run(experiment_id=self.experiment_id, run_name=name, nested=nested,
                                            tags=all_tags).info.run_id
        try:
            if params:
                self.log_params(params)
            yield self
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            try:
                self._end_fluent(run_id, status)
            except Exception as end_exc:  # noqa: BLE001 - keep the original error; the next Tracker closes the run
                log.warning("could not end MLflow run %s as %s (%s)", run_id, status, end_exc)
            raise
        with self._errors():
            self._end_fluent(run_id, "FINISHED")

    def _end_fluent(self, run_id: str, status: str) -> None:
        top = self._mlflow.active_run()  # a run the block ended itself is off the stack: leave it be
        if top is not None and top.info.run_id == run_id:
            self._mlflow.end_run(status)  # pops the stack before it writes

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
        client = self._mlflow.MlflowClient(tracking_uri=self.uri)
        start_ms = int((time.time() if start_time is None else start_time) * 1000)
        with self._errors():
            run = client.create_run(self.experiment_id, start_time=start_ms, tags=all_tags, run_name=name)
        handle = RunHandle(client, run.info.run_id, name=name, errors=self._errors)
        if params:
            handle.log_params(params)
        return handle

    def has_run(self, tag: str, value: str, status: str = "FINISHED") -> bool:
        """Whether this experiment holds a run with tag ``tag`` = ``value`` and ``status``."""
        return self.find_run(tag, value, status) is not None

    def find_run(self, tag: str, value: str, status: str = "FINISHED", without: str | None = None) -> str | None:
        """The id of the oldest run of this experiment with tag ``tag`` = ``value`` and ``status`` (and without the
        tag ``without``), or None."""
        if not self.enabled or self.experiment_id is None:
            return None
        client = self._mlflow.MlflowClient(tracking_uri=self.uri)
        quoted = value.replace("'", "\\'")
        query = f"tags.`{tag}` = '{quoted}' and attributes.status = '{status}'"
        with self._errors():
            found = client.search_runs([self.experiment_id], max_results=100, filter_string=query,
                                       order_by=["attributes.start_time ASC"])
        return next((str(r.info.run_id) for r in found if without is None or without not in r.data.tags), None)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            with self._errors():
                self._mlflow.log_params(param_values(params), synchronous=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        numeric = metric_values(metrics)
        if numeric:
            with self._errors():
                self._mlflow.log_metrics(numeric, step=step, synchronous=True)

    def log_history(self, history: list[Mapping[str, float]], prefix: str = "") -> None:
        for record in history:
            step = int(record.get("epoch", 0))
            self.log_metrics({f"{prefix}{k}": v for k, v in record.items() if k != "epoch"}, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            with self._errors():
                self._mlflow.set_tags({k: str(v) for k, v in tags.items()}, synchronous=True)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            with self._errors(), quiet_artifact_transfers():
                if Path(path).is_dir():
                    self._mlflow.log_artifacts(str(path), artifact_path=artifact_path)
                else:
                    self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, values: Mapping[str, Any], name: str) -> None:
        if self.enabled:
            with self._errors():
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
        with plain_warnings(), self._errors(), quiet_artifact_transfers():  # it downloads the model to check it
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
