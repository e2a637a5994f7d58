"""Calibration against published numbers: does this study's regime match the published one?

At a reduced scale (narrow widths, few epochs, data subsets) the baselines need not rank as in the papers. Each
target is set next to published top-1 test accuracies of its model on its dataset, with one computed sentence on its
regime. **The published file** (``docs/reference/published_accuracies.csv``, read by the report stage): CSV with the
columns :data:`PUBLISHED_COLUMNS`, one row per (dataset, model, method, sparsity); ``method`` a registry name or
``dense`` (sparsity 0); ``sparsity`` a fraction; ``accuracy`` and ``std`` in **percent**, as the papers print them
(``std`` empty when not published); ``n`` the seeds (empty when not stated). Malformed: a DataError naming the line.

**Matching.** A target's results ``spec`` (model, dataset) selects the published rows. Each of our sparsities takes
the published sparsity equal to it, else the nearest one (in log density) whose density ``1 - sparsity`` is within
a factor :data:`DENSITY_TOLERANCE` of ours (98% ↔ 98.2%: densities 2% and 1.8%; 95% ↔ 94.4%; 99% and 98.2% are
one step of the published 10^0.25 compression grid apart, a factor 1.78, and do not match); the table says which
point was used. Ours: the mean over seeds of the unmodified method's final-epoch accuracy.

**Rank agreement.** Spearman's ρ (``scipy.stats.spearmanr``, ties averaged) between our method means and the
published ones over the pruning methods both have at that sparsity (dense left out); none with fewer than
:data:`MIN_RANK_METHODS` methods or a constant side. Over 5 methods ρ moves in steps of 0.1: it is coarse.

**Regime.** The dense accuracy is at the *published scale* unless more than :data:`DENSE_GAP` below the published
one (*reduced scale*); the baselines *rank as published* when ρ ≥ :data:`RANK_AGREEMENT` at every sparsity where it
is defined (the sentence quotes the lowest ρ). Accuracies: fractions here, percent in the tables and sentences,
``_pct`` / ``_pp`` in ``calibration.csv``."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autos.errors import DataError
from autos.report.aggregate import DENSE, Cell, TargetResults, cell_stats
from autos.report.names import model_title
from autos.report.tables import Table, format_cell, format_signed, format_sparsity, markdown_table

PUBLISHED_COLUMNS = ("dataset", "model", "method", "sparsity", "accuracy", "std", "n", "source", "notes")
DENSITY_TOLERANCE = 1.25  # our density / the published one (either way): 98% <-> 98.2%, 95% <-> 94.4%
MIN_RANK_METHODS = 3
RANK_AGREEMENT = 0.7
DENSE_GAP = 0.03  # 3 percentage points below the published dense accuracy: a reduced scale
CALIBRATION_MD, CALIBRATION_CSV = "calibration.md", "calibration.csv"
NO_PUBLISHED = "No published numbers found"
NOT_FOUND = f"{NO_PUBLISHED} (docs/reference/published_accuracies.csv): this study is not calibrated."
NO_RESULTS = "No transfer results to calibrate."
CALIBRATION_COLUMNS = ["target", "model", "dataset", "method", "sparsity", "published_sparsity", "n", "mean_pct",
                       "std_pct", "published_pct", "published_std_pct", "published_n", "diff_pp", "spearman_rho",
                       "spearman_methods", "source"]


@dataclass(frozen=True)
class PublishedPoint:
    """One published accuracy: fractions (the file's percent / 100); ``std`` nan and ``n`` None when unknown."""

    dataset: str
    model: str
    method: str
    sparsity: float
    accuracy: float
    std: float = math.nan
    n: int | None = None
    source: str = ""
    notes: str = ""


def _number(raw: Mapping[str, str], column: str, low: float, high: float, where: str) -> float:
    text = (raw.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {column} {text!r} is not a number") from None
    if not low <= value <= high:
        raise DataError(f"{where}: {column} {value:g} is outside [{low:g}, {high:g}]")
    return value


def _point(raw: Mapping[str, str], where: str) -> PublishedPoint:
    names = {c: (raw.get(c) or "").strip() for c in ("dataset", "model", "method", "source", "notes")}
    for column in ("dataset", "model", "method"):
        if not names[column]:
            raise DataError(f"{where}: {column} is empty")
    sparsity = _number(raw, "sparsity", 0.0, 1.0, where)
    if (names["method"] == DENSE) != (sparsity == 0.0):
        raise DataError(f"{where}: only the dense row has sparsity 0 (method {names['method']}, sparsity {sparsity:g})")
    std = _number(raw, "std", 0.0, 100.0, where) if (raw.get("std") or "").strip() else math.nan
    n = _number(raw, "n", 1, 1e6, where) if (raw.get("n") or "").strip() else None
    if n is not None and not n.is_integer():
        raise DataError(f"{where}: n {n:g} is not a whole number of seeds")
    return PublishedPoint(**names, sparsity=sparsity, accuracy=_number(raw, "accuracy", 0.0, 100.0, where) / 100.0,
                          std=std / 100.0, n=None if n is None else int(n))


def parse_published(text: str, where: str = "published accuracies") -> tuple[PublishedPoint, ...]:
    """The rows of a published-accuracies CSV (module docstring); DataError naming ``where`` and the line."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != PUBLISHED_COLUMNS:
        raise DataError(f"{where}, line 1: the header must be {','.join(PUBLISHED_COLUMNS)}")
    points: dict[tuple[str, str, str, float], PublishedPoint] = {}
    for raw in reader:
        line = f"{where}, line {reader.line_num}"
        if None in raw or any(value is None for value in raw.values()):
            raise DataError(f"{line}: expected {len(PUBLISHED_COLUMNS)} fields")
        point = _point(raw, line)
        key = (point.dataset, point.model, point.method, point.sparsity)
        if key in points:
            raise DataError(f"{line}: a second row for {point.dataset} / {point.model} / {point.method} at "
                            f"{format_sparsity(point.sparsity)}")
        points[key] = point
    return tuple(points.values())


def read_published(path: Path) -> tuple[PublishedPoint, ...]:
    """``parse_published`` of the file at ``path`` (DataError naming it when unreadable or malformed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the published accuracies ({exc})") from None
    return parse_published(text, str(path))


def match_sparsity(ours: float, published: Iterable[float], tolerance: float = DENSITY_TOLERANCE) -> float | None:
    """The published sparsity equal to ``ours``, else the nearest in log density within a factor ``tolerance`` of
    our density; None when none is that close (ties: the lower sparsity)."""
    candidates = sorted(set(published))
    exact = [s for s in candidates if math.isclose(s, ours, abs_tol=1e-9)]
    if exact:
        return exact[0]
    if not 0.0 < ours < 1.0:
        return None
    distances = [(abs(math.log((1.0 - ours) / (1.0 - s))), s) for s in candidates if 0.0 < s < 1.0]
    near = [(d, s) for d, s in distances if d <= math.log(tolerance) + 1e-12]
    return min(near)[1] if near else None


def spearman(ours: Sequence[float], published: Sequence[float]) -> float | None:
    """Spearman's ρ of two paired sequences; None with fewer than :data:`MIN_RANK_METHODS` pairs or a constant
    side (no ranking to compare)."""
    if len(ours) != len(published):
        raise ValueError("spearman: sequences of different lengths")
    if len(ours) < MIN_RANK_METHODS or len(set(ours)) < 2 or len(set(published)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(ours, published).statistic)
    return None if math.isnan(rho) else rho


@dataclass(frozen=True)
class CalibrationLine:
    """One method at one of our sparsities, next to the published point it was matched to."""

    method: str
    sparsity: float
    ours: Cell
    published: PublishedPoint

    @property
    def diff(self) -> float:
        """Ours − published (fraction; pp ×100)."""
        return self.ours.mean - self.published.accuracy


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's ρ between our means and the published ones over the methods both have at one sparsity."""

    sparsity: float
    published_sparsity: float
    methods: tuple[str, ...]
    rho: float | None
    n: int = 0  # len(methods)


@dataclass(frozen=True)
class TargetCalibration:
    """A target next to the published numbers of its model and dataset (``covered``: any exist)."""

    target: str
    model: str | None
    dataset: str | None
    width: Any = None  # the spec's width, named in the title when it is not the paper's
    covered: bool = False
    lines: tuple[CalibrationLine, ...] = ()
    ranks: tuple[RankAgreement, ...] = ()
    unpublished: tuple[str, ...] = ()  # our methods without a published counterpart
    setup: str = ""  # what sets this target's scale, as recorded (setup_line)

    @property
    def dense(self) -> CalibrationLine | None:
        return next((line for line in self.lines if line.method == DENSE), None)

    @property
    def title(self) -> str:
        if not self.model or not self.dataset:
            return self.target
        return model_title(self.model, self.width, self.dataset)


def _pruned_lines(cells: Mapping[tuple[str, float], Cell], index: Mapping[tuple[str, float], PublishedPoint],
                  sparsity: float) -> tuple[list[CalibrationLine], RankAgreement | None]:
    grid = {s for (m, s) in index if m != DENSE}
    point = match_sparsity(sparsity, grid)
    if point is None:
        return [], None
    lines = [CalibrationLine(label, sparsity, cell, index[(label, point)])
             for (label, s), cell in cells.items() if s == sparsity and (label, point) in index and cell.n > 0]
    rho = spearman([line.ours.mean for line in lines], [line.published.accuracy for line in lines])
    return lines, RankAgreement(sparsity, point, tuple(line.method for line in lines), rho, len(lines))


def setup_line(found: TargetResults) -> str:
    """``width 16, 4 epochs, 50 classes, 25000 train images``: what sets the target's scale, as its results record."""
    spec, data, recipe = found.spec or {}, found.dataset or {}, found.recipe or {}
    items = [("width {}", spec.get("width")), ("{} epochs", recipe.get("epochs") or spec.get("epochs")),
             ("{} classes", data.get("num_classes")), ("{} train images", data.get("train_images"))]
    return ", ".join(text.format(value) for text, value in items if value is not None)


def calibrate_target(found: TargetResults, published: Sequence[PublishedPoint]) -> TargetCalibration:
    """``found``'s unmodified methods next to the published points of its spec's model and dataset (module
    docstring): one line per matched (method, sparsity), one rank agreement per matched sparsity."""
    spec = found.spec or {}
    model, dataset = spec.get("model"), spec.get("dataset")
    base = TargetCalibration(found.target, str(model) if model else None, str(dataset) if dataset else None,
                             spec.get("width"))
    index = {(p.method, p.sparsity): p for p in published if p.model == base.model and p.dataset == base.dataset}
    if base.model is None or base.dataset is None or not index:
        return base
    cells = {key: cell for key, cell in cell_stats(found.rows).items() if "+" not in key[0]}
    lines: list[CalibrationLine] = []
    dense = cells.get((DENSE, 0.0))
    if dense is not None and dense.n > 0 and (DENSE, 0.0) in index:
        lines.append(CalibrationLine(DENSE, 0.0, dense, index[(DENSE, 0.0)]))
    ranks = []
    for sparsity in sorted({s for (label, s) in cells if label != DENSE}):
        matched, rank = _pruned_lines(cells, index, sparsity)
        lines += matched
        if rank is not None and rank.methods:
            ranks.append(rank)
    methods = {m for (m, _) in index}
    unpublished = tuple(dict.fromkeys(label for (label, _) in cells if label not in methods))
    return TargetCalibration(base.target, base.model, base.dataset, base.width, True, tuple(lines), tuple(ranks),
                             unpublished, setup_line(found))


def study_calibration(results: Mapping[str, TargetResults], published: Sequence[PublishedPoint]
                      ) -> list[TargetCalibration]:
    return [calibrate_target(found, published) for found in results.values()]


def _rank_phrase(rank: RankAgreement) -> str:
    where = format_sparsity(rank.sparsity)
    if not math.isclose(rank.published_sparsity, rank.sparsity, abs_tol=1e-9):
        where += f", published point {format_sparsity(rank.published_sparsity)}"
    return f"Spearman ρ = {rank.rho:.2f} over {rank.n} methods at {where}".replace("= -", "= \u2212")


_CONCLUSIONS = {
    ("reduced", False): "this study runs at a reduced scale where the baselines rank differently ({rank}); read its "
                        "comparisons as statements about this scale, not about the published regime",
    ("reduced", True): "this study runs at a reduced scale, yet the baselines rank as published ({rank}); its "
                       "orderings agree with the published regime, its accuracies do not",
    ("reduced", None): "this study runs at a reduced scale and shares too few methods with the published numbers to "
                       "compare rankings; read its comparisons as statements about this scale",
    ("published", False): "the dense network is at the published scale, but the baselines rank differently ({rank}); "
                          "its comparisons do not reproduce the published ones",
    ("published", True): "the dense network is at the published scale and the baselines rank as published ({rank}); "
                         "its comparisons speak to the published regime",
    ("published", None): "the dense network is at the published scale; too few methods in common to compare rankings",
    (None, False): "the baselines rank differently from the published ones ({rank}); read its comparisons as "
                   "statements about this study's scale, not about the published regime",
    (None, True): "the baselines rank as published ({rank})",
    (None, None): "too few methods in common to compare rankings",
}


def regime_sentence(cal: TargetCalibration) -> str:
    """One sentence on the target's regime, from its dense gap and its lowest ρ (module docstring)."""
    if cal.model is None or cal.dataset is None:
        return f"{cal.target} records no model and dataset, so it cannot be matched to published numbers."
    if not cal.covered:
        return f"No published numbers cover {cal.title}: this target's regime is not calibrated."
    if not cal.lines:
        return (f"The published numbers for {cal.title} match none of its runs (no dense run, no sparsity within the "
                "tolerance): its regime is not calibrated.")
    dense, scale = cal.dense, None
    if dense is not None:
        scale = "reduced" if dense.diff < -DENSE_GAP else "published"
        head = (f"Our dense {cal.title} reaches {dense.ours.mean * 100:.1f}% against "
                f"{dense.published.accuracy * 100:.1f}% published ({format_signed(dense.diff)} points)")
    else:
        head = f"{cal.title} has no dense run to set against the published one"
    defined = [r for r in cal.ranks if r.rho is not None]
    lowest = min(defined, key=lambda r: (r.rho, -r.sparsity)) if defined else None
    agree = None if lowest is None else bool(lowest.rho is not None and lowest.rho >= RANK_AGREEMENT)
    rank = _rank_phrase(lowest) if lowest is not None else ""
    return f"{head}: {_CONCLUSIONS[(scale, agree)].format(rank=rank)}."


def _published_cell(point: PublishedPoint) -> str:
    text = f"{point.accuracy * 100:.1f}"
    if not math.isnan(point.std):
        text += f" ± {point.std * 100:.1f}"
    return text + (f" (n={point.n})" if point.n else "")


def calibration_table(cal: TargetCalibration) -> Table:
    """One row per matched (method, sparsity): ours, the published point used and the difference (pp)."""
    body = [[line.method, format_sparsity(line.sparsity), format_cell(line.ours), _published_cell(line.published),
             format_sparsity(line.published.sparsity), format_signed(line.diff)] for line in cal.lines]
    return Table(["method", "sparsity", "ours (%)", "published (%)", "published at", "ours − published (pp)"], body)


def _pct(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * value, 4)


def calibration_frame(cals: Sequence[TargetCalibration]) -> pd.DataFrame:
    """``calibration.csv``: one line per matched (target, method, sparsity), percent / pp; the ρ of its sparsity."""
    records = []
    for cal in cals:
        ranks = {r.sparsity: r for r in cal.ranks}
        for line in cal.lines:
            rank = ranks.get(line.sparsity) if line.method != DENSE else None
            records.append({
                "target": cal.target, "model": cal.model, "dataset": cal.dataset, "method": line.method,
                "sparsity": line.sparsity, "published_sparsity": line.published.sparsity, "n": line.ours.n,
                "mean_pct": _pct(line.ours.mean), "std_pct": _pct(line.ours.std),
                "published_pct": _pct(line.published.accuracy), "published_std_pct": _pct(line.published.std),
                "published_n": line.published.n, "diff_pp": _pct(line.diff),
                "spearman_rho": None if rank is None or rank.rho is None else round(rank.rho, 6),
                "spearman_methods": None if rank is None else rank.n, "source": line.published.source})
    frame = pd.DataFrame(records, columns=CALIBRATION_COLUMNS)
    for column in ("published_n", "spearman_methods"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def _rank_lines(cal: TargetCalibration) -> list[str]:
    lines = []
    for rank in cal.ranks:
        if rank.rho is None:
            lines.append(f"- At {format_sparsity(rank.sparsity)}: no ρ ({rank.n} methods in common: "
                         f"{', '.join(rank.methods)}; at least {MIN_RANK_METHODS} and a ranking on both sides needed).")
        else:
            lines.append(f"- {_rank_phrase(rank)} ({', '.join(rank.methods)}).")
    return lines


def target_section(cal: TargetCalibration) -> str:
    """A target's calibration: the regime sentence, the table, the rank agreement, what has no published peer."""
    heading = f"## {cal.target}" + (f" — {cal.title}" if cal.title != cal.target else "")
    parts = [heading, f"**Regime.** {regime_sentence(cal)}"]
    if cal.setup:
        parts.append(f"Ours: {cal.setup}; the published recipe is in the published file's notes.")
    if cal.lines:
        parts += ["**Final-epoch test accuracy (%)**, ours (mean ± std over seeds) and published",
                  markdown_table(calibration_table(cal))]
        ranks = _rank_lines(cal)
        if ranks:
            parts += ["**Rank agreement** (Spearman, over the pruning methods both have; dense left out)",
                      "\n".join(ranks)]
        sources = sorted({line.published.source for line in cal.lines if line.published.source})
        if sources:
            parts.append("Published: " + "; ".join(sources) + ".")
    if cal.unpublished:
        parts.append("No published counterpart: " + ", ".join(cal.unpublished) + ".")
    return "\n\n".join(parts)


HOW_TO_READ_CALIBRATION = (
    "Each target is set next to published top-1 test accuracies of the same model on the same dataset "
    "(`docs/reference/published_accuracies.csv`), trained there at full scale (the published recipe is in the "
    "file's notes). Each of our sparsities uses the published sparsity equal to it or the nearest one whose density "
    f"is within a factor {DENSITY_TOLERANCE:g} of ours (*published at*). Spearman's ρ compares the order of the "
    "methods both have; over 5 methods it moves in steps of 0.1 and is coarse. The regime sentence calls the study "
    f"*reduced scale* when our dense accuracy is more than {DENSE_GAP * 100:g} points below the published one, and "
    f"says the baselines *rank as published* when ρ ≥ {RANK_AGREEMENT:g} at every sparsity (it quotes the lowest). "
    "The published Random is global Gaussian scores (about uniform per layer), matched to our `random`.")


def calibration_markdown(cals: Sequence[TargetCalibration] | None) -> str:
    """``calibration.md``; ``cals`` None: no published numbers were found."""
    parts = ["# Calibration against published numbers"]
    if cals is None:
        parts.append(NOT_FOUND)
    else:
        parts += [HOW_TO_READ_CALIBRATION, *[target_section(cal) for cal in cals]] if cals else [NO_RESULTS]
    return "\n\n".join(parts) + "\n"

