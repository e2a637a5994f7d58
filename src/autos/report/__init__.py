"""The study report: tables, plots, paired comparisons and a summary built from the stages' JSON outputs (no
MLflow, no torch).

Pure functions over the loaded JSON, so the report is testable on synthetic results:

- :func:`load_results` - ``results.json`` files as :class:`TargetResults` (rows checked as
  :class:`autos.sweep.records.RunRow`; a bad row is a DataError naming the file and the row);
- :func:`results_frame` - every run of every target, one line each (the long ``results.csv``);
- :func:`cell_stats` / :func:`accuracy_table` - method x sparsity cells, mean ± sample std over seeds (one seed:
  its value and n=1, never ± 0), with markers for layer collapse (:data:`COLLAPSE_MARK`) and achieved sparsity off
  the requested one (:data:`ACHIEVED_MARK`);
- :func:`paired_differences`, :func:`paired_table`, :func:`paired_frame` - every method minus AutoS, paired by seed,
  with a 95% Student-t interval;
- :func:`study_verdicts`, :func:`verdict_sentence`, :func:`verdict_metrics`, :func:`report_metrics` - every method
  under test (:class:`VerdictSettings`, params' ``report``) against the best single-shot baseline (chosen on the
  validation split) per target x sparsity: paired by seed and source at the unit the design makes independent
  (:mod:`autos.report.design`), t-interval, paired t-test Holm-adjusted across the table, TOST equivalence
  (better / worse / equivalent / no significant difference / no verdict / no baseline);
- :func:`target_controls`, :func:`controls_frame` - exploratory controls: variants minus their base, modifier runs
  minus their method (unadjusted);
- :class:`SourceRun` - one independent source run's IRP curve, scorer metrics and ticket (several: their spread);
- :func:`target_markdown`, :func:`cells_frame`, :func:`plot_target`, :func:`plot_data` - per-target Markdown,
  per-cell numbers, figures and ``dvc plots`` data (:func:`dvc_plot_template` draws the latter one line per method);
  :func:`accuracy_figure`, :func:`layer_density_figure`, :func:`sanity_figure` return the figures themselves;
- :func:`irp_curve_frame`, :func:`irp_curve_figure` - the source IRP accuracy-vs-density curve;
  :func:`source_ticket_figure` - the scorer's mask on the source next to the IRP ticket, per layer;
- :func:`scorer_table` - held-out scorer metrics next to the trivial baselines, whatever metrics are present;
- :func:`read_published`, :func:`study_calibration`, :func:`regime_sentence`, :func:`calibration_table`,
  :func:`calibration_frame`, :func:`calibration_markdown` - every target next to published accuracies of its model
  and dataset (``docs/reference/published_accuracies.csv``, read by the stage and passed to :func:`build_report`):
  ours vs published at the same or nearest sparsity, Spearman's ρ of the methods' order, one sentence on the regime;
- :func:`build_report` - writes all of it into one directory and returns the files written.

What the report knows of a method comes from the method registry's records (``autos.registry.MethodRecord``: title,
kind, ``variant_of``), passed in as ``records`` (``autos.study.method_records(cfg)`` over
``autos.pruners.PRUNERS.records()``, by the report stage: this package imports no torch, so not the registry); the
study's :class:`Source` (the model the AutoS scorer learned from, and its independent runs) opens the summary and is
named in the figures' titles.

Units: accuracies are fractions in the inputs, ``results.csv`` and ``<target>_cells.csv`` (copies of the rows'
numbers); percent (one decimal) in the Markdown tables and figures; ``paired.csv`` and ``verdicts.json`` carry
percent and percentage points, named in their columns (``_pct``, ``_pp``) and documented in
:func:`autos.report.compare.verdict_record`. Every figure is written as PNG and SVG, byte-reproducibly.

Modules, one job each (this package re-exports their public names): :mod:`autos.report.aggregate` (reading
results, frames, cells), :mod:`autos.report.compare` (paired differences to AutoS, method kinds, baselines),
:mod:`autos.report.stats` (t, Holm, TOST), :mod:`autos.report.design` (the unit of a comparison),
:mod:`autos.report.verdicts` (the verdict table), :mod:`autos.report.verdict_text` (its wording),
:mod:`autos.report.controls` (exploratory controls), :mod:`autos.report.sources` (the source runs' sections),
:mod:`autos.report.names` (display names, titles, the source), :mod:`autos.report.tables` (formatted cells and the
Markdown tables), :mod:`autos.report.pages` (the per-target pages, the summary, verdict sentences),
:mod:`autos.report.figures` (canvas, saving, styles and legend shared by the figures),
:mod:`autos.report.accuracy_figures` (accuracy vs sparsity, sanity checks, IRP curve, the ``dvc plots`` template),
:mod:`autos.report.layer_figures` (per-layer density, the source ticket), :mod:`autos.report.calibration` (against
published numbers) and :mod:`autos.report.build` (writing the report directory).
"""

from __future__ import annotations

from autos.report.accuracy_figures import (
    CHANCE_GID,
    DENSE_GID,
    accuracy_figure,
    dvc_plot_template,
    irp_curve_figure,
    plot_irp_curve,
    plot_sanity,
    plot_target,
    sanity_figure,
)
from autos.report.aggregate import (
    ACHIEVED_TOLERANCE,
    DENSE,
    DROPPED_KEYS,
    INT_COLUMNS,
    IRP,
    RESULT_COLUMNS,
    Cell,
    CellKey,
    TargetResults,
    achieved_differs,
    cell_stats,
    cells_frame,
    irp_curve_frame,
    label_order,
    load_results,
    plot_data,
    pruned_sparsities,
    results_frame,
    run_label,
)
from autos.report.build import (
    DVC_TEMPLATE_NAME,
    PAIRED_NAME,
    PLOTS_DIR,
    VERDICTS_NAME,
    build_report,
    build_target,
    paired_frame,
    verdict_metrics,
)
from autos.report.calibration import (
    CALIBRATION_CSV,
    CALIBRATION_MD,
    DENSE_GAP,
    DENSITY_TOLERANCE,
    NO_PUBLISHED,
    PUBLISHED_COLUMNS,
    RANK_AGREEMENT,
    CalibrationLine,
    PublishedPoint,
    RankAgreement,
    TargetCalibration,
    calibrate_target,
    calibration_frame,
    calibration_markdown,
    calibration_table,
    match_sparsity,
    parse_published,
    read_published,
    regime_sentence,
    spearman,
    study_calibration,
)
from autos.report.compare import (
    REFERENCE,
    PairedDiff,
    method_kinds,
    paired_differences,
    single_shot_baselines,
)
from autos.report.controls import CONTROLS_NAME, Control, controls_frame, controls_table, target_controls
from autos.report.design import Estimate, estimate, pair_units, unit_values
from autos.report.figures import COLLAPSE_LABEL, save_figure
from autos.report.layer_figures import (
    layer_density_figure,
    layer_density_frame,
    plot_layers,
    source_ticket_figure,
)
from autos.report.names import (
    MethodRecords,
    Source,
    method_name,
    method_title,
    num_classes,
    target_title,
)
from autos.report.pages import (
    HOW_TO_READ,
    calibration_section,
    relative_links,
    summary_markdown,
    target_markdown,
)
from autos.report.sources import SourceRun, curves_frame
from autos.report.stats import holm, t_interval, t_test_p, tost
from autos.report.tables import (
    ACHIEVED_MARK,
    COLLAPSE_MARK,
    MISSING,
    Table,
    accuracy_table,
    achieved_notes,
    collapsed_runs,
    format_cell,
    format_mean,
    format_sparsity,
    irp_table,
    markdown_table,
    metric_columns,
    paired_table,
    scorer_scalars,
    scorer_table,
    sparsity_table,
    table_frame,
)
from autos.report.verdict_text import verdict_sentence, verdict_table
from autos.report.verdicts import (
    Choice,
    Verdict,
    VerdictSettings,
    choose_baseline,
    report_metrics,
    study_verdicts,
    target_verdicts,
    verdict_record,
    verdicts_json,
)

__all__ = [
    "ACHIEVED_MARK",
    "ACHIEVED_TOLERANCE",
    "CALIBRATION_CSV",
    "CALIBRATION_MD",
    "CHANCE_GID",
    "COLLAPSE_LABEL",
    "COLLAPSE_MARK",
    "CONTROLS_NAME",
    "DENSE",
    "DENSE_GAP",
    "DENSE_GID",
    "DENSITY_TOLERANCE",
    "DROPPED_KEYS",
    "DVC_TEMPLATE_NAME",
    "HOW_TO_READ",
    "INT_COLUMNS",
    "IRP",
    "MISSING",
    "NO_PUBLISHED",
    "PAIRED_NAME",
    "PLOTS_DIR",
    "PUBLISHED_COLUMNS",
    "RANK_AGREEMENT",
    "REFERENCE",
    "RESULT_COLUMNS",
    "VERDICTS_NAME",
    "CalibrationLine",
    "Cell",
    "CellKey",
    "Choice",
    "Control",
    "Estimate",
    "MethodRecords",
    "PairedDiff",
    "PublishedPoint",
    "RankAgreement",
    "Source",
    "SourceRun",
    "Table",
    "TargetCalibration",
    "TargetResults",
    "Verdict",
    "VerdictSettings",
    "accuracy_figure",
    "accuracy_table",
    "achieved_differs",
    "achieved_notes",
    "build_report",
    "build_target",
    "calibrate_target",
    "calibration_frame",
    "calibration_markdown",
    "calibration_section",
    "calibration_table",
    "cell_stats",
    "cells_frame",
    "choose_baseline",
    "collapsed_runs",
    "controls_frame",
    "controls_table",
    "curves_frame",
    "dvc_plot_template",
    "estimate",
    "format_cell",
    "format_mean",
    "format_sparsity",
    "holm",
    "irp_curve_figure",
    "irp_curve_frame",
    "irp_table",
    "label_order",
    "layer_density_figure",
    "layer_density_frame",
    "load_results",
    "markdown_table",
    "match_sparsity",
    "method_kinds",
    "method_name",
    "method_title",
    "metric_columns",
    "num_classes",
    "pair_units",
    "paired_differences",
    "paired_frame",
    "paired_table",
    "parse_published",
    "plot_data",
    "plot_irp_curve",
    "plot_layers",
    "plot_sanity",
    "plot_target",
    "pruned_sparsities",
    "read_published",
    "regime_sentence",
    "relative_links",
    "report_metrics",
    "results_frame",
    "run_label",
    "sanity_figure",
    "save_figure",
    "scorer_scalars",
    "scorer_table",
    "single_shot_baselines",
    "source_ticket_figure",
    "sparsity_table",
    "spearman",
    "study_calibration",
    "study_verdicts",
    "summary_markdown",
    "t_interval",
    "t_test_p",
    "table_frame",
    "target_controls",
    "target_markdown",
    "target_title",
    "target_verdicts",
    "tost",
    "unit_values",
    "verdict_metrics",
    "verdict_record",
    "verdict_sentence",
    "verdict_table",
    "verdicts_json",
]
