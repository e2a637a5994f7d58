"""Close the MLflow runs whose process is gone, in every experiment of this workspace's store:
``python -m autos.tracking.orphans`` (``make mlflow-ui`` runs it first).

A stage killed by SIGKILL cannot end its runs; the next stage's ``Tracker`` closes them. When the next ``dvc
repro`` has nothing to do, no stage runs and they would stay RUNNING in the UI: this closes them without running
anything (runs of live processes and of other hosts are left alone: ``Tracker.close_orphans``).
"""

from __future__ import annotations

import logging
import sys

from autos.paths import project_root
from autos.tracking.store import TrackingError, sqlite_path, tracking_uri
from autos.tracking.tracker import Tracker


def close_all() -> dict[str, list[str]]:
    """{experiment name: ids of the runs closed} over every active experiment of the workspace's store."""
    workspace = project_root()
    uri = tracking_uri(workspace)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return {}  # no store yet: nothing ran, nothing to close
    import mlflow

    names = [e.name for e in mlflow.MlflowClient(tracking_uri=uri).search_experiments()]
    return {name: Tracker(name, root=workspace).closed_orphans for name in names if name != "Default"}


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        closed = close_all()
    except TrackingError as exc:
        print(f"orphans: {exc}", file=sys.stderr)
        return 1
    total = sum(len(ids) for ids in closed.values())
    print(f"closed {total} orphaned MLflow run(s)" if total else "no orphaned MLflow runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
