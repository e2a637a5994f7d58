"""DVC stage: per-weight initial features of the source model, labelled with IRP survival -> Parquet.

Output, per source seed s: data/features/<s>/source.parquet (schema in autos.features; metadata: source, dataset,
IRP settings, seed), metrics/features_<s>.json.
"""

from __future__ import annotations

import time

from autos.features import feature_table, weight_features, write_table
from autos.files import TIMING_KEYS, load_torch, without_keys
from autos.irp import check_tensors, load_survival
from autos.masking import prunable_parameters
from autos.models import model_for
from autos.pipeline.context import StageContext


def run(ctx: StageContext) -> None:
    cfg, tracker, device = ctx.cfg, ctx.tracker, ctx.device
    seed = ctx.source_seed
    data = ctx.dataset(cfg.source.dataset)
    model = model_for(cfg.source, num_classes=data.num_classes, input_size=data.image_size, seed=seed)
    # a missing, corrupt or mismatched IRP output is a DataError naming the file (one line, exit 1)
    init_path = ctx.paths.source_irp(seed) / "init.pt"
    init_state = load_torch(init_path, what="IRP initial weights")
    model.load_state_dict(check_tensors(init_state, {k: v.shape for k, v in model.state_dict().items()}, init_path,
                                        what="initial weights"))
    shapes = {n: p.shape for n, p in prunable_parameters(model, cfg.pruning.include_classifier).items()}
    survived = load_survival(ctx.paths.source_irp(seed) / "survival.pt", shapes, cfg.irp.num_rounds)
    with tracker.run(f"features seed {seed}", params={"features": cfg.features.model_dump(),
                                                       "source": cfg.source.model_dump(), "seed": seed},
                     tags={"stage": "features", "source_seed": str(seed)}):
        start = time.perf_counter()
        infos, features = weight_features(model, data, cfg.features, device=device, seed=seed,
                                          include_classifier=cfg.pruning.include_classifier)
        feature_seconds = time.perf_counter() - start
        table = feature_table(infos, features, cfg.features.extra, survived=survived, num_rounds=cfg.irp.num_rounds)
        start = time.perf_counter()
        write_table(table, ctx.paths.source_features(seed), {
            "source": cfg.source.model_dump(), "dataset": cfg.source.dataset, "irp": cfg.irp.model_dump(),
            "features": cfg.features.model_dump(), "seed": seed, "num_rounds": cfg.irp.num_rounds,
            "layers": [i.name for i in infos],
        })
        write_seconds = time.perf_counter() - start
        metrics = {"rows": table.num_rows, "layers": len(infos), "feature_seconds": feature_seconds,
                   "write_seconds": write_seconds, "rows_per_second_write": table.num_rows / max(write_seconds, 1e-9)}
        ctx.write_metrics(f"features_{seed}", without_keys(metrics, TIMING_KEYS))  # reproducible bytes
        tracker.log_metrics(metrics)  # timings too: MLflow is where wall-clock figures live
