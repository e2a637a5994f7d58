"""Runs opened off MLflow's fluent stack (``RunHandle``), and the values MLflow takes: flat params as strings,
numeric metrics, warnings without colour codes."""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@contextmanager
def plain_warnings() -> Iterator[None]:
    """Warnings raised inside, re-logged as plain lines: MLflow colours some of its warnings with ANSI codes
    (``mlflow.utils.warnings_utils.color_warning``), which a log file (DVC's) would get raw."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for warning in caught:
        log.warning("%s: %s", warning.category.__name__, ANSI_ESCAPE.sub("", str(warning.message)).strip())


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow takes them: flat, strings of at most 6000 characters, None as 'null'."""
    return {k: (str(v)[:6000] if v is not None else "null") for k, v in flatten(params).items()}


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of (nested) ``metrics`` as flat floats; booleans and everything else are left out."""
    return {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class RunHandle:
    """One MLflow run opened by ``Tracker.start_run``, written through the client (not the fluent run stack).

    A handle of a disabled tracker (``run_id`` None) does nothing. ``end`` is idempotent. ``errors``: what every
    call to the store runs inside (the Tracker's: a failing store raises TrackingError, one sentence). Writes are
    synchronous whatever ``MLFLOW_ENABLE_ASYNC_LOGGING`` says."""

    def __init__(self, client: Any, run_id: str | None, *, name: str = "",
                 errors: Callable[[], AbstractContextManager[None]] = nullcontext) -> None:
        self._client = client
        self.run_id = run_id
        self.name = name
        self.status: str | None = None if run_id is None else "RUNNING"
        self._errors = errors

    @property
    def enabled(self) -> bool:
        return self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            from mlflow.entities import Param

            values = param_values(params)
            with self._errors():
                self._client.log_batch(self.run_id, params=[Param(k, v) for k, v in values.items()], synchronous=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.enabled:
            self._log_metrics([(metric_values(metrics), step or 0)])

    def log_history(self, history: Sequence[Mapping[str, float]], prefix: str = "") -> None:
        """Per-epoch records as stepped metrics (step = the record's ``epoch``), in one batch."""
        if self.enabled:
            self._log_metrics([(metric_values({f"{prefix}{k}": v for k, v in r.items() if k != "epoch"}),
                                int(r.get("epoch", 0))) for r in history])

    def _log_metrics(self, batches: Sequence[tuple[Mapping[str, float], int]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for values, step in batches for k, v in values.items()]
        if metrics:
            with self._errors():
                self._client.log_batch(self.run_id, metrics=metrics, synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            from mlflow.entities import RunTag

            with self._errors():
                self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            with self._errors():
                if Path(path).is_dir():
                    self._client.log_artifacts(self.run_id, str(path), artifact_path=artifact_path)
                else:
                    self._client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_dict(self, values: Mapping[str, Any], name: str) -> None:
        if self.enabled:
            with self._errors():
                self._client.log_dict(self.run_id, dict(values), name)

    def end(self, status: str = "FINISHED", end_time: float | None = None) -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED); ``end_time`` in seconds since the epoch."""
        if not self.enabled or self.status != "RUNNING":
            return
        end_ms = None if end_time is None else int(end_time * 1000)
        with self._errors():
            self._client.set_terminated(self.run_id, status, end_time=end_ms)
        self.status = status


def _running_runs(client: Any, experiment_id: str, extra_filter: str = "") -> Iterator[Any]:
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING'{extra_filter}",
                                  max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
