"""The source side of the summary: the study's source model and its independent runs (``sources.seeds``), each run's
IRP curve, scorer metrics and source ticket, and their spread across runs.

A :class:`SourceRun` is what the stages wrote for one source seed ``s``: ``data/irp/<s>/curve.json``,
``metrics/scorer_<s>.json`` and ``data/scorer/<s>/source_ticket.json`` (None where a file is missing: the section
says so). A run without a seed (``seed=None``) is the single source of a study that predates ``sources``, read from
the old paths; with one run, every section reads as it always has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from autos.report.aggregate import irp_curve_frame
from autos.report.names import Source, settings_line
from autos.report.stats import mean_std
from autos.report.tables import MISSING, Table, irp_table, markdown_table, scorer_scalars, scorer_table

PAIRING_TEXT = {"crossed": "crossed: every source run with every target seed",
                "paired": "paired: source run i with target seed i"}


@dataclass(frozen=True)
class SourceRun:
    """One independent run of the source pipeline (IRP, features, scorer) as the report reads it."""

    seed: int | None  # ``sources.seeds``; None: the study's one source at the pre-``sources`` paths
    curve: Mapping[str, Any] | None = None  # data/irp/<s>/curve.json
    scorer: Mapping[str, Any] | None = None  # metrics/scorer_<s>.json
    ticket: Mapping[str, Any] | None = None  # data/scorer/<s>/source_ticket.json

    @property
    def name(self) -> str:
        return "source" if self.seed is None else f"source {self.seed}"

    def where(self, what: str) -> str:
        """The file ``what`` (curve, scorer, ticket) was read from, relative to the repository root."""
        if self.seed is None:
            return {"curve": "data/irp/curve.json", "scorer": "metrics/scorer.json",
                    "ticket": "data/scorer/source_ticket.json"}[what]
        return {"curve": f"data/irp/{self.seed}/curve.json", "scorer": f"metrics/scorer_{self.seed}.json",
                "ticket": f"data/scorer/{self.seed}/source_ticket.json"}[what]


def curves_frame(runs: Sequence[SourceRun]) -> pd.DataFrame | None:
    """Every run's IRP rounds (``irp_curve_frame``); with several runs a leading ``source`` column; None when no
    run has a curve."""
    frames = []
    for run in runs:
        frame = irp_curve_frame(run.curve) if run.curve else None
        if frame is not None and not frame.empty:
            if len(runs) > 1:
                frame.insert(0, "source", run.seed)
            frames.append(frame)
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def source_section(source: Source | None) -> str:
    """The summary's opening: which model and dataset IRP ran on and the AutoS scorer learned from, with the IRP
    settings and the independent source runs, so that a swapped source shows."""
    if source is None:
        return "**Source.** Not given to the report: the source model is not stated (see `source` in params.yaml)."
    text = (f"**Source.** {source.title} ({settings_line(source.spec)}): IRP ran on this model and the AutoS scorer "
            "learned from its surviving weights; every target's AutoS masks come from that scorer.")
    irp = settings_line(source.irp)
    text += f" IRP: {irp}." if irp else ""
    if len(source.seeds) == 1:
        text += (f" One source run (seed {source.seeds[0]}): the verdicts on methods that read the scorer do not "
                 "cover source variance.")
    elif source.seeds:
        pairing = PAIRING_TEXT.get(source.pairing or "", source.pairing or "pairing not stated")
        text += (f" {len(source.seeds)} independent source runs (seeds {', '.join(map(str, source.seeds))}; "
                 f"{pairing}).")
    return text


def irp_curve_section(curve_frame: pd.DataFrame | None, files: Mapping[str, str],
                      runs: Sequence[SourceRun] = ()) -> list[str]:
    missing = [run for run in runs if not run.curve]
    if curve_frame is None or curve_frame.empty:
        where = ", ".join(run.where("curve") for run in runs) or "data/irp/curve.json"
        return [f"No IRP curve found ({where})."]
    parts = [markdown_table(irp_table(curve_frame))]
    if "irp_curve.png" in files:
        parts.append(f"![IRP accuracy vs density]({files['irp_curve.png']})")
    data = [f"[{files[n]}]({files[n]})" for n in ("irp_curve.csv", "irp_curve.svg") if n in files]
    if data:
        parts.append(f"Data and vector figure: {', '.join(data)}.")
    if missing:
        parts.append("No IRP curve for " + "; ".join(f"{run.name} ({run.where('curve')})" for run in missing) + ".")
    return parts


def _across(header: list[str], lines: Sequence[tuple[str, Sequence[float]]]) -> Table:
    """Rows per source, then their mean and sample std per column (4 decimals)."""
    body = [[name] + [f"{v:.4f}" for v in values] for name, values in lines]
    columns = list(zip(*(values for _, values in lines), strict=True))
    stats = [mean_std(list(c)) for c in columns]
    body.append(["mean"] + [f"{m:.4f}" for m, _ in stats])
    body.append(["sd"] + [MISSING if s != s else f"{s:.4f}" for _, s in stats])
    return Table(header, body)


def scorer_across_table(runs: Sequence[SourceRun]) -> Table | None:
    """The scorer's held-out metrics (Spearman, top-k overlaps, ...) per source run, with their mean and sd."""
    found = [(run, dict(run.scorer["scorer"])) for run in runs
             if run.scorer and isinstance(run.scorer.get("scorer"), Mapping)]
    names = list(dict.fromkeys(k for _, m in found for k, v in m.items() if isinstance(v, (int, float))))
    if not found or not names:
        return None
    lines = [(run.name, [float(m.get(k, float("nan"))) for k in names]) for run, m in found]
    return _across(["source run", *names], lines)


def scorer_section(runs: Sequence[SourceRun]) -> list[str]:
    if len(runs) <= 1:
        run = runs[0] if runs else SourceRun(None)
        table = scorer_table(run.scorer)
        if table is None:
            return [f"No scorer metrics found ({run.where('scorer')}); the scorer stage has not run."]
        parts = [markdown_table(table)]
        scalars = scorer_scalars(run.scorer)
        if scalars:
            parts.append(", ".join(f"{k} = {v:g}" for k, v in scalars.items()) + ".")
        return parts
    parts = []
    across = scorer_across_table(runs)
    if across is not None:
        parts += ["**Across source runs** (the scorer's held-out metrics; mean and sample sd over runs)",
                  markdown_table(across)]
    for run in runs:
        table = scorer_table(run.scorer)
        parts.append(f"**{run.name.capitalize()}**" if table is not None else
                     f"**{run.name.capitalize()}**: no scorer metrics found ({run.where('scorer')}).")
        if table is not None:
            parts.append(markdown_table(table))
    return parts


def _ticket_one(ticket: Mapping[str, Any], figure: str | None) -> list[str]:
    overlap = ticket["overlap"]
    parts = [
        f"At the ticket's density ({ticket['density'] * 100:.3g}% of the source's weights survived every IRP round), "
        f"AutoS's mask keeps {overlap['autos']:.1%} of the ticket, |w0|'s {overlap['abs_w0']:.1%} and a random "
        f"mask {overlap['random']:.1%}. Every source weight counts, including those the scorer was trained on; the "
        "held-out top-k overlaps below are the unbiased figure. Per layer (fraction kept):"
    ]
    body = [[row["layer"].removesuffix(".weight"), f"{row['weights']:,}"]
            + [f"{row[k]:.4f}" for k in ("irp_ticket", "autos", "abs_w0")] for row in ticket["layers"]]
    parts.append(markdown_table(Table(["layer", "weights", "IRP ticket", "AutoS", "|w0|"], body)))
    if figure:
        parts.append(f"![per-layer density on the source]({figure})")
    return parts


def ticket_figure_name(run: SourceRun, runs: Sequence[SourceRun]) -> str:
    """``source_ticket.png`` for the one run, ``source_ticket_<seed>.png`` for each of several."""
    return "source_ticket.png" if len(runs) <= 1 or run.seed is None else f"source_ticket_{run.seed}.png"


def ticket_section(runs: Sequence[SourceRun], files: Mapping[str, str]) -> str:
    """What the scorer keeps on the source next to the IRP ticket it learned from (``ticket_diagnostics``): the one
    run in full; several runs: the overlaps per run with their mean and sd, and each run's figure."""
    if len(runs) <= 1:
        run = runs[0] if runs else SourceRun(None)
        if not run.ticket:
            return (f"No source ticket diagnostics ({run.where('ticket')}): the scorer stage predates them, or no "
                    "weight survived every IRP round.")
        return "\n\n".join(_ticket_one(run.ticket, files.get(ticket_figure_name(run, runs))))
    found = [(run, run.ticket) for run in runs if run.ticket]
    parts = []
    if found:
        lines = [(run.name, [float(t["density"])] + [float(t["overlap"][k]) for k in ("autos", "abs_w0", "random")])
                 for run, t in found]
        parts += ["Share of each source run's IRP ticket (the weights that survived every round) that each mask keeps "
                  "at the ticket's density; every source weight counts, including those the scorer was trained on",
                  markdown_table(_across(["source run", "ticket density", "AutoS", "|w0|", "random"], lines))]
        parts += [f"![per-layer density on {run.name}]({files[name]})" for run, _ in found
                  if (name := ticket_figure_name(run, runs)) in files]
    missing = [run for run in runs if not run.ticket]
    if missing:
        parts.append("No source ticket diagnostics for " + "; ".join(f"{run.name} ({run.where('ticket')})"
                                                                    for run in missing) + ".")
    return "\n\n".join(parts)
