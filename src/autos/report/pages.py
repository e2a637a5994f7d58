"""The report's Markdown pages: the per-target page (``<target>.md``) and the summary (``summary.md``, which
opens with the study's source and its regime against published numbers, and holds the verdict table, every target's
page, the IRP curves, the source tickets and the scorer). The tables themselves are :mod:`autos.report.tables`, the
verdicts' wording :mod:`autos.report.verdict_text`, the source sections :mod:`autos.report.sources`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from autos.report.aggregate import ACHIEVED_TOLERANCE, TargetResults
from autos.report.calibration import (
    CALIBRATION_CSV,
    CALIBRATION_MD,
    NO_RESULTS,
    NOT_FOUND,
    TargetCalibration,
    regime_sentence,
)
from autos.report.controls import CONTROLS_NAME, controls_caption, controls_table, target_controls
from autos.report.names import MethodRecords, Source, method_name, settings_line, target_title
from autos.report.sources import SourceRun, irp_curve_section, scorer_section, source_section, ticket_section
from autos.report.stats import CONFIDENCE
from autos.report.tables import (
    ACHIEVED_MARK,
    COLLAPSE_MARK,
    accuracy_table,
    achieved_notes,
    collapsed_runs,
    markdown_table,
    oracle_table,
    paired_table,
    sparsity_table,
)
from autos.report.verdict_text import model_statement, verdict_lines, verdict_table
from autos.report.verdicts import Verdict, VerdictSettings, study_verdicts

HOW_TO_READ = (
    "**How to read.** Every cell is the test accuracy (%) of one method at one requested sparsity, as mean ± "
    "sample std over seeds with the number of seeds (n=k); a cell from one seed shows its value and n=1, no std. "
    "*Paired differences* compare a method with AutoS seed by seed (the same seed is the same initialisation): "
    f"method − AutoS in percentage points, mean over the seeds both ran with a {CONFIDENCE:.0%} Student-t "
    "confidence interval (n − 1 degrees of freedom). A *verdict* compares each method under test with the best "
    "single-shot baseline (the pruning-at-initialisation method with the highest mean, chosen on the validation "
    "split where one was held out, no sanity-check modifier) at each sparsity, with a paired t-test whose p-values "
    "are corrected across the whole verdict table: better or worse only when the corrected p is small enough, "
    "equivalent only when an equivalence test (TOST) puts the difference within the declared margin, otherwise no "
    "significant difference; none from a single seed (the model: *Statistical model* below). The *final-epoch* "
    "accuracy is the headline number (no early stopping on the test set); *best-epoch* accuracy is secondary "
    f"and shown below it. {COLLAPSE_MARK} marks a cell where at least one seed suffered layer collapse (a "
    "prunable layer kept no weight, or no input-output path is left), so the network is close to chance. "
    f"{ACHIEVED_MARK} marks a cell whose achieved sparsity differs from the requested one by more than "
    f"{ACHIEVED_TOLERANCE * 100:g} percentage point. *Effective sparsity* counts weights that lie on no "
    "input-output path as pruned too, so it is never below the nominal (achieved) sparsity. The dense row is "
    "the same initialisation trained with the same recipe and no mask; irp (when present) is iterative rewind "
    "pruning, the expensive upper reference that AutoS learns to imitate."
)


def _spec_line(results: TargetResults) -> str:
    line = settings_line(results.spec or {})
    data = results.dataset
    if data:
        line += (f" ({data['train_images']} train / {data['test_images']} test images, {data['num_classes']} classes,"
                 f" {data['image_size']}x{data['image_size']})")
    recipe = results.recipe
    if recipe:
        line += (f"; every run trained {recipe['epochs']} epochs with the shared recipe ({recipe['schedule']}, "
                 f"lr {recipe['lr']})")
    return line


def _figure_line(alt: str, figures: Mapping[str, str], role: str) -> str | None:
    png, svg = figures.get(role), figures.get(f"{role}.svg")
    if not png:
        return None
    return f"![{alt}]({png})" + (f"\n\nVector version: [{svg}]({svg})." if svg else "")


def _verdict_parts(results: TargetResults, records: MethodRecords, verdicts: bool | Sequence[Verdict],
                   settings: VerdictSettings | None) -> list[str]:
    """The target's verdict sentences: ``verdicts`` True: judged as a table of their own (this target only);
    a sequence: the study's (those of this target are shown); False: none."""
    if verdicts is False:
        return []
    if verdicts is True:
        found = study_verdicts({results.target: results}, records, settings)
    else:
        found = [v for v in verdicts if v.target == results.target]
    if not found:
        return []
    methods = ", ".join(dict.fromkeys(method_name(v.method, records) for v in found))
    return [f"**{methods} vs the best single-shot baseline**", verdict_lines(found, records)]


def _notes(results: TargetResults) -> str:
    rows = results.rows
    notes = []
    if any(r.is_collapsed for r in rows):
        notes.append(f"{COLLAPSE_MARK} layer collapse in at least one seed of this cell: "
                     + "; ".join(collapsed_runs(rows)) + ".")
    off = achieved_notes(rows)
    if off:
        notes.append(f"{ACHIEVED_MARK} achieved sparsity differs from the requested one by more than "
                     f"{ACHIEVED_TOLERANCE * 100:g} pp: " + "; ".join(off) + ".")
    seeds = sorted({r.seed for r in rows}, key=str)
    notes.append(f"Mean ± sample std over seeds ({', '.join(map(str, seeds))}); a cell from one seed shows its value "
                 "and n=1 (no std).")
    sources = sorted({r.source for r in rows if r.source is not None})
    if sources:
        notes.append(f"Methods that read the AutoS scorer ran once per source run ({', '.join(map(str, sources))}) "
                     "and seed: their cells pool every run.")
    return "\n".join(f"- {n}" for n in notes)


def _comparison_parts(results: TargetResults, records: MethodRecords, verdicts: bool | Sequence[Verdict],
                      settings: VerdictSettings | None) -> list[str]:
    """Paired differences to AutoS with the verdicts, then the exploratory controls."""
    parts = []
    table = paired_table(results.rows)
    if table is not None:
        sourced = any(r.source is not None for r in results.rows)
        parts += ["**Paired difference to AutoS** (method − AutoS, percentage points, mean over the seeds both ran, "
                  f"{CONFIDENCE:.0%} t-interval" + ("; a method that read several source models counts as its mean "
                                                    "over them at each seed" if sourced else "") + ")",
                  markdown_table(table)]
    parts += _verdict_parts(results, records, verdicts, settings)
    confidence = settings.confidence if settings is not None else CONFIDENCE
    controls = controls_table(target_controls(results, records, confidence))
    if controls is not None:
        parts += [controls_caption(confidence), markdown_table(controls)]
    return parts


def target_markdown(results: TargetResults, records: MethodRecords, heading: str = "#",
                    figures: Mapping[str, str] | None = None, verdicts: bool | Sequence[Verdict] = True,
                    settings: VerdictSettings | None = None) -> str:
    """The per-target page: final-epoch table, footnotes, accuracy figure, paired differences to AutoS, the
    verdicts, the exploratory controls, best-epoch table, sparsity check, per-layer density figure.

    ``records``: the method registry's records (baselines, variants, titles); ``verdicts``: the study's verdicts
    (their correction spans every target), True to judge this target alone, False for none; ``settings``: the
    ``report`` section (under test, confidence, correction, margin); ``figures`` maps roles to relative paths:
    ``accuracy``, ``layers``, ``sanity`` (PNG) and ``<role>.svg``."""
    target, rows = results.target, results.rows
    figs = dict(figures or {})
    title = target_title(target, results.spec)
    parts = [f"{heading} {target}" + (f" — {title}" if title != target else "")]
    if results.spec:
        parts.append(f"Target: {_spec_line(results)}.")
    if not rows:
        return "\n\n".join(parts + ["No runs recorded."]) + "\n"
    parts += ["**Final-epoch test accuracy (%)**", markdown_table(accuracy_table(rows, "final_test_acc")),
              _notes(results)]
    figure = _figure_line(f"{target}: final-epoch accuracy vs sparsity", figs, "accuracy")
    if figure:
        parts += [figure, "Mean ± sample std over seeds (error bars; hollow markers: one seed, no error bar); x is "
                  "the density on a log scale, labelled with the sparsity; dashed: chance, grey band: dense ± std."]
    parts += _comparison_parts(results, records, verdicts, settings)
    figure = _figure_line(f"{target}: modifier sanity checks", figs, "sanity")
    if figure:
        parts += ["**Sanity checks** (each method's mask shuffled / re-initialised / inverted)", figure]
    parts += ["**Best-epoch test accuracy (%)** (secondary)", markdown_table(accuracy_table(rows, "best_test_acc"))]
    check = sparsity_table(rows)
    if check is not None:
        parts += ["**Achieved / effective sparsity (%)**, mean over seeds", markdown_table(check)]
    figure = _figure_line(f"{target}: per-layer density", figs, "layers")
    if figure:
        parts += ["**Per-layer density** at the highest sparsity (layers in network order, mean over seeds): does "
                  "AutoS spread the kept weights like IRP, ERK, SNIP or SynFlow?", figure]
    table = oracle_table(results.oracle_overlap)
    if table is not None:
        parts += ["**Overlap with IRP run on this target** (the oracle): the share of IRP's ticket that each mask "
                  "keeps at the same sparsity and seed, mean ± std over seeds; chance is the density",
                  markdown_table(table)]
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- summary


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(markdown: str) -> list[str]:
    """Targets of Markdown links/images that are relative paths (no scheme, no anchor-only)."""
    return [t for t in _LINK.findall(markdown) if "://" not in t and not t.startswith("#")]


def target_figures(target: str, files: Mapping[str, str]) -> dict[str, str]:
    """The figure roles of ``target_markdown`` from the report's ``files`` ({'<target>.png': path, ...})."""
    roles = {"accuracy": f"{target}.png", "accuracy.svg": f"{target}.svg",
             "layers": f"{target}_layers.png", "layers.svg": f"{target}_layers.svg",
             "sanity": f"{target}_sanity.png", "sanity.svg": f"{target}_sanity.svg"}
    return {role: files[name] for role, name in roles.items() if name in files}


def verdicts_section(verdicts: Sequence[Verdict], records: MethodRecords, files: Mapping[str, str],
                     settings: VerdictSettings) -> str:
    """The study's verdict table (every method under test vs the best single-shot baseline, per target x sparsity),
    the statistical model, one sentence per verdict, and the data files."""
    if not verdicts:
        return (f"No method under test ({', '.join(settings.under_test)}) ran on any target, so there is no "
                "verdict.")
    tested = sum(1 for v in verdicts if v.estimate is not None and v.estimate.has_interval)
    links = [f"[{files[name]}]({files[name]})" for name in ("verdicts.json", "paired.csv", CONTROLS_NAME)
             if name in files]
    intro = ("Final-epoch test accuracy (%), mean ± std over the paired runs; paired difference = method − baseline "
             "in percentage points.")
    return "\n\n".join([model_statement(settings, tested), intro, markdown_table(verdict_table(verdicts, records)),
                         verdict_lines(verdicts, records)] + (["Data: " + ", ".join(links) + "."] if links else []))


def calibration_section(calibration: Sequence[TargetCalibration] | None, files: Mapping[str, str]) -> str:
    """Each target's regime sentence (against published numbers), quoted, with links to ``calibration.md`` and
    ``calibration.csv``; ``calibration`` None: no published numbers were found."""
    if not calibration:
        parts = [NOT_FOUND if calibration is None else NO_RESULTS]
    else:
        parts = ["\n>\n".join(f"> **{cal.target}.** {regime_sentence(cal)}" for cal in calibration)]
    links = [f"[{files[name]}]({files[name]})" for name in (CALIBRATION_MD, CALIBRATION_CSV) if name in files]
    if links:
        parts.append("Tables and rank agreement: " + ", ".join(links) + ".")
    return "\n\n".join(parts)


def summary_markdown(results: Mapping[str, TargetResults], curve_frame: pd.DataFrame | None,
                     scorer: Mapping[str, Any] | None, files: Mapping[str, str],
                     ticket: Mapping[str, Any] | None = None, *, records: MethodRecords,
                     source: Source | None = None, calibration: Sequence[TargetCalibration] | None = None,
                     settings: VerdictSettings | None = None, verdicts: Sequence[Verdict] | None = None,
                     source_runs: Sequence[SourceRun] | None = None) -> str:
    """The report's front page, opening with the study's ``source``; ``files`` maps roles ('results',
    '<target>.md', ...) to relative paths; ``records``: the method registry's records (titles, baselines, variants);
    ``calibration``: every target next to the published numbers (None: none were found), quoted before the
    verdicts; ``settings``: the ``report`` section; ``verdicts``: the study's (computed here when None);
    ``source_runs``: every source run (else the one given by ``scorer`` and ``ticket``)."""
    settings = settings or VerdictSettings()
    verdicts = study_verdicts(results, records, settings) if verdicts is None else verdicts
    runs = list(source_runs) if source_runs is not None else [SourceRun(None, None, scorer, ticket)]
    parts = ["# AutoS study report", source_section(source), HOW_TO_READ]
    if "results" in files:
        parts.append(f"All runs, one line each: [{files['results']}]({files['results']}).")
    parts += ["## Calibration against published numbers", calibration_section(calibration, files)]
    if results:
        tested = ", ".join(method_name(m, records) for m in settings.under_test)
        parts += [f"## {tested} vs the best single-shot baseline", verdicts_section(verdicts, records, files, settings)]
    parts.append("## Transfer targets")
    if not results:
        parts.append("No transfer results found (data/transfer/*/results.json).")
    for target, found in results.items():
        body = target_markdown(found, records, heading="###", figures=target_figures(target, files), verdicts=False,
                               settings=settings)
        links = [f"[{files[name]}]({files[name]})"
                 for name in (f"{target}.md", f"{target}.csv", f"{target}_cells.csv", f"{target}_layers.csv")
                 if name in files]
        parts.append(body.rstrip() + ("\n\nFiles: " + ", ".join(links) if links else ""))
    parts += ["## Source IRP curve" + ("s" if len(runs) > 1 else ""), *irp_curve_section(curve_frame, files, runs)]
    parts += ["## What the scorer keeps on the source, next to the IRP ticket", ticket_section(runs, files)]
    parts += ["## Scorer vs trivial baselines (held-out weights)", *scorer_section(runs)]
    return "\n\n".join(parts) + "\n"
