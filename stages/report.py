"""DVC stage: the study report from every target's results, the IRP curve and the scorer metrics.

Inputs: data/transfer/*/results.json, data/irp/curve.json (optional), metrics/scorer.json (optional).
Outputs: reports/ (replaced atomically): results.csv, <target>.{csv,md,png}, <target>_cells.csv, plots/<target>.csv (for
``dvc plots``), irp_curve.{csv,png}, dvc_plot_template.json, summary.md. MLflow: run "report" holding the files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from autos.errors import DataError
from autos.report import build_report, load_results
from autos.study import IRP_DIR, METRICS_DIR, REPORTS_DIR, TRANSFER_DIR
from autos.tracking import Tracker
from stages.common import atomic_dir, parser, read_json, repo_root, run_stage

log = logging.getLogger("autos.stage.report")


def read_optional(path: Path) -> Any | None:
    """The JSON at ``path``, or None (logged) when it is absent."""
    if not path.exists():
        log.warning("report: %s not found; that section is left out", path)
        return None
    try:
        return read_json(path)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def find_results(root: Path) -> list[Path]:
    return sorted((root / TRANSFER_DIR).glob("*/results.json"))


def main(cfg, args) -> None:  # noqa: ANN001
    root = repo_root()
    paths = find_results(root)
    try:
        results = load_results(paths)
    except ValueError as exc:
        raise DataError(f"unreadable transfer results under {root / TRANSFER_DIR}: {exc}") from exc
    if not results:
        log.warning("report: no %s/*/results.json found; the report has no target tables", TRANSFER_DIR)
    undeclared = sorted(set(results) - set(cfg.transfer.targets))
    if undeclared:
        log.warning("report: results for targets not in params (stale?): %s", ", ".join(undeclared))
    curve = read_optional(root / IRP_DIR / "curve.json")
    scorer = read_optional(root / METRICS_DIR / "scorer.json")

    tracker = Tracker(cfg.tracking.experiment, enabled=cfg.tracking.enabled, root=root)
    params = {"targets": ",".join(results), "runs": sum(len(p.get("rows", [])) for p in results.values()),
              "has_irp_curve": curve is not None, "has_scorer_metrics": scorer is not None}
    with tracker.run("report", params=params, tags={"stage": "report"}):
        with atomic_dir(root / REPORTS_DIR) as out:
            files = build_report(results, curve, scorer, out)
        log.info("report: wrote %d files to %s", len(files), root / REPORTS_DIR)
        tracker.log_artifact(root / REPORTS_DIR, "report")


if __name__ == "__main__":
    run_stage("report", main, parser(__doc__))
