"""DVC stage: train the AutoS scorer on the source feature table; evaluate it against trivial scorers.

Outputs, per source seed s (its split and init seed: ``scorer.seed + s``): data/scorer/<s>/{scorer.pt, scorer.json,
split.npz, history.json, source_ticket.json, metrics.json}, metrics/scorer_<s>.json (the same metrics, for
``dvc metrics``)
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

import pyarrow as pa

from autos.features import pool_tables, read_table, table_metadata
from autos.files import TIMING_KEYS, atomic_write_bytes, npz_bytes, without_keys
from autos.paths import SOURCE_TICKET_FILE
from autos.pipeline.context import StageContext, atomic_dir, write_json, write_resolved_config
from autos.scorer import fit_scorer, save_scorer, split_rows
from autos.scorer.assess import assess_scorer
from autos.scorer.labels import LABEL_KEY, source_label

log = logging.getLogger("autos.stage.train_scorer")


def training_rows(ctx: StageContext, table: pa.Table) -> pa.Table:
    """The source table, with other sources' tables pooled after it (``scorer.extra_tables``), so that row i is
    still this table's row i."""
    cfg = ctx.cfg.scorer
    if not cfg.extra_tables:
        return table
    inputs = list(cfg.typed_settings.model_dump()["inputs"])
    rows = pool_tables(table, [ctx.root / p for p in cfg.extra_tables],
                       list(dict.fromkeys([*inputs, "label", "survived"])))
    log.info("scorer: %d rows of this source pooled with %d from %s", table.num_rows, rows.num_rows - table.num_rows,
             ", ".join(map(str, cfg.extra_tables)))
    return rows


def run(ctx: StageContext) -> None:
    cfg, tracker, device = ctx.cfg, ctx.tracker, ctx.device
    seed = ctx.source_seed
    scorer_cfg = cfg.scorer.model_copy(update={"seed": cfg.scorer.seed + seed})  # each source its own fit
    meta = table_metadata(ctx.paths.source_features(seed))
    table = read_table(ctx.paths.source_features(seed))
    num_rounds = int(str(meta["num_rounds"]))
    params = {"scorer": scorer_cfg.model_dump(), "table.rows": table.num_rows, "table.source": meta["source"],
              "table.irp": meta["irp"], "source_seed": str(seed)}
    with tracker.run(f"train_scorer {cfg.scorer.name} seed {seed}", params=params,
                     tags={"stage": "train_scorer", "scorer": cfg.scorer.name, "source_seed": str(seed)}):
        rows = training_rows(ctx, table)
        # what the scorer regresses (scorer.label): survival, or the residual rank after |w0| with its magnitude
        # curve fitted on the training split only (autos.scorer.labels)
        train_rows, _ = split_rows(table.num_rows, scorer_cfg.holdout_fraction, scorer_cfg.seed)
        label = source_label(table, scorer_cfg.label, scorer_cfg.label_bins, train_rows)
        fit = fit_scorer(label.with_label(rows), scorer_cfg, device=device)
        for epoch in fit.history:
            tracker.log_metrics({"train_loss": epoch.train_loss, "holdout_mse": epoch.holdout_mse}, step=epoch.epoch)
        assessment = assess_scorer(table, fit, label, scorer_cfg, num_rounds,
                                   pooled_rows=rows.num_rows - table.num_rows, device=device)
        with atomic_dir(ctx.paths.source_scorer(seed)) as out:
            save_scorer(out, fit.model, cfg.scorer.name, fit.settings,
                        {"source": meta["source"], "num_rounds": num_rounds, "features": meta["features"],
                         LABEL_KEY: label.record})
            atomic_write_bytes(out / "split.npz", npz_bytes(train_idx=fit.train_idx, holdout_idx=assessment.eval_rows))
            write_json(out / "history.json", [without_keys(asdict(e), TIMING_KEYS) for e in fit.history])
            write_json(out / SOURCE_TICKET_FILE, assessment.ticket)
            write_json(out / "metrics.json", assessment.metrics)  # the report reads every source's from here
            write_resolved_config(out, cfg, ["scorer"],
                                  {"scorer_settings": cfg.scorer.typed_settings.model_dump(mode="json")})
        ctx.write_metrics(f"scorer_{seed}", assessment.metrics)
        # the headline for MLflow's chart view: one section of held-out metrics, one per trivial baseline
        tracker.log_metrics({**{f"heldout/{k}": v for k, v in assessment.headline.items()},
                             **{f"baseline/{name}/{k}": v for name, values in assessment.baselines.items()
                                for k, v in values.items()},
                             "rows/train": assessment.metrics["train_rows"],
                             "rows/heldout": assessment.metrics["holdout_rows"],
                             "rows/eval": assessment.metrics["eval_rows"], "fit_seconds": fit.seconds})
        tracker.log_scorer_model(ctx.paths.source_scorer(seed), registered_name=f"{cfg.tracking.experiment}-scorer",
                                 inputs=list(fit.settings.inputs))
