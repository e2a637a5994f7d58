"""The study report: tables, plots and a summary built from the stages' JSON outputs (no MLflow, no torch).

Pure functions over the loaded JSON, so the report is testable on synthetic results:

- :func:`results_frame` - every run of every target, one line each (the long ``results.csv``);
- :func:`cell_stats` / :func:`accuracy_table` - method x sparsity cells, mean ± std over seeds, with markers for
  layer collapse (:data:`COLLAPSE_MARK`) and achieved sparsity off the requested one (:data:`ACHIEVED_MARK`);
- :func:`target_markdown`, :func:`cells_frame`, :func:`plot_target`, :func:`plot_data` - per-target Markdown,
  per-cell numbers, PNG and ``dvc plots`` data (:func:`dvc_plot_template` draws the latter one line per method);
- :func:`irp_curve_frame`, :func:`plot_irp_curve` - the source IRP accuracy-vs-density curve;
- :func:`scorer_table` - held-out scorer metrics next to the trivial baselines, whatever metrics are present;
- :func:`build_report` - writes all of it into one directory and returns the files written.

Accuracies are fractions in the inputs and the CSVs, percent in the Markdown tables and the plots.

Modules, one job each (this package re-exports their public names): :mod:`autos.report.aggregate` (reading
results, frames, cells), :mod:`autos.report.markdown` (tables and text), :mod:`autos.report.plots` (figures and
the ``dvc plots`` template) and :mod:`autos.report.build` (writing the report directory).
"""

from __future__ import annotations

from autos.report.aggregate import (
    ACHIEVED_TOLERANCE,
    DENSE,
    DROPPED_KEYS,
    INT_COLUMNS,
    IRP,
    RESULT_COLUMNS,
    Cell,
    CellKey,
    achieved_differs,
    cell_stats,
    cells_frame,
    irp_curve_frame,
    is_collapsed,
    label_order,
    load_results,
    plot_data,
    pruned_sparsities,
    results_frame,
    run_label,
)
from autos.report.build import (
    DVC_TEMPLATE_NAME,
    PLOTS_DIR,
    build_report,
    build_target,
)
from autos.report.markdown import (
    ACHIEVED_MARK,
    COLLAPSE_MARK,
    HOW_TO_READ,
    MISSING,
    Table,
    accuracy_table,
    achieved_notes,
    collapsed_runs,
    format_cell,
    format_sparsity,
    irp_table,
    markdown_table,
    metric_columns,
    relative_links,
    scorer_scalars,
    scorer_table,
    sparsity_table,
    summary_markdown,
    table_frame,
    target_markdown,
)
from autos.report.plots import (
    dvc_plot_template,
    plot_irp_curve,
    plot_target,
)

__all__ = [
    "ACHIEVED_MARK",
    "ACHIEVED_TOLERANCE",
    "COLLAPSE_MARK",
    "DENSE",
    "DROPPED_KEYS",
    "DVC_TEMPLATE_NAME",
    "HOW_TO_READ",
    "INT_COLUMNS",
    "IRP",
    "MISSING",
    "PLOTS_DIR",
    "RESULT_COLUMNS",
    "Cell",
    "CellKey",
    "Table",
    "accuracy_table",
    "achieved_differs",
    "achieved_notes",
    "build_report",
    "build_target",
    "cell_stats",
    "cells_frame",
    "collapsed_runs",
    "dvc_plot_template",
    "format_cell",
    "format_sparsity",
    "irp_curve_frame",
    "irp_table",
    "is_collapsed",
    "label_order",
    "load_results",
    "markdown_table",
    "metric_columns",
    "plot_data",
    "plot_irp_curve",
    "plot_target",
    "pruned_sparsities",
    "relative_links",
    "results_frame",
    "run_label",
    "scorer_scalars",
    "scorer_table",
    "sparsity_table",
    "summary_markdown",
    "table_frame",
    "target_markdown",
]
