"""MLflow adapter: the only module that imports mlflow.

Default store: SQLite at ``<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``, where root is
``$DVC_ROOT`` when DVC runs the stage, else the current directory; ``MLFLOW_TRACKING_URI`` overrides.
One run per stage run, nested runs per IRP round and per (method, sparsity, seed). DVC's metrics files stay
the source of truth; MLflow mirrors them and holds plots and the scorer model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


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


class Tracker:
    """Thin wrapper over MLflow's fluent API; a disabled tracker does nothing (tests, quick runs)."""

    def __init__(self, experiment: str, *, enabled: bool = True, root: Path | None = None) -> None:
        self.enabled = enabled
        self.root = root or project_root()
        self._mlflow = None
        if not enabled:
            return
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        import mlflow

        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri(self.root))
        if mlflow.get_experiment_by_name(experiment) is None:
            location = None
            if tracking_uri(self.root).startswith("sqlite:"):
                location = (self.root / ARTIFACT_DIR).as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)

    @contextmanager
    def run(self, name: str, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
            nested: bool = False) -> Iterator[Tracker]:
        if not self.enabled:
            yield self
            return
        with self._mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {})):
            if params:
                self.log_params(params)
            yield self

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            flat = {k: (str(v)[:6000] if v is not None else "null") for k, v in flatten(params).items()}
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        numeric = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
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
