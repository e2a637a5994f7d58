"""How well a trained scorer ranks the source's weights: the held-out metrics next to trivial scorers, what it
learns beyond |w0| (residual label), and how much of the source's IRP ticket its mask keeps.

``assess_scorer`` is the train_scorer stage's analysis as one library call, testable on a synthetic table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from autos.config import ScorerConfig
from autos.scorer.fit import FitResult, input_matrix
from autos.scorer.labels import SourceLabel
from autos.scorer.predict import predict


@dataclass(frozen=True)
class Assessment:
    metrics: dict[str, Any]  # metrics/scorer_<source>.json (no wall-clock figures)
    headline: dict[str, float]  # the scorer's own held-out metrics (MLflow's heldout/*)
    baselines: dict[str, dict[str, float]]  # trivial scorers on the same rows (MLflow's baseline/<name>/*)
    eval_rows: np.ndarray  # the held-out rows the metrics were computed on (split.npz)
    ticket: dict[str, Any] | None  # the source ticket against the scorer's and |w0|'s masks, per layer


def eval_rows(fit: FitResult, own_rows: int, cfg: ScorerConfig) -> np.ndarray:
    """The held-out rows of this study's own table (pooled rows come after it), at most ``max_eval_rows`` of them
    (a seeded subset: the paper scorer is slow)."""
    holdout = fit.holdout_idx[fit.holdout_idx < own_rows]
    if cfg.max_eval_rows is not None and len(holdout) > cfg.max_eval_rows:
        rng = np.random.default_rng(cfg.seed)
        holdout = np.sort(rng.choice(holdout, cfg.max_eval_rows, replace=False))
    return holdout


def layer_names(table: pa.Table) -> list[str]:
    """The layer name of each ``layer_idx`` (the table's ``layer`` column)."""
    layer_idx = table.column("layer_idx").to_numpy()
    indices, first_rows = np.unique(layer_idx, return_index=True)
    names = [""] * (int(indices.max()) + 1)
    for i, name in zip(indices, table.column("layer").take(first_rows).to_pylist(), strict=True):
        names[int(i)] = str(name)
    return names


def assess_scorer(table: pa.Table, fit: FitResult, label: SourceLabel, cfg: ScorerConfig, num_rounds: int, *,
                  pooled_rows: int, device: Any) -> Assessment:
    """The scorer's held-out ranking of survival against |w0|, |g0|, |w0 g0| and random on the same rows, the
    residual it ranks (``residual_rank`` label), and the source-ticket overlap over every source row."""
    from autos.scorer.metrics import evaluate_ranking, residual_metrics, ticket_diagnostics, trivial_baselines

    own_holdout = fit.holdout_idx[fit.holdout_idx < table.num_rows]
    holdout = eval_rows(fit, table.num_rows, cfg)
    survived = table.column("survived").to_numpy()[holdout].astype(np.int64)
    output = predict(fit.model, input_matrix(table, fit.settings.inputs, holdout), device=device)
    pred = label.scores(output, holdout)  # what the pruner ranks by: the output, + c(p_w) for residual_rank
    densities = list(cfg.topk_densities)
    headline = evaluate_ranking(pred, survived, num_rounds, densities, rng_seed=cfg.seed)
    columns = {c: table.column(c).to_numpy()[holdout] for c in ("w0", "g0")}
    baselines = trivial_baselines(columns, survived, num_rounds, densities, rng_seed=cfg.seed)
    metrics: dict[str, Any] = {"scorer": headline, "baselines": baselines, "holdout_rows": int(len(own_holdout)),
                               "eval_rows": int(len(holdout)), "pooled_rows": pooled_rows,
                               "train_rows": int(len(fit.train_idx)), "label": cfg.label}
    if label.base is not None:  # does the scorer learn what |w0| leaves unexplained? (0: nothing)
        metrics["residual"] = residual_metrics(output, label.values[holdout], columns, rng_seed=cfg.seed)
    ticket = ticket_diagnostics(
        label.scores(predict(fit.model, input_matrix(table, fit.settings.inputs), device=device)),
        table.column("w0").to_numpy(), table.column("survived").to_numpy(), table.column("layer_idx").to_numpy(),
        layer_names(table), num_rounds, cfg.seed)
    if ticket is not None:
        metrics.update({"source_ticket_density": ticket["density"],
                        **{f"source_ticket_overlap_{k}": v for k, v in ticket["overlap"].items()}})
    return Assessment(metrics=metrics, headline=headline, baselines=baselines, eval_rows=holdout, ticket=ticket)
