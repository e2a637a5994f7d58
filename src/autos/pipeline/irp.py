"""DVC stage: iterative rewind pruning on the source model -> survival counts and the IRP curve.

Outputs, per source seed s (``--source-seed``; one stage instance per seed of ``sources.seeds``):
data/irp/<s>/{init.pt, survival.pt, masks.pt, curve.json}, metrics/irp_<s>.json. Resumes a killed run from its
last finished round (checkpoints under data/cache/irp_resume/<s>, removed on success).

MLflow: the parent run ``irp <model>_<dataset>`` holds the curve as stepped metrics (``density``,
``final_test_acc``, ``best_test_acc`` at step = round, restored rounds included) and ``summary.*``; one nested run
per round, ``irp <model>_<dataset> / round <r> / density <d %>``, spanning the round's training.
"""

from __future__ import annotations

import time

from autos.files import TIMING_KEYS, save_torch, without_keys
from autos.irp import clear_resume_state, run_irp
from autos.models import model_for
from autos.pipeline.context import StageContext, atomic_dir, write_json, write_resolved_config


def run(ctx: StageContext) -> None:
    cfg, tracker, device = ctx.cfg, ctx.tracker, ctx.device
    seed = ctx.source_seed  # the source run: its model init, data order and pruning draws
    data = ctx.dataset(cfg.source.dataset)
    model = model_for(cfg.source, num_classes=data.num_classes, input_size=data.image_size, seed=seed)
    resume_dir = ctx.paths.cache / "irp_resume" / str(seed)
    params = {"source": cfg.source.model_dump(), "irp": cfg.irp.model_dump(), "training": cfg.training.model_dump(),
              "seed": seed, "include_classifier": cfg.pruning.include_classifier,
              "dataset.train_images": len(data.train_y)}

    source = f"{cfg.source.model}_{cfg.source.dataset}"
    with tracker.run(f"irp {source} seed {seed}", params=params,
                     tags={"stage": "irp", "source": source, "source_seed": str(seed)}):
        stepped: set[int] = set()

        def log_round(record: dict) -> None:
            """The parent's per-round curve (step = round): MLflow charts accuracy and density over rounds."""
            tracker.log_metrics({k: record[k] for k in ("density", "final_test_acc", "best_test_acc") if k in record},
                                step=record["round"])
            stepped.add(record["round"])

        def on_round(record, result) -> None:  # noqa: ANN001
            r = record["round"]
            name = f"irp {source} seed {seed} / round {r} / density {record['requested_density'] * 100:.4g}%"
            # logged when the round has trained (run_irp reports rounds as they finish); the run spans its training
            run = tracker.start_run(name, tags={"stage": "irp", "round": r}, start_time=time.time() - result.seconds,
                                    params={"round": r, "requested_density": record["requested_density"]})
            run.log_history(result.history)
            run.log_metrics({k: v for k, v in record.items() if k != "round"})
            run.end("FINISHED")
            log_round(record)

        result = run_irp(model, data, cfg.irp, cfg.training, device=device, seed=seed,
                         include_classifier=cfg.pruning.include_classifier, resume_dir=resume_dir,
                         on_round=on_round)
        with atomic_dir(ctx.paths.source_irp(seed)) as out:
            save_torch(result.init_state, out / "init.pt")  # byte-reproducible (autos.files)
            save_torch(result.survived, out / "survival.pt")
            save_torch({f"round_{i + 1}": m for i, m in enumerate(result.masks)}, out / "masks.pt")
            # wall-clock figures go to MLflow only: curve.json is hashed by DVC and must be byte-reproducible
            rounds = [without_keys(r, TIMING_KEYS) for r in result.curve]
            write_json(out / "curve.json", {"num_rounds": cfg.irp.num_rounds, "rounds": rounds})
            write_resolved_config(out, cfg, ["seed", "device", "source", "irp", "training", "pruning"])
        final = result.curve[-1]
        metrics = {"final_density": final["density"], "final_test_acc": final["final_test_acc"],
                   "best_test_acc": final["best_test_acc"],
                   "dense_test_acc": result.curve[0]["final_test_acc"] if result.curve[0]["round"] == 0 else None}
        ctx.write_metrics(f"irp_{seed}", metrics)
        for record in result.curve:  # rounds restored from a checkpoint were not reported by this process
            if record["round"] not in stepped:
                log_round(record)
        tracker.log_metrics({f"summary.{k}": v for k, v in metrics.items() if v is not None})
        tracker.log_artifact(ctx.paths.source_irp(seed) / "curve.json")
    clear_resume_state(resume_dir)
