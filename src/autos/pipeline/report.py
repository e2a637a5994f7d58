"""DVC stage: the study report from every target's results, every source run's IRP curve, scorer metrics and ticket.

Inputs: data/transfer/*/results.json; per source seed ``s`` (``sources.seeds``), each optional (absent: the section
says so): data/irp/<s>/curve.json, data/scorer/<s>/metrics.json, data/scorer/<s>/source_ticket.json;
docs/reference/published_accuracies.csv (optional: published accuracies the report calibrates against; absent, the
calibration section says so; malformed, a DataError naming the file and line). Params: ``report`` (the methods under
test, confidence, correction, equivalence margin), ``sources`` (seeds, pairing), ``source``, ``irp``, ``transfer``
(methods, variants).
Outputs: reports/ (replaced atomically): summary.md, results.csv, paired.csv, verdicts.json, controls.csv; per target
<target>.md, <target>.csv, <target>_cells.csv, <target>_layers.csv, figures as PNG + SVG (<target>, <target>_layers,
<target>_sanity when modifiers ran), plots/<target>.csv (for ``dvc plots``); irp_curve.{csv,png,svg},
source_ticket figures, calibration.{md,csv}, dvc_plot_template.json (files: ``autos.report.build``).
metrics/report.json: per verdict ``<target>@<sparsity>@<method>`` the few numbers ``dvc metrics`` compares (diff,
ci_low, ci_high, p_adjusted, n, verdict; ``autos.report.verdicts.report_metrics``): reports/ is one untracked output
folder, so a file inside it cannot be declared a metric of its own. MLflow: run "report" holding the files and the
verdicts' numbers as metrics ``verdict/<target>/s<sparsity %>/<method>/<name>``.

The report library imports no torch, so this stage hands it what it needs from the registry and the config: every
method's record (``autos.study.method_records(cfg)``, variants included, over ``PRUNERS.records()`` for methods no
longer in the study: titles, kinds, ``variant_of``), the ``report`` section and the study's source (``source``,
``irp`` and ``sources`` in params), which the summary states first and the figures name.
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
from autos.registry import MethodRecord
from autos.report import (
    PublishedPoint,
    Source,
    SourceRun,
    VerdictSettings,
    build_report,
    load_results,
    read_published,
    report_metrics,
    study_verdicts,
)
from autos.study import method_records

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


def verdict_mlflow_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The numbers of ``metrics/report.json`` (keys ``<target>@<sparsity>@<method>``) as MLflow metric keys (no
    ``@``): ``verdict/<target>/s<sparsity %>/<method>/<name>``."""
    out: dict[str, float] = {}
    for key, record in metrics.items():
        target, sparsity, method = key.split("@")
        prefix = f"verdict/{target}/s{float(sparsity) * 100:.4g}/{method}"
        for name, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}/{name}"] = float(value)
    return out


def study_source(cfg: StudyConfig) -> Source:
    """The study's source spec, IRP settings and source runs, as the report states them."""
    spec = cfg.source
    return Source(model=spec.model, dataset=spec.dataset, width=spec.width, epochs=spec.epochs,
                  irp=cfg.irp.model_dump(mode="json"), seeds=tuple(cfg.sources.seeds), pairing=cfg.sources.pairing)


def study_records(cfg: StudyConfig) -> dict[str, MethodRecord]:
    """Every registered method's record, the study's own (variants included) over them."""
    return {**PRUNERS.records(), **method_records(cfg)}


def read_source_runs(ctx: StageContext) -> list[SourceRun]:
    """Every source run's IRP curve, scorer metrics and source ticket (None where absent, logged)."""
    paths = ctx.paths
    return [SourceRun(seed=seed, curve=read_optional(paths.source_irp(seed) / "curve.json"),
                      scorer=read_optional(paths.source_scorer(seed) / "metrics.json"),
                      ticket=read_optional(paths.source_scorer(seed) / SOURCE_TICKET_FILE))
            for seed in ctx.cfg.sources.seeds]


def run(ctx: StageContext) -> None:
    cfg, tracker, paths = ctx.cfg, ctx.tracker, ctx.paths
    results = load_results(find_results(paths.transfer))  # DataError naming the file and row when one is bad
    if not results:
        log.warning("report: no %s/*/results.json found; the report has no target tables", paths.transfer)
    undeclared = sorted(set(results) - set(cfg.transfer.targets))
    if undeclared:
        log.warning("report: results for targets not in params (stale?): %s", ", ".join(undeclared))
    runs = read_source_runs(ctx)
    published = read_published_accuracies(ctx.root)

    records, settings = study_records(cfg), VerdictSettings.of(cfg.report)
    params = {"targets": ",".join(results), "runs": sum(len(found.rows) for found in results.values()),
              "source_runs": len(runs), "has_irp_curve": any(r.curve is not None for r in runs),
              "has_scorer_metrics": any(r.scorer is not None for r in runs)}
    with tracker.run("report", params=params, tags={"stage": "report"}):
        with atomic_dir(paths.reports) as out:
            files = build_report(results, None, None, out, records=records, source=study_source(cfg),
                                 published=published, settings=settings, source_runs=runs)
        log.info("report: wrote %d files to %s", len(files), paths.reports)
        metrics = report_metrics(study_verdicts(results, records, settings))
        ctx.write_metrics("report", metrics)
        tracker.log_metrics(verdict_mlflow_metrics(metrics))
        tracker.log_artifact(paths.reports, "report")
