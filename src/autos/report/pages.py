"""The report's Markdown pages: the per-target page (``<target>.md``) and the summary (``summary.md``, which
opens with the study's source and its regime against published numbers, and holds every target's page, the
verdicts, the IRP curve, the source ticket and the
scorer), with the sentences that state a verdict. The tables themselves are :mod:`autos.report.tables`."""

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
from autos.report.compare import BETTER, CONFIDENCE, INDISTINGUISHABLE, NO_BASELINE, WORSE, Verdict, target_verdicts
from autos.report.names import MethodRecords, Source, method_name, target_title
from autos.report.tables import (
    ACHIEVED_MARK,
    COLLAPSE_MARK,
    Table,
    accuracy_table,
    achieved_notes,
    collapsed_runs,
    format_interval,
    format_mean,
    format_signed,
    format_sparsity,
    irp_table,
    markdown_table,
    oracle_table,
    paired_table,
    scorer_scalars,
    scorer_table,
    sparsity_table,
)

HOW_TO_READ = (
    "**How to read.** Every cell is the test accuracy (%) of one method at one requested sparsity, as mean ± "
    "sample std over seeds with the number of seeds (n=k); a cell from one seed shows its value and n=1, no std. "
    "*Paired differences* compare a method with AutoS seed by seed (the same seed is the same initialisation): "
    f"method − AutoS in percentage points, mean over the seeds both ran with a {CONFIDENCE:.0%} Student-t "
    "confidence interval (n − 1 degrees of freedom). A *verdict* compares AutoS with the best single-shot "
    "baseline (the pruning-at-initialisation method with the highest mean, no sanity-check modifier) at each "
    "sparsity: indistinguishable when the interval of AutoS − baseline contains 0, better or worse otherwise, and "
    "none from a single seed; choosing the best baseline by its mean slightly favours it. The *final-epoch* "
    "accuracy is the headline number (no early stopping on the test set); *best-epoch* accuracy is secondary "
    f"and shown below it. {COLLAPSE_MARK} marks a cell where at least one seed suffered layer collapse (a "
    "prunable layer kept no weight, or no input-output path is left), so the network is close to chance. "
    f"{ACHIEVED_MARK} marks a cell whose achieved sparsity differs from the requested one by more than "
    f"{ACHIEVED_TOLERANCE * 100:g} percentage point. *Effective sparsity* counts weights that lie on no "
    "input-output path as pruned too, so it is never below the nominal (achieved) sparsity. The dense row is "
    "the same initialisation trained with the same recipe and no mask; irp (when present) is iterative rewind "
    "pruning, the expensive upper reference that AutoS learns to imitate."
)


def settings_line(settings: Mapping[str, Any]) -> str:
    """``model=vgg16_bn, width=16, dataset=cifar10``: the scalar settings that are set, in their order."""
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None and not isinstance(v, (Mapping, list)))


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


_VERBS = {BETTER: "is better than", WORSE: "is worse than", INDISTINGUISHABLE: "is indistinguishable from"}


def verdict_sentence(verdict: Verdict, records: MethodRecords) -> str:
    """``vgg16_cifar10 at 98% sparsity: AutoS 44.4 ± 1.2 is worse than the best single-shot baseline SynFlow 48.2 ±
    0.9 (paired difference −3.8, 95% CI [−5.1, −2.5], n=3).`` (accuracies %, the difference AutoS − baseline in pp;
    the means over the paired seeds); with one seed it says plainly that no verdict is possible. ``records``: the
    method registry's records (the baseline's title)."""
    head = f"{verdict.target} at {format_sparsity(verdict.sparsity)} sparsity: "
    diff = verdict.diff
    if verdict.verdict == NO_BASELINE or verdict.baseline is None:
        autos = format_mean(verdict.autos_mean, verdict.autos_std, verdict.autos_n, show_n=False)
        return head + f"AutoS {autos}; no single-shot baseline ran at this sparsity, so there is no verdict."
    baseline = method_name(verdict.baseline, records)
    if diff is None:
        autos = format_mean(verdict.autos_mean, verdict.autos_std, verdict.autos_n)
        return (head + f"AutoS {autos} and the best single-shot baseline {baseline} share no seed, so no paired "
                "comparison and no verdict is possible.")
    autos = format_mean(diff.label_mean, diff.label_std, diff.n, show_n=False)
    other = format_mean(diff.reference_mean, diff.reference_std, diff.n, show_n=False)
    note = f" {COLLAPSE_MARK} layer collapse in at least one of these runs." if verdict.collapsed else ""
    if not diff.has_interval:
        return (head + f"AutoS {autos} vs the best single-shot baseline {baseline} {other}: paired difference "
                f"{format_signed(diff.mean)} from one seed only, so no verdict is possible (one seed)." + note)
    return (head + f"AutoS {autos} {_VERBS[verdict.verdict]} the best single-shot baseline {baseline} {other} "
            f"(paired difference {format_signed(diff.mean)}, {CONFIDENCE:.0%} CI "
            f"{format_interval(diff.ci_low, diff.ci_high)}, n={diff.n})." + note)


def verdict_lines(verdicts: Sequence[Verdict], records: MethodRecords) -> str:
    return "\n".join(f"- {verdict_sentence(v, records)}" for v in verdicts)


def _figure_line(alt: str, figures: Mapping[str, str], role: str) -> str | None:
    png, svg = figures.get(role), figures.get(f"{role}.svg")
    if not png:
        return None
    return f"![{alt}]({png})" + (f"\n\nVector version: [{svg}]({svg})." if svg else "")


def target_markdown(results: TargetResults, records: MethodRecords, heading: str = "#",
                    figures: Mapping[str, str] | None = None, verdicts: bool = True) -> str:
    """The per-target page: final-epoch table, footnotes, accuracy figure, paired differences to AutoS (and the
    verdicts, unless ``verdicts`` is False), best-epoch table, sparsity check, per-layer density figure.

    ``records``: the method registry's records (the verdicts' baselines and titles); ``figures`` maps roles to
    relative paths: ``accuracy``, ``layers``, ``sanity`` (PNG) and ``<role>.svg``."""
    target, rows = results.target, results.rows
    figs = dict(figures or {})
    title = target_title(target, results.spec)
    parts = [f"{heading} {target}" + (f" — {title}" if title != target else "")]
    if results.spec:
        parts.append(f"Target: {_spec_line(results)}.")
    if not rows:
        return "\n\n".join(parts + ["No runs recorded."]) + "\n"
    parts += ["**Final-epoch test accuracy (%)**", markdown_table(accuracy_table(rows, "final_test_acc"))]
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
    parts.append("\n".join(f"- {n}" for n in notes))
    figure = _figure_line(f"{target}: final-epoch accuracy vs sparsity", figs, "accuracy")
    if figure:
        parts += [figure, "Mean ± sample std over seeds (error bars; hollow markers: one seed, no error bar); x is "
                  "the density on a log scale, labelled with the sparsity; dashed: chance, grey band: dense ± std."]
    table = paired_table(rows)
    if table is not None:
        parts += ["**Paired difference to AutoS** (method − AutoS, percentage points, mean over the seeds both ran, "
                  f"{CONFIDENCE:.0%} t-interval)", markdown_table(table)]
        if verdicts:
            found = target_verdicts(results, records)
            if found:
                parts += ["**AutoS vs the best single-shot baseline**", verdict_lines(found, records)]
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


def verdicts_section(results: Mapping[str, TargetResults], records: MethodRecords, files: Mapping[str, str]) -> str:
    """Every target's verdicts (AutoS vs the best single-shot baseline), one line per target x sparsity."""
    lines = [verdict_lines(v, records) for target in results.values() if (v := target_verdicts(target, records))]
    if not lines:
        return "AutoS did not run on any target, so there is no paired comparison."
    links = [f"[{files[name]}]({files[name]})" for name in ("verdicts.json", "paired.csv") if name in files]
    intro = ("Final-epoch test accuracy (%), mean ± std over the paired seeds; paired difference = AutoS − baseline "
             f"in percentage points with its {CONFIDENCE:.0%} t-interval.")
    return "\n\n".join([intro, *lines] + (["Data: " + ", ".join(links) + "."] if links else []))


def ticket_section(ticket: Mapping[str, Any] | None, files: Mapping[str, str]) -> str:
    """What the scorer keeps on the source next to the IRP ticket it learned from (``ticket_diagnostics``)."""
    if not ticket:
        return ("No source ticket diagnostics (data/scorer/source_ticket.json): the scorer stage predates them, or no "
                "weight survived every IRP round.")
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
    if "source_ticket.png" in files:
        parts.append(f"![per-layer density on the source]({files['source_ticket.png']})")
    return "\n\n".join(parts)


def source_section(source: Source | None) -> str:
    """The summary's opening: which model and dataset IRP ran on and the AutoS scorer learned from, with the IRP
    settings, so that a swapped source shows."""
    if source is None:
        return "**Source.** Not given to the report: the source model is not stated (see `source` in params.yaml)."
    text = (f"**Source.** {source.title} ({settings_line(source.spec)}): IRP ran on this model and the AutoS scorer "
            "learned from its surviving weights; every target's AutoS masks come from that scorer.")
    irp = settings_line(source.irp)
    return text + (f" IRP: {irp}." if irp else "")


def irp_curve_section(curve_frame: pd.DataFrame | None, files: Mapping[str, str]) -> list[str]:
    if curve_frame is None or curve_frame.empty:
        return ["No IRP curve found (data/irp/curve.json)."]
    parts = [markdown_table(irp_table(curve_frame))]
    if "irp_curve.png" in files:
        parts.append(f"![IRP accuracy vs density]({files['irp_curve.png']})")
    data = [f"[{files[n]}]({files[n]})" for n in ("irp_curve.csv", "irp_curve.svg") if n in files]
    if data:
        parts.append(f"Data and vector figure: {', '.join(data)}.")
    return parts


def scorer_section(scorer: Mapping[str, Any] | None) -> list[str]:
    table = scorer_table(scorer)
    if table is None:
        return ["No scorer metrics found (metrics/scorer.json); the scorer stage has not run."]
    parts = [markdown_table(table)]
    scalars = scorer_scalars(scorer)
    if scalars:
        parts.append(", ".join(f"{k} = {v:g}" for k, v in scalars.items()) + ".")
    return parts


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
                     source: Source | None = None, calibration: Sequence[TargetCalibration] | None = None) -> str:
    """The report's front page, opening with the study's ``source``; ``files`` maps roles ('results',
    '<target>.md', ...) to relative paths; ``records``: the method registry's records (titles, baselines);
    ``calibration``: every target next to the published numbers (None: none were found), quoted before the
    verdicts."""
    parts = ["# AutoS study report", source_section(source), HOW_TO_READ]
    if "results" in files:
        parts.append(f"All runs, one line each: [{files['results']}]({files['results']}).")
    parts += ["## Calibration against published numbers", calibration_section(calibration, files)]
    if results:
        parts += ["## AutoS vs the best single-shot baseline", verdicts_section(results, records, files)]
    parts.append("## Transfer targets")
    if not results:
        parts.append("No transfer results found (data/transfer/*/results.json).")
    for target, found in results.items():
        body = target_markdown(found, records, heading="###", figures=target_figures(target, files), verdicts=False)
        links = [f"[{files[name]}]({files[name]})"
                 for name in (f"{target}.md", f"{target}.csv", f"{target}_cells.csv", f"{target}_layers.csv")
                 if name in files]
        parts.append(body.rstrip() + ("\n\nFiles: " + ", ".join(links) if links else ""))
    parts += ["## Source IRP curve", *irp_curve_section(curve_frame, files)]
    parts += ["## What the scorer keeps on the source, next to the IRP ticket", ticket_section(ticket, files)]
    parts += ["## Scorer vs trivial baselines (held-out weights)", *scorer_section(scorer)]
    return "\n\n".join(parts) + "\n"
