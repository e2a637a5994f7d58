"""DVC stage: train the AutoS scorer on the source feature table; evaluate it against trivial scorers.

Outputs: data/scorer/{scorer.pt, scorer.json, split.npz, history.json, source_ticket.json}, metrics/scorer.json
(held-out MSE, Spearman, top-k overlap with IRP, AUC of "survives every round", next to |w0|, |g0|, |w0*g0| and
random on the same rows; and how much of the source's IRP ticket the scorer's and |w0|'s masks at the ticket's
density keep). source_ticket.json holds the per-layer densities of the ticket, AutoS's mask and |w0|'s mask.
The scorer is logged to MLflow as a model built from code, with a signature (one float32 column per
scorer input, a float32 score out), and registered as "<experiment>-scorer".

MLflow: the run ``train_scorer <scorer>`` holds ``train_loss`` / ``holdout_mse`` per epoch, the held-out headline
(``heldout/mse``, ``heldout/spearman``, ``heldout/topk_overlap_d<d>``, ``heldout/auc_all_rounds``), the same for
each trivial baseline (``baseline/<name>/<metric>``) and the row counts (``rows/*``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np

from autos.features import pool_tables, read_table, table_metadata
from autos.files import TIMING_KEYS, atomic_write_bytes, npz_bytes, without_keys
from autos.paths import SOURCE_TICKET_FILE
from autos.scorer import (
    evaluate_ranking,
    fit_scorer,
    input_matrix,
    predict,
    save_scorer,
    split_rows,
    ticket_diagnostics,
    trivial_baselines,
)
from autos.scorer.labels import LABEL_KEY, source_label
from autos.scorer.metrics import residual_metrics
from autos.study import scorer_settings
from stages.common import StageContext, atomic_dir, parser, run_stage, write_json, write_resolved_config

log = logging.getLogger("autos.stage.train_scorer")


def main(ctx: StageContext) -> None:
    cfg, tracker, device = ctx.cfg, ctx.tracker, ctx.device
    meta = table_metadata(ctx.paths.features)
    table = read_table(ctx.paths.features)
    num_rounds = int(meta["num_rounds"])
    params = {"scorer": cfg.scorer.model_dump(), "table.rows": table.num_rows, "table.source": meta["source"],
              "table.irp": meta["irp"]}
    with tracker.run(f"train_scorer {cfg.scorer.name}", params=params,
                     tags={"stage": "train_scorer", "scorer": cfg.scorer.name}):
        extra_paths = [ctx.root / p for p in cfg.scorer.extra_tables]
        rows = table
        if extra_paths:  # pooled sources: other tables' rows after this one's, so row i is still this table's row i
            inputs = list(scorer_settings(cfg.scorer).model_dump()["inputs"])
            rows = pool_tables(table, extra_paths, list(dict.fromkeys([*inputs, "label", "survived"])))
            log.info("scorer: %d rows of this source pooled with %d from %s", table.num_rows,
                     rows.num_rows - table.num_rows, ", ".join(map(str, cfg.scorer.extra_tables)))
        # what the scorer regresses (scorer.label): survival, or the residual rank after |w0| with its magnitude
        # curve fitted on the training split only (autos.scorer.labels)
        train_rows, _ = split_rows(table.num_rows, cfg.scorer.holdout_fraction, cfg.scorer.seed)
        label = source_label(table, cfg.scorer.label, cfg.scorer.label_bins, train_rows)
        fit = fit_scorer(label.with_label(rows), cfg.scorer, device=device)
        for epoch in fit.history:
            tracker.log_metrics({"train_loss": epoch.train_loss, "holdout_mse": epoch.holdout_mse}, step=epoch.epoch)

        own_holdout = fit.holdout_idx[fit.holdout_idx < table.num_rows]  # the metrics: this study's source only
        holdout = own_holdout
        if cfg.scorer.max_eval_rows is not None and len(holdout) > cfg.scorer.max_eval_rows:
            rng = np.random.default_rng(cfg.scorer.seed)
            holdout = np.sort(rng.choice(holdout, cfg.scorer.max_eval_rows, replace=False))
        survived = table.column("survived").to_numpy()[holdout].astype(np.int64)
        output = predict(fit.model, input_matrix(table, fit.settings.inputs, holdout), device=device)
        pred = label.scores(output, holdout)  # what the pruner ranks by: the output, + c(p_w) for residual_rank
        densities = list(cfg.scorer.topk_densities)
        scorer_metrics = evaluate_ranking(pred, survived, num_rounds, densities, rng_seed=cfg.scorer.seed)
        columns = {c: table.column(c).to_numpy()[holdout] for c in ("w0", "g0")}
        baselines = trivial_baselines(columns, survived, num_rounds, densities, rng_seed=cfg.scorer.seed)
        metrics = {"scorer": scorer_metrics, "baselines": baselines, "holdout_rows": int(len(own_holdout)),
                   "eval_rows": int(len(holdout)), "pooled_rows": rows.num_rows - table.num_rows,
                   "train_rows": int(len(fit.train_idx)), "label": cfg.scorer.label}  # no wall-clock figures
        if label.base is not None:  # does the scorer learn what |w0| leaves unexplained? (0: nothing)
            metrics["residual"] = residual_metrics(output, label.values[holdout], columns,
                                                  rng_seed=cfg.scorer.seed)
        # The source's IRP ticket vs what the scorer and |w0| keep at its density, per layer (every source row)
        layer_idx = table.column("layer_idx").to_numpy()
        indices, first_rows = np.unique(layer_idx, return_index=True)
        layer_names = [""] * (int(indices.max()) + 1)
        for i, name in zip(indices, table.column("layer").take(first_rows).to_pylist(), strict=True):
            layer_names[int(i)] = str(name)
        ticket = ticket_diagnostics(
            label.scores(predict(fit.model, input_matrix(table, fit.settings.inputs), device=device)),
            table.column("w0").to_numpy(), table.column("survived").to_numpy(), layer_idx, layer_names, num_rounds,
            cfg.scorer.seed)
        if ticket is not None:
            metrics.update({"source_ticket_density": ticket["density"],
                            **{f"source_ticket_overlap_{k}": v for k, v in ticket["overlap"].items()}})

        with atomic_dir(ctx.paths.scorer) as out:
            save_scorer(out, fit.model, cfg.scorer.name, fit.settings,
                        {"source": meta["source"], "num_rounds": num_rounds, "features": meta["features"],
                         LABEL_KEY: label.record})
            atomic_write_bytes(out / "split.npz", npz_bytes(train_idx=fit.train_idx, holdout_idx=holdout))
            write_json(out / "history.json", [without_keys(asdict(e), TIMING_KEYS) for e in fit.history])
            write_json(out / SOURCE_TICKET_FILE, ticket)
            write_resolved_config(out, cfg, ["scorer"],
                                  {"scorer_settings": scorer_settings(cfg.scorer).model_dump(mode="json")})
        ctx.write_metrics("scorer", metrics)
        # the headline for MLflow's chart view: one section of held-out metrics, one per trivial baseline
        tracker.log_metrics({**{f"heldout/{k}": v for k, v in scorer_metrics.items()},
                             **{f"baseline/{name}/{k}": v for name, values in baselines.items()
                                for k, v in values.items()},
                             "rows/train": metrics["train_rows"], "rows/heldout": metrics["holdout_rows"],
                             "rows/eval": metrics["eval_rows"], "fit_seconds": fit.seconds})
        tracker.log_scorer_model(ctx.paths.scorer, registered_name=f"{cfg.tracking.experiment}-scorer",
                                 inputs=list(fit.settings.inputs))


if __name__ == "__main__":
    run_stage("train_scorer", main, parser(__doc__))
