"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

The sweep is cut into cells (autos.cells: one per method x sparsity x seed, with its modifiers) run by
autos.executors (``execution.backend``: local or Ray). Finished cells are kept under <cache>/cells/<target>/, so a
killed stage resumes cell by cell.

Outputs: data/transfer/<target>/results.json (one row per run), metrics/transfer_<target>.json (accuracy per
method and sparsity, for ``dvc metrics``). MLflow (written by this process only): one run per target, nested runs
per (method, sparsity, seed[, modifier]) tagged with their cell id.
"""

from __future__ import annotations

import json
from pathlib import Path

from autos.cells import CellResult, CellStore, cell_id, cell_inputs, plan_cells, source_digest
from autos.errors import ConfigError, DataError
from autos.executors import CellTask, remember_data, run_cells
from autos.files import TIMING_KEYS, without_keys
from autos.records import transfer_metrics
from autos.study import method_settings
from autos.transfer import run_key_of
from stages.common import StageContext, atomic_dir, parser, read_json, run_stage, write_json, write_resolved_config


def _scorer_digest(scorer_dir: Path) -> str:
    """The trained scorer's identity for AutoS cells: the weights' sha256 recorded by save_scorer."""
    try:
        return str(read_json(scorer_dir / "scorer.json").get("weights_sha256"))
    except (OSError, ValueError) as exc:
        raise DataError(f"no readable trained scorer at {scorer_dir} ({exc}); run the train_scorer stage") from None


def main(ctx: StageContext) -> None:
    cfg, args, tracker, root = ctx.cfg, ctx.args, ctx.tracker, ctx.root
    if args.target not in cfg.transfer.targets:
        raise ConfigError([f"--target {args.target!r} is not declared under transfer.targets "
                           f"(declared: {', '.join(cfg.transfer.targets)})"], args.params)
    spec = cfg.transfer.targets[args.target]
    data = ctx.dataset(spec.dataset)
    params = {"target": spec.model_dump(), "methods": cfg.transfer.methods, "sparsities": cfg.transfer.sparsities,
              "seeds": cfg.transfer.seeds, "modifiers": cfg.transfer.modifiers,
              "training": cfg.training.with_epochs(spec.epochs).model_dump(),
              "method_settings": {m: method_settings(cfg, m).model_dump() for m in cfg.transfer.methods},
              "dataset.train_images": len(data.train_y), "dataset.test_images": len(data.test_y)}

    data_dir = ctx.paths.prepared / spec.dataset
    remember_data(data_dir, data)
    code = source_digest()
    scorer_digest = _scorer_digest(ctx.paths.scorer) if "autos" in cfg.transfer.methods else None
    settings = {m: method_settings(cfg, m).model_dump(mode="json") for m in cfg.transfer.methods}
    cells = [(key, cell_id(key, cell_inputs(cfg, key, method_settings=settings.get(key.method, {}),
                                            data_digest=json.dumps(data.meta.get("files"), sort_keys=True),
                                            scorer_digest=scorer_digest, code_digest=code,
                                            device_type=ctx.device.type)))
             for key in plan_cells(cfg, args.target)]
    store = CellStore(ctx.paths.cache / "cells" / args.target)
    threads = int(cfg.execution.num_cpus) if cfg.execution.num_cpus is not None else None
    if cfg.execution.backend == "ray" and threads is None:
        threads = 1
    task = CellTask(cfg=cfg, data_dir=data_dir, root=root, cache_dir=ctx.paths.cache / "transfer" / args.target,
                    torch_threads=max(1, threads) if threads is not None else None)

    with tracker.run(f"transfer {args.target}", params=params, tags={"stage": "transfer", "target": args.target}):
        def on_done(cell: CellResult) -> None:
            """Mirror a finished cell to MLflow once (the driver is the only MLflow writer)."""
            if cell.logged:
                return
            for row, history in zip(cell.rows, cell.histories, strict=True):
                run = run_key_of(row)
                with tracker.run(run.name, nested=True, tags={"stage": "transfer", "cell": cell.cell_id,
                                                               **run.tags()}):
                    tracker.log_params({"method": run.method, "sparsity": run.sparsity, "seed": run.seed,
                                        "modifier": run.modifier or "none", "info": row["info"]})
                    tracker.log_history(history)
                    per_layer = ("layer_density", "layer_effective_density")
                    tracker.log_metrics({k: v for k, v in row.items() if k not in (*per_layer, "info", "seed")})
                    if "layer_density" in row:
                        tracker.log_dict({k: row[k] for k in per_layer}, "layer_density.json")
            cell.logged = True
            store.save(cell)

        results = run_cells(cells, task, store, cfg.execution, on_done)
        rows = [row for cell in results for row in cell.rows]
        with atomic_dir(ctx.paths.transfer / args.target) as out:
            # wall-clock figures (train/select seconds) stay in MLflow: results.json must be byte-reproducible
            write_json(out / "results.json", {
                "target": args.target, "spec": spec.model_dump(),
                "rows": [without_keys(row, TIMING_KEYS) for row in rows],
                "recipe": cfg.training.with_epochs(spec.epochs).model_dump(),
                "dataset": {"name": spec.dataset, "train_images": len(data.train_y), "test_images": len(data.test_y),
                            "num_classes": data.num_classes, "image_size": int(data.train_x.shape[-1])},
            })
            write_resolved_config(out, cfg, ["seed", "device", "training", "pruning", "features"], {
                "target": spec.model_dump(mode="json"),
                "transfer": cfg.transfer.model_dump(mode="json", exclude={"targets"}),
                "method_settings_resolved": {m: method_settings(cfg, m).model_dump(mode="json")
                                             for m in cfg.transfer.methods},
            })
        ctx.write_metrics(f"transfer_{args.target}", transfer_metrics(rows))
        tracker.log_artifact(ctx.paths.transfer / args.target / "results.json")


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--target", required=True)
    run_stage("transfer", main, p)
