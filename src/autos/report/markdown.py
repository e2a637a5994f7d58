"""The report's text: formatted cells and tables (Markdown, and the rows of their CSV twins), the paired
differences to AutoS and the verdicts, the per-target pages and the summary page.

Accuracies are percent with one decimal, ``mean ± std (n=k)`` over seeds (sample std, ddof=1); one seed shows its
value and ``(n=1)``, never a ``± 0``. Differences are percentage points (pp) with a sign (``+1.2``, ``−3.8``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from autos.report.aggregate import (
    ACHIEVED_TOLERANCE,
    DENSE,
    Cell,
    _float,
    achieved_differs,
    cell_stats,
    is_collapsed,
    label_order,
    pruned_sparsities,
    run_label,
)
from autos.report.compare import (
    BETTER,
    CONFIDENCE,
    INDISTINGUISHABLE,
    NO_BASELINE,
    REFERENCE,
    WORSE,
    PairedDiff,
    Verdict,
    mean_std,
    paired_differences,
    target_verdicts,
)
from autos.report.names import method_name, target_title

COLLAPSE_MARK = "†"
ACHIEVED_MARK = "‡"
MISSING = "—"

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


# --------------------------------------------------------------------------- cells and per-target tables


def format_mean(mean: float, std: float, n: int, show_n: bool = True) -> str:
    """``91.2 ± 0.5 (n=2)`` (fractions in, percent out); one value: ``91.2 (n=1)``, never a ``± 0``."""
    text = f"{mean * 100:.1f}"
    if n >= 2 and not math.isnan(std):
        text += f" ± {std * 100:.1f}"
    if show_n or n < 2:
        text += f" (n={n})"
    return text


def format_signed(value: float) -> str:
    """A difference in percentage points, one decimal, with its sign: ``+1.2``, ``−3.8`` (a true minus sign)."""
    return f"{value * 100:+.1f}".replace("-", "\u2212")


def format_interval(low: float, high: float) -> str:
    return "[" + ", ".join(f"{v * 100:.1f}".replace("-", "\u2212") for v in (low, high)) + "]"


def format_cell(cell: Cell | None, requested: float | None = None) -> str:
    """``91.2 ± 0.5 (n=2)`` (percent), with collapse / achieved-sparsity markers; ``—`` when no run."""
    if cell is None or cell.n == 0:
        return MISSING
    text = format_mean(cell.mean, cell.std, cell.n)
    if cell.collapsed:
        text += f" {COLLAPSE_MARK}"
    if requested is not None and achieved_differs(cell, requested):
        text += f" {ACHIEVED_MARK}"
    return text


def format_sparsity(sparsity: float) -> str:
    return f"{sparsity * 100:.4g}%"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def accuracy_table(rows: Sequence[Mapping[str, Any]], metric: str = "final_test_acc") -> Table:
    """Rows = method(+modifier), columns = dense then each requested sparsity; cells from :func:`format_cell`."""
    cells = cell_stats(rows, metric)
    sparsities = pruned_sparsities(rows)
    has_dense = any(r["method"] == DENSE for r in rows)
    header = ["method"] + (["dense (0%)"] if has_dense else []) + [format_sparsity(s) for s in sparsities]
    body: list[list[str]] = []
    for label in label_order(rows):
        line = [label]
        if has_dense:
            line.append(format_cell(cells.get((label, 0.0))) if label == DENSE else MISSING)
        for s in sparsities:
            line.append(MISSING if label == DENSE else format_cell(cells.get((label, s)), s))
        body.append(line)
    return Table(header, body)


def sparsity_table(rows: Sequence[Mapping[str, Any]]) -> Table | None:
    """Achieved / effective sparsity (%) per cell, mean over seeds; None when no pruned row records them."""
    pruned = [r for r in rows if r["method"] != DENSE]
    if not any("achieved_sparsity" in r or "effective_sparsity" in r for r in pruned):
        return None
    cells = cell_stats(pruned)
    sparsities = pruned_sparsities(pruned)
    body = []
    for label in label_order(pruned):
        line = [label]
        for s in sparsities:
            cell = cells.get((label, s))
            if cell is None:
                line.append(MISSING)
                continue
            parts = [f"{v * 100:.2f}" if not math.isnan(v) else MISSING
                     for v in (cell.achieved_sparsity, cell.effective_sparsity)]
            line.append(" / ".join(parts))
        body.append(line)
    return Table(["method"] + [format_sparsity(s) for s in sparsities], body)


def markdown_table(table: Table) -> str:
    """GitHub-flavoured Markdown; first column left-aligned, the others right-aligned."""
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = [":---"] + ["---:"] * (len(table.header) - 1)
    return "\n".join([line(table.header), line(align), *(line(r) for r in table.rows)])


def achieved_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One note per cell whose achieved sparsity is off the requested one by more than the tolerance."""
    notes = []
    for (label, requested), cell in sorted(cell_stats(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if label != DENSE and achieved_differs(cell, requested):
            notes.append(f"{label} @ {format_sparsity(requested)}: achieved {cell.achieved_sparsity * 100:.2f}%")
    return notes


def collapsed_runs(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return [f"{run_label(r)} @ {format_sparsity(float(r['sparsity']))} seed {r.get('seed')}"
            + (f" (empty: {', '.join(map(str, r['empty_layers']))})" if r.get("empty_layers") else "")
            for r in rows if is_collapsed(r)]


def _spec_line(payload: Mapping[str, Any]) -> str:
    spec = payload["spec"]
    line = ", ".join(f"{k}={v}" for k, v in spec.items() if v is not None and not isinstance(v, (Mapping, list)))
    data = payload.get("dataset")
    if data:
        line += (f" ({data['train_images']} train / {data['test_images']} test images, {data['num_classes']} classes,"
                 f" {data['image_size']}x{data['image_size']})")
    recipe = payload.get("recipe")
    if recipe:
        line += (f"; every run trained {recipe['epochs']} epochs with the shared recipe ({recipe['schedule']}, "
                 f"lr {recipe['lr']})")
    return line


def paired_table(rows: Sequence[Mapping[str, Any]], reference: str = REFERENCE) -> Table | None:
    """Rows = every pruned label but AutoS, columns = sparsities; cells ``−3.8 [−5.1, −2.5] (n=3)``: method − AutoS
    in pp over the paired seeds, with the 95% t-interval (none from one seed). None when AutoS did not run."""
    diffs = paired_differences(rows, reference)
    if not diffs:
        return None
    by_key = {(d.label, d.sparsity): d for d in diffs}
    sparsities = pruned_sparsities(rows)
    labels = [label for label in label_order(rows) if any((label, s) in by_key for s in sparsities)]
    body = [[label] + [format_paired(by_key.get((label, s))) for s in sparsities] for label in labels]
    return Table(["method"] + [format_sparsity(s) for s in sparsities], body)


def format_paired(diff: PairedDiff | None) -> str:
    if diff is None:
        return MISSING
    if not diff.has_interval:
        return f"{format_signed(diff.mean)} (n={diff.n})"
    return f"{format_signed(diff.mean)} {format_interval(diff.ci_low, diff.ci_high)} (n={diff.n})"


_VERBS = {BETTER: "is better than", WORSE: "is worse than", INDISTINGUISHABLE: "is indistinguishable from"}


def verdict_sentence(verdict: Verdict) -> str:
    """``vgg16_cifar10 at 98% sparsity: AutoS 44.4 ± 1.2 is worse than the best single-shot baseline SynFlow 48.2 ±
    0.9 (paired difference −3.8, 95% CI [−5.1, −2.5], n=3).`` (accuracies %, the difference AutoS − baseline in pp;
    the means over the paired seeds); with one seed it says plainly that no verdict is possible."""
    head = f"{verdict.target} at {format_sparsity(verdict.sparsity)} sparsity: "
    diff = verdict.diff
    if verdict.verdict == NO_BASELINE or verdict.baseline is None:
        autos = format_mean(verdict.autos_mean, verdict.autos_std, verdict.autos_n, show_n=False)
        return head + f"AutoS {autos}; no single-shot baseline ran at this sparsity, so there is no verdict."
    baseline = method_name(verdict.baseline)
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


def verdict_lines(verdicts: Sequence[Verdict]) -> str:
    return "\n".join(f"- {verdict_sentence(v)}" for v in verdicts)


def _figure_line(alt: str, figures: Mapping[str, str], role: str) -> str | None:
    png, svg = figures.get(role), figures.get(f"{role}.svg")
    if not png:
        return None
    return f"![{alt}]({png})" + (f"\n\nVector version: [{svg}]({svg})." if svg else "")


def target_markdown(target: str, payload: Mapping[str, Any], heading: str = "#",
                    png: str | None = None, figures: Mapping[str, str] | None = None,
                    verdicts: bool = True) -> str:
    """The per-target page: final-epoch table, footnotes, accuracy figure, paired differences to AutoS (and the
    verdicts, unless ``verdicts`` is False), best-epoch table, sparsity check, per-layer density figure.

    ``figures`` maps roles to relative paths: ``accuracy``, ``layers``, ``sanity`` (PNG) and ``<role>.svg``;
    ``png`` is the accuracy PNG (kept for callers that pass only it)."""
    rows = list(payload.get("rows", []))
    figs = dict(figures or {})
    if png:
        figs.setdefault("accuracy", png)
    title = target_title(target, payload)
    parts = [f"{heading} {target}" + (f" — {title}" if title != target else "")]
    if payload.get("spec"):
        parts.append(f"Target: {_spec_line(payload)}.")
    if not rows:
        return "\n\n".join(parts + ["No runs recorded."]) + "\n"
    parts += ["**Final-epoch test accuracy (%)**", markdown_table(accuracy_table(rows, "final_test_acc"))]
    notes = []
    if any(is_collapsed(r) for r in rows):
        notes.append(f"{COLLAPSE_MARK} layer collapse in at least one seed of this cell: "
                     + "; ".join(collapsed_runs(rows)) + ".")
    off = achieved_notes(rows)
    if off:
        notes.append(f"{ACHIEVED_MARK} achieved sparsity differs from the requested one by more than "
                     f"{ACHIEVED_TOLERANCE * 100:g} pp: " + "; ".join(off) + ".")
    seeds = sorted({r.get("seed") for r in rows}, key=str)
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
            found = target_verdicts(target, payload)
            if found:
                parts += ["**AutoS vs the best single-shot baseline**", verdict_lines(found)]
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
    table = oracle_table(payload.get("oracle_overlap") or [])
    if table is not None:
        parts += ["**Overlap with IRP run on this target** (the oracle): the share of IRP's ticket that each mask "
                  "keeps at the same sparsity and seed, mean ± std over seeds; chance is the density",
                  markdown_table(table)]
    return "\n\n".join(parts) + "\n"


def oracle_table(records: Sequence[Mapping[str, Any]]) -> Table | None:
    """Method x sparsity rows of ``autos.sweep.oracle.oracle_overlaps`` records, averaged over seeds (in %)."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((str(record["method"]), float(record["sparsity"])), []).append(record)
    if not groups:
        return None
    body = []
    for (method, sparsity), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] != REFERENCE)):
        mean, std = mean_std([float(r["overlap"]) for r in group])
        body.append([method, format_sparsity(sparsity), format_mean(mean, std, len(group)),
                     f"{100.0 * float(group[0]['chance']):.3g}"])
    return Table(["method", "sparsity", "keeps of IRP's ticket (%)", "chance (%)"], body)


def table_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame(table.rows, columns=table.header)


# --------------------------------------------------------------------------- IRP curve table


def irp_table(frame: pd.DataFrame) -> Table:
    columns = [("round", "round", "{:d}"), ("requested_density", "requested density", "{:.4f}"),
               ("density", "density", "{:.4f}"), ("min_layer_density", "min layer density", "{:.4f}"),
               ("final_test_acc", "final acc (%)", "pct"), ("best_test_acc", "best acc (%)", "pct"),
               ("train_seconds", "train s", "{:.0f}")]
    present = [c for c in columns if c[0] in frame.columns]
    body = []
    for _, r in frame.iterrows():
        body.append([_fmt(r[key], fmt) for key, _, fmt in present])
    return Table([title for _, title, _ in present], body)


def _fmt(value: Any, fmt: str) -> str:
    number = _float(value)
    if math.isnan(number):
        return MISSING
    if fmt == "pct":
        return f"{number * 100:.1f}"
    if fmt == "{:d}":
        return str(int(number))
    return fmt.format(number)


# --------------------------------------------------------------------------- scorer vs baselines


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_columns(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, float]]:
    """Every nested dict holding numbers -> {column name: {metric: value}}; ``baselines.`` is dropped."""
    columns: dict[str, dict[str, float]] = {}
    numbers = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    if numbers and prefix:
        columns[prefix] = numbers
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            name = key if prefix in ("", "baselines") else f"{prefix}.{key}"
            columns.update(metric_columns(value, name))
    return columns


def scorer_table(metrics: Mapping[str, Any] | None) -> Table | None:
    """Metric rows x (scorer, baselines...) columns, from whatever nested numeric dicts are present."""
    if not metrics:
        return None
    columns = metric_columns(metrics)
    if not columns:
        return None
    names = list(columns)
    rows = list(dict.fromkeys(m for col in columns.values() for m in col))
    body = [[m] + [_fmt(columns[n].get(m), "{:.4f}") for n in names] for m in rows]
    return Table(["metric"] + names, body)


def scorer_scalars(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if _is_number(v)}


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


def verdicts_section(results: Mapping[str, Mapping[str, Any]], files: Mapping[str, str]) -> str:
    """Every target's verdicts (AutoS vs the best single-shot baseline), one line per target x sparsity."""
    lines = [verdict_lines(v) for target, payload in results.items() if (v := target_verdicts(target, payload))]
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


def summary_markdown(results: Mapping[str, Mapping[str, Any]], curve_frame: pd.DataFrame | None,
                     scorer: Mapping[str, Any] | None, files: Mapping[str, str],
                     ticket: Mapping[str, Any] | None = None) -> str:
    """The report's front page; ``files`` maps roles ('results', '<target>.md', ...) to relative paths."""
    parts = ["# AutoS study report", HOW_TO_READ]
    if "results" in files:
        parts.append(f"All runs, one line each: [{files['results']}]({files['results']}).")
    if results:
        parts += ["## AutoS vs the best single-shot baseline", verdicts_section(results, files)]
    parts.append("## Transfer targets")
    if not results:
        parts.append("No transfer results found (data/transfer/*/results.json).")
    for target, payload in results.items():
        body = target_markdown(target, payload, heading="###", figures=target_figures(target, files), verdicts=False)
        links = [f"[{files[name]}]({files[name]})"
                 for name in (f"{target}.md", f"{target}.csv", f"{target}_cells.csv", f"{target}_layers.csv")
                 if name in files]
        parts.append(body.rstrip() + ("\n\nFiles: " + ", ".join(links) if links else ""))
    parts.append("## Source IRP curve")
    if curve_frame is None or curve_frame.empty:
        parts.append("No IRP curve found (data/irp/curve.json).")
    else:
        parts.append(markdown_table(irp_table(curve_frame)))
        if "irp_curve.png" in files:
            parts.append(f"![IRP accuracy vs density]({files['irp_curve.png']})")
        data = [f"[{files[n]}]({files[n]})" for n in ("irp_curve.csv", "irp_curve.svg") if n in files]
        if data:
            parts.append(f"Data and vector figure: {', '.join(data)}.")
    parts += ["## What the scorer keeps on the source, next to the IRP ticket", ticket_section(ticket, files)]
    parts.append("## Scorer vs trivial baselines (held-out weights)")
    table = scorer_table(scorer)
    if table is None:
        parts.append("No scorer metrics found (metrics/scorer.json); the scorer stage has not run.")
    else:
        parts.append(markdown_table(table))
        scalars = scorer_scalars(scorer)
        if scalars:
            parts.append(", ".join(f"{k} = {v:g}" for k, v in scalars.items()) + ".")
    return "\n\n".join(parts) + "\n"
