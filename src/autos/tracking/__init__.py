"""MLflow: the only package that imports mlflow (lazily). ``tracker`` (the ``Tracker`` of a stage), ``store`` (where
the store is, the SQLite file created once and atomically, a copied workspace's artifact locations, store failures as
one sentence), ``runs`` (runs off the fluent stack, value conversion), ``ownership`` (who owns a RUNNING run),
``server`` (a remote store that does not serve requests), ``sweep`` (the transfer sweep's runs), ``run_plots`` (small
per-run figures), ``scorer_model`` (the scorer as an MLflow model from code)."""

from __future__ import annotations

from autos.tracking.ownership import (
    LEGACY_ORPHAN_AGE_S,
    TAG_CLOSED,
    TAG_HOST,
    TAG_PID,
    TAG_PROC_START,
    TRACKED_EXPERIMENTS,
    TrackedExperiments,
    end_active_runs,
    owner_alive,
    owner_tags,
    process_start,
)
from autos.tracking.runs import RunHandle, flatten, metric_values, param_values
from autos.tracking.server import probe_server
from autos.tracking.store import ARTIFACT_DIR, DB_NAME, TrackingError, tracking_uri
from autos.tracking.tracker import Tracker

__all__ = [
    "ARTIFACT_DIR", "DB_NAME", "LEGACY_ORPHAN_AGE_S", "TAG_CLOSED", "TAG_HOST", "TAG_PID", "TAG_PROC_START",
    "TRACKED_EXPERIMENTS", "RunHandle", "TrackedExperiments", "Tracker", "TrackingError", "end_active_runs",
    "flatten", "metric_values", "owner_alive", "owner_tags", "param_values", "probe_server", "process_start",
    "tracking_uri",
]
