"""Writing the report directory (``build_report``): every CSV, Markdown page, figure (PNG + SVG), the verdicts and
the ``dvc plots`` template.

Per target ``<t>`` (the target's name, made file-safe): ``<t>.md``; ``<t>.csv`` (the final-epoch table, as shown),
``<t>_cells.csv`` (its numbers, fractions), ``<t>_layers.csv`` (per-layer density, mean over seeds, when recorded);
``figures/<t>.png`` (accuracy vs sparsity), ``figures/<t>_layers.png`` (per-layer density at the highest sparsity),
``figures/<t>_sanity.png`` (modifier variants, when any ran), each with its twin ``svg/<name>.svg``;
``plots/<t>.csv`` (``dvc plots`` data). ``figures/`` holds PNGs only: dvc.yaml declares it as image plots.

For the study: ``results.csv`` (every run, fractions), ``paired.csv`` (every method minus AutoS per target x
sparsity, percent / pp; header only without AutoS), ``verdicts.json`` (``{"<target>@<sparsity>@<method>": flat
record}``, ``autos.report.verdicts.verdict_record``; ``{}`` without a method under test), ``controls.csv`` (the
exploratory controls: variants minus their base, modifier runs minus their method; header only without any),
``irp_curve.csv`` (every source run's rounds), ``figures/irp_curve.png``, ``svg/irp_curve.svg``, the source
tickets' figures (``source_ticket.png``, or ``source_ticket_<seed>.png`` per run when there are several),
``dvc_plot_template.json``, ``calibration.md`` and ``calibration.csv`` (every target next to the published
accuracies of its model and dataset, ``autos.report.calibration``; the stage passes the published rows, None when
it found none) and ``summary.md`` (which opens with the study's source and each target's regime against the
published numbers; figures name the source too).

``records`` (``{name: autos.registry.MethodRecord}``, from ``autos.study.method_records(cfg)`` over
``autos.pruners.PRUNERS.records()``) give the methods' titles, kinds and variants; ``settings`` (the ``report``
section) what the verdicts are about and how they are judged; the report stage passes them, since this package
imports no torch.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.accuracy_figures import dvc_plot_template, plot_irp_curve, plot_sanity, plot_target
from autos.report.aggregate import TargetResults, cells_frame, plot_data, results_frame
from autos.report.calibration import (
    CALIBRATION_CSV,
    CALIBRATION_MD,
    PublishedPoint,
    TargetCalibration,
    calibration_frame,
    calibration_markdown,
    study_calibration,
)
from autos.report.compare import method_kinds, paired_differences
from autos.report.controls import CONTROLS_NAME, controls_frame
from autos.report.figures import FIGURES_DIR, svg_path
from autos.report.layer_figures import layer_density_frame, plot_layers, plot_source_ticket
from autos.report.names import MethodRecords, Source, num_classes, target_title
from autos.report.pages import summary_markdown, target_figures, target_markdown
from autos.report.sources import SourceRun, curves_frame, ticket_figure_name
from autos.report.tables import accuracy_table, table_frame
from autos.report.verdicts import Verdict, VerdictSettings, study_verdicts, verdicts_json

log = logging.getLogger("autos.report")  # the package's name, as before the split: log lines read the same

PLOTS_DIR = "plots"
DVC_TEMPLATE_NAME = "dvc_plot_template.json"
VERDICTS_NAME = "verdicts.json"
PAIRED_NAME = "paired.csv"
PAIRED_COLUMNS = ["target", "sparsity", "label", "method", "modifier", "kind", "reference", "n", "seeds",
                  "method_mean_pct", "method_std_pct", "autos_mean_pct", "autos_std_pct", "diff_mean_pp",
                  "diff_std_pp", "ci_low_pp", "ci_high_pp"]


# --------------------------------------------------------------------------- the whole report


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def _safe_name(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", target)


def _pct(value: float) -> float:
    return math.nan if math.isnan(value) else round(100.0 * value, 4)


def paired_frame(results: Mapping[str, TargetResults], records: MethodRecords) -> pd.DataFrame:
    """Every label minus AutoS per target x sparsity over the paired seeds (``compare.paired_differences``):
    accuracies in percent, differences and their 95% t-interval in percentage points; ``kind`` from ``records``."""
    lines = []
    for target, found in results.items():
        kinds = method_kinds(found, records)
        for d in paired_differences(found.rows):
            method, _, modifier = d.label.partition("+")
            lines.append({"target": target, "sparsity": d.sparsity, "label": d.label, "method": method,
                            "modifier": modifier, "kind": kinds.get(method, ""), "reference": d.reference,
                            "n": d.n, "seeds": ";".join(map(str, d.seeds)),
                            "method_mean_pct": _pct(d.label_mean), "method_std_pct": _pct(d.label_std),
                            "autos_mean_pct": _pct(d.reference_mean), "autos_std_pct": _pct(d.reference_std),
                            "diff_mean_pp": _pct(d.mean), "diff_std_pp": _pct(d.std),
                            "ci_low_pp": _pct(d.ci_low), "ci_high_pp": _pct(d.ci_high)})
    return pd.DataFrame(lines, columns=PAIRED_COLUMNS)


def verdict_metrics(results: Mapping[str, TargetResults], records: MethodRecords,
                    settings: VerdictSettings | None = None) -> dict[str, dict[str, Any]]:
    """The contents of ``verdicts.json`` (``verdicts.verdicts_json``): flat records keyed
    ``<target>@<sparsity>@<method>``; ``verdicts.report_metrics`` keeps the few numbers ``dvc metrics`` shows."""
    return verdicts_json(study_verdicts(results, records, settings))


def _target_figures(found: TargetResults, out: Path, name: str, records: MethodRecords,
                    source: Source | None) -> dict[str, Path]:
    """The accuracy, per-layer density and sanity-check figures of a target with rows (PNG + SVG)."""
    figures_dir, rows, target = out / FIGURES_DIR, found.rows, found.target
    title, classes = target_title(target, found.spec), num_classes(found.dataset)
    written: dict[str, Path] = {}
    png = plot_target(target, rows, figures_dir / f"{name}.png", records=records, num_classes=classes, title=title,
                      source=source)
    written[f"{target}.png"], written[f"{target}.svg"] = png, svg_path(png)
    layers = plot_layers(target, rows, figures_dir / f"{name}_layers.png", records=records, title=title,
                         source=source)
    if layers is not None:
        written[f"{target}_layers.png"], written[f"{target}_layers.svg"] = layers, svg_path(layers)
    sanity = plot_sanity(target, rows, figures_dir / f"{name}_sanity.png", records=records, num_classes=classes,
                         title=title, source=source)
    if sanity is not None:
        written[f"{target}_sanity.png"], written[f"{target}_sanity.svg"] = sanity, svg_path(sanity)
    return written


def build_target(found: TargetResults, out: Path, *, records: MethodRecords, source: Source | None = None,
                 settings: VerdictSettings | None = None,
                 verdicts: Sequence[Verdict] | None = None) -> dict[str, Path]:
    """One target's files (module docstring); returns {role: path}, roles named after the files
    (``<target>.png``, ``<target>.svg``, ``<target>_layers.png``, ...). ``verdicts``: the study's (their correction
    spans every target); None: this target's judged alone."""
    target, rows, name = found.target, found.rows, _safe_name(found.target)
    written: dict[str, Path] = {}
    if rows:
        written.update(_target_figures(found, out, name, records, source))
        written[f"{target}.csv"] = _write_csv(table_frame(accuracy_table(rows)), out / f"{name}.csv")
        written[f"{target}_cells.csv"] = _write_csv(cells_frame(rows), out / f"{name}_cells.csv")
        layer_frame = layer_density_frame(rows)
        if not layer_frame.empty:
            written[f"{target}_layers.csv"] = _write_csv(layer_frame, out / f"{name}_layers.csv")
        (out / PLOTS_DIR).mkdir(exist_ok=True)
        written[f"plots/{target}.csv"] = _write_csv(plot_data(rows), out / PLOTS_DIR / f"{name}.csv")
    figures = target_figures(target, {role: path.relative_to(out).as_posix() for role, path in written.items()})
    md = out / f"{name}.md"
    md.write_text(target_markdown(found, records, figures=figures, settings=settings,
                                  verdicts=True if verdicts is None else verdicts))
    written[f"{target}.md"] = md
    return written


def _source_files(runs: Sequence[SourceRun], out: Path,
                  source: Source | None) -> tuple[pd.DataFrame | None, dict[str, Path]]:
    """The IRP curves (their frame, CSV and figure) and each source ticket's figure, where there are any."""
    written: dict[str, Path] = {}
    curve_frame = curves_frame(runs)
    if curve_frame is not None and not curve_frame.empty:
        written["irp_curve.csv"] = _write_csv(curve_frame, out / "irp_curve.csv")
        if "density" in curve_frame.columns and "final_test_acc" in curve_frame.columns:
            png = plot_irp_curve(curve_frame, out / FIGURES_DIR / "irp_curve.png", source)
            written["irp_curve.png"], written["irp_curve.svg"] = png, svg_path(png)
    for run in runs:
        if run.ticket:
            name = ticket_figure_name(run, runs)
            png = plot_source_ticket(run.ticket, out / FIGURES_DIR / name, source)
            written[name], written[name.removesuffix(".png") + ".svg"] = png, svg_path(png)
    return curve_frame, written


def _calibration_files(results: Mapping[str, TargetResults], published: Sequence[PublishedPoint] | None,
                       out: Path) -> tuple[list[TargetCalibration] | None, dict[str, Path]]:
    """``calibration.md`` and ``calibration.csv`` (header only without published numbers) and what they show."""
    calibration = None if published is None else study_calibration(results, published)
    page = out / CALIBRATION_MD
    page.write_text(calibration_markdown(calibration))
    return calibration, {CALIBRATION_MD: page,
                         CALIBRATION_CSV: _write_csv(calibration_frame(calibration or []), out / CALIBRATION_CSV)}


def _comparison_files(results: Mapping[str, TargetResults], records: MethodRecords, settings: VerdictSettings,
                      verdicts: Sequence[Verdict], out: Path) -> dict[str, Path]:
    """``paired.csv``, ``verdicts.json`` and ``controls.csv``."""
    written = {PAIRED_NAME: _write_csv(paired_frame(results, records), out / PAIRED_NAME)}
    path = out / VERDICTS_NAME
    path.write_text(json.dumps(verdicts_json(verdicts), indent=2, allow_nan=False) + "\n")
    written[VERDICTS_NAME] = path
    written[CONTROLS_NAME] = _write_csv(controls_frame(results, records, settings.confidence), out / CONTROLS_NAME)
    return written


def build_report(results: Mapping[str, TargetResults], curve: Mapping[str, Any] | None,
                 scorer: Mapping[str, Any] | None, out: Path, ticket: Mapping[str, Any] | None = None, *,
                 records: MethodRecords, source: Source | None = None,
                 published: Sequence[PublishedPoint] | None = None, settings: VerdictSettings | None = None,
                 source_runs: Sequence[SourceRun] | None = None) -> list[Path]:
    """Write every report file into ``out`` (created if needed); returns the files written. ``records``: the
    method records (titles, kinds, variants); ``source``: the study's source, named by the summary and the figures;
    ``published``: published accuracies (``autos.report.calibration.read_published``), None when there are none;
    ``settings``: the ``report`` section (default: AutoS under test, 95%, Holm, ±2 points); ``source_runs``: every
    source run's curve, scorer metrics and ticket (else the one source given by ``curve``, ``scorer``, ``ticket``)."""
    settings = settings or VerdictSettings()
    runs = list(source_runs) if source_runs is not None else [SourceRun(None, curve, scorer, ticket)]
    verdicts = study_verdicts(results, records, settings)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"results": _write_csv(results_frame(results), out / "results.csv")}
    for found in results.values():
        written.update(build_target(found, out, records=records, source=source, settings=settings,
                                    verdicts=verdicts))
        log.info("report: %s (%d runs)", found.target, len(found.rows))
    written.update(_comparison_files(results, records, settings, verdicts, out))
    if not any(run.scorer for run in runs):
        log.warning("report: no scorer metrics; the scorer table is left out")
    curve_frame, source_files = _source_files(runs, out, source)
    written.update(source_files)
    template = out / DVC_TEMPLATE_NAME
    template.write_text(json.dumps(dvc_plot_template(), indent=2) + "\n")
    written["dvc_template"] = template
    calibration, calibration_files = _calibration_files(results, published, out)
    written.update(calibration_files)
    relative = {role: path.relative_to(out).as_posix() for role, path in written.items()}
    summary = out / "summary.md"
    summary.write_text(summary_markdown(results, curve_frame, None, relative, records=records, source=source,
                                        calibration=calibration, settings=settings, verdicts=verdicts,
                                        source_runs=runs))
    return [*written.values(), summary]
