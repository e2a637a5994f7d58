"""DVC stage: the study report from every target's results, the IRP curve and the scorer metrics.

Inputs: data/transfer/*/results.json, data/irp/curve.json (optional), metrics/scorer.json (optional),
docs/reference/published_accuracies.csv (optional: published accuracies the report calibrates against; absent, the
calibration section says so; malformed, a DataError naming the file and line).
Outputs: reports/ (replaced atomically): summary.md, results.csv, paired.csv, verdicts.json; per target <target>.md,
<target>.csv, <target>_cells.csv, <target>_layers.csv, figures as PNG + SVG (<target>, <target>_layers,
<target>_sanity when modifiers ran), plots/<target>.csv (for ``dvc plots``); irp_curve.{csv,png,svg},
calibration.{md,csv}, dvc_plot_template.json (files: ``autos.report.build``). metrics/report.json: the verdicts
again (AutoS vs the best single-shot baseline per target@sparsity, percent), for ``dvc metrics``: reports/ is one
untracked output folder, so a file inside it cannot be declared a metric of its own. MLflow: run "report" holding the
files and the verdicts' numbers as metrics ``verdict/<target>/s<sparsity %>/<name>``.

The report library imports no torch, so this stage hands it what it needs from the registry and the config: every
method's record (``PRUNERS.records()``: titles, kinds) and the study's source (``source`` and ``irp`` in params), which
the summary states first and the figures name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from autos.config import StudyConfig
from autos.errors import DataError
from autos.paths import SOURCE_TICKET_FILE
from autos.pipeline.context import StageContext, atomic_dir, read_json
from autos.pruners import PRUNERS
from autos.report import PublishedPoint, Source, build_report, load_results, read_published, verdict_metrics

log = logging.getLogger("autos.stage.report")

PUBLISHED_ACCURACIES = Path("docs/reference/published_accuracies.csv")  # relative to the repository root


def read_optional(path: Path) -> Any | None:
    """The JSON at ``path``, or None (logged) when it is absent."""
    if not path.exists():
        log.warning("report: %s not found; that section is left out", path)
        return None
    try:
        return read_json(path)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_published_accuracies(root: Path) -> tuple[PublishedPoint, ...] | None:
    """The published accuracies (:data:`PUBLISHED_ACCURACIES` under ``root``), or None (logged) when the file is
    absent; DataError naming the file and line when it is malformed."""
    path = root / PUBLISHED_ACCURACIES
    if not path.exists():
        log.warning("report: %s not found; the calibration section says no published numbers were found", path)
        return None
    return read_published(path)


def find_results(transfer_dir: Path) -> list[Path]:
    return sorted(transfer_dir.glob("*/results.json"))


def verdict_mlflow_metrics(verdicts: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The verdicts' numbers as MLflow metric keys (no ``@``): ``verdict/<target>/s<sparsity %>/<name>``."""
    metrics: dict[str, float] = {}
    for record in verdicts.values():
        prefix = f"verdict/{record['target']}/s{float(record['sparsity']) * 100:.4g}"
        for name in ("autos_mean", "baseline_mean", "diff", "ci_low", "ci_high", "n"):
            if isinstance(record.get(name), (int, float)):
                metrics[f"{prefix}/{name}"] = float(record[name])
    return metrics


def study_source(cfg: StudyConfig) -> Source:
    """The study's source spec and IRP settings, as the report states them."""
    spec = cfg.source
    return Source(model=spec.model, dataset=spec.dataset, width=spec.width, epochs=spec.epochs,
                  irp=cfg.irp.model_dump(mode="json"))


def run(ctx: StageContext) -> None:
    cfg, tracker, paths = ctx.cfg, ctx.tracker, ctx.paths
    results = load_results(find_results(paths.transfer))  # DataError naming the file and row when one is bad
    if not results:
        log.warning("report: no %s/*/results.json found; the report has no target tables", paths.transfer)
    undeclared = sorted(set(results) - set(cfg.transfer.targets))
    if undeclared:
        log.warning("report: results for targets not in params (stale?): %s", ", ".join(undeclared))
    curve = read_optional(paths.irp / "curve.json")
    scorer = read_optional(paths.metrics / "scorer.json")
    ticket = read_optional(paths.scorer / SOURCE_TICKET_FILE)
    published = read_published_accuracies(ctx.root)

    records = PRUNERS.records()
    params = {"targets": ",".join(results), "runs": sum(len(found.rows) for found in results.values()),
              "has_irp_curve": curve is not None, "has_scorer_metrics": scorer is not None}
    with tracker.run("report", params=params, tags={"stage": "report"}):
        with atomic_dir(paths.reports) as out:
            files = build_report(results, curve, scorer, out, ticket, records=records, source=study_source(cfg),
                                 published=published)
        log.info("report: wrote %d files to %s", len(files), paths.reports)
        verdicts = verdict_metrics(results, records)
        ctx.write_metrics("report", verdicts)
        tracker.log_metrics(verdict_mlflow_metrics(verdicts))
        tracker.log_artifact(paths.reports, "report")
