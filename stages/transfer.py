"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

Outputs: data/transfer/<target>/results.json (one row per run), metrics/transfer_<target>.json (accuracy per
method and sparsity, for ``dvc metrics``). MLflow: one run per target, nested runs per (method, sparsity, seed).
"""

from __future__ import annotations

from torch import nn

from autos.errors import ConfigError
from autos.files import TIMING_KEYS, without_keys
from autos.models import model_for
from autos.records import RunKey
from autos.study import method_settings
from autos.transfer import run_target
from stages.common import StageContext, atomic_dir, parser, run_stage, write_json, write_resolved_config


def summary_metrics(rows: list[dict]) -> dict:
    metrics: dict = {}
    for row in rows:
        metrics.setdefault(RunKey.of_row(row).metric_key, {})[f"seed{row['seed']}"] = {
            "final_test_acc": row["final_test_acc"], "best_test_acc": row["best_test_acc"],
            **({"achieved_sparsity": row["achieved_sparsity"]} if "achieved_sparsity" in row else {}),
        }
    return metrics


def main(ctx: StageContext) -> None:
    cfg, args, tracker, device, root = ctx.cfg, ctx.args, ctx.tracker, ctx.device, ctx.root
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

    with tracker.run(f"transfer {args.target}", params=params, tags={"stage": "transfer", "target": args.target}):
        def on_result(run: RunKey, row, result) -> None:  # noqa: ANN001
            with tracker.run(run.name, nested=True, tags={"stage": "transfer", **run.tags()}):
                tracker.log_params({"method": run.method, "sparsity": run.sparsity, "seed": run.seed,
                                    "modifier": run.modifier or "none", "info": row["info"]})
                tracker.log_history(result.history)
                per_layer = ("layer_density", "layer_effective_density")
                tracker.log_metrics({k: v for k, v in row.items() if k not in (*per_layer, "info", "seed")})
                if "layer_density" in row:
                    tracker.log_dict({k: row[k] for k in per_layer}, "layer_density.json")

        def build(seed: int) -> nn.Module:
            return model_for(spec, num_classes=data.num_classes, input_size=data.image_size, seed=seed)

        rows = run_target(cfg, args.target, data, build=build, device=device,
                          root=root, cache_dir=ctx.paths.cache / "transfer" / args.target,
                          on_result=on_result)
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
        ctx.write_metrics(f"transfer_{args.target}", summary_metrics(rows))
        tracker.log_artifact(ctx.paths.transfer / args.target / "results.json")


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--target", required=True)
    run_stage("transfer", main, p)
