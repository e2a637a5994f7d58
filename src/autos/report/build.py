"""Writing the report directory: every CSV, Markdown page, PNG and the ``dvc plots`` template (``build_report``)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from autos.report.aggregate import cells_frame, irp_curve_frame, plot_data, results_frame
from autos.report.markdown import accuracy_table, summary_markdown, table_frame, target_markdown
from autos.report.plots import dvc_plot_template, plot_irp_curve, plot_target

log = logging.getLogger("autos.report")  # the package's name, as before the split: log lines read the same

PLOTS_DIR = "plots"
DVC_TEMPLATE_NAME = "dvc_plot_template.json"


# --------------------------------------------------------------------------- the whole report


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def _safe_name(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", target)


def build_target(target: str, payload: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """<target>.csv (the final-epoch table), <target>_cells.csv (its numbers), .md, .png and plots/<target>.csv;
    returns {role: path}."""
    rows = list(payload.get("rows", []))
    name = _safe_name(target)
    written: dict[str, Path] = {}
    if rows:
        written[f"{target}.png"] = plot_target(target, rows, out / f"{name}.png")
        written[f"{target}.csv"] = _write_csv(table_frame(accuracy_table(rows)), out / f"{name}.csv")
        written[f"{target}_cells.csv"] = _write_csv(cells_frame(rows), out / f"{name}_cells.csv")
        (out / PLOTS_DIR).mkdir(exist_ok=True)
        written[f"plots/{target}.csv"] = _write_csv(plot_data(rows), out / PLOTS_DIR / f"{name}.csv")
    md = out / f"{name}.md"
    md.write_text(target_markdown(target, payload, png=written[f"{target}.png"].name if rows else None))
    written[f"{target}.md"] = md
    return written


def build_report(results: Mapping[str, Mapping[str, Any]], curve: Mapping[str, Any] | None,
                 scorer: Mapping[str, Any] | None, out: Path) -> list[Path]:
    """Write every report file into ``out`` (created if needed); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"results": _write_csv(results_frame(results), out / "results.csv")}
    for target, payload in results.items():
        written.update(build_target(target, payload, out))
        log.info("report: %s (%d runs)", target, len(payload.get("rows", [])))
    curve_frame = irp_curve_frame(curve) if curve else None
    if curve_frame is not None and not curve_frame.empty:
        written["irp_curve.csv"] = _write_csv(curve_frame, out / "irp_curve.csv")
        if "density" in curve_frame.columns and "final_test_acc" in curve_frame.columns:
            written["irp_curve.png"] = plot_irp_curve(curve_frame, out / "irp_curve.png")
    if scorer is None:
        log.warning("report: no scorer metrics; the scorer table is left out")
    template = out / DVC_TEMPLATE_NAME
    template.write_text(json.dumps(dvc_plot_template(), indent=2) + "\n")
    written["dvc_template"] = template
    relative = {role: path.relative_to(out).as_posix() for role, path in written.items()}
    summary = out / "summary.md"
    summary.write_text(summary_markdown(results, curve_frame, scorer, relative))
    return [*written.values(), summary]
