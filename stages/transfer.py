"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

The sweep is cut into cells (autos.sweep.cells: one per method x sparsity x seed, with its modifiers) run by
autos.sweep.executors (``execution.backend``: local or Ray). Finished cells are kept under <cache>/cells/<target>/, so a
killed stage resumes cell by cell.

Outputs: data/transfer/<target>/results.json (one row per run), metrics/transfer_<target>.json (accuracy per
method and sparsity, for ``dvc metrics``).

MLflow (written by this process only, ``autos.tracking.sweep.SweepRuns``):

* the parent run ``transfer <target>``: the sweep's params; at the end one metric per (method, sparsity), the mean
  final accuracy over seeds (``acc/<label>/s<sparsity %>``, ``acc/dense``; ``+`` in a label becomes ``-``, which
  MLflow keys allow), the accuracy-vs-sparsity figure (``plots/accuracy_vs_sparsity.png``), results.json, and tags
  counting the cells (``autos.cells_total`` / ``_cached`` / ``_run``);
* one run per cell, ``<target> / <method> / s=<sparsity %> / seed <n>`` (the dense cell: ``<target> / dense /
  seed <n>``), opened when the cell starts (RUNNING, with a true duration) and ended when it finishes (FINISHED,
  holding the method's own row) or fails (FAILED, tag ``error``); a killed stage's open runs end KILLED;
* each sanity-check variant of the cell's mask (``<method>+<modifier>``) as a run nested under its cell's run,
  logged when the cell finishes (the rows only exist then), with start and end times placed from the rows'
  ``train_seconds``;
* every row's run: params (method, sparsity, seed, modifier, the method's info), per-epoch history as stepped
  metrics, the row's numbers as metrics, ``layer_density.json`` and ``plots/training_and_density.png``; tags
  ``stage``, ``cell`` (the cell id), ``target``, ``method``, ``sparsity``, ``seed``, ``modifier`` (``none``).

Run names are unique within their parent. Cells restored from the cache were logged when they were computed and are
not logged again; one whose rows were saved but never reached MLflow (a kill in between) is logged once, tagged
``autos.restored``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from autos.errors import ConfigError, DataError
from autos.files import TIMING_KEYS, without_keys
from autos.pruners import PRUNERS
from autos.study import method_settings
from autos.sweep.cells import CellStore, cell_id, cell_inputs, plan_cells, source_digest
from autos.sweep.executors import CellTask, remember_data
from autos.sweep.oracle import ORACLE, oracle_overlaps
from autos.sweep.records import transfer_metrics
from autos.tracking.sweep import SweepRuns, log_sweep_summary
from stages.common import StageContext, atomic_dir, parser, read_json, run_stage, write_json, write_resolved_config

log = logging.getLogger("autos.stage.transfer")

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
        runs = SweepRuns(tracker, store, tracker.active_run_id())
        results = runs.run(cells, task, cfg.execution)
        rows = [row for cell in results for row in cell.rows]
        with atomic_dir(ctx.paths.transfer / args.target) as out:
            # wall-clock figures (train/select seconds) stay in MLflow: results.json must be byte-reproducible
            write_json(out / "results.json", {
                "target": args.target, "spec": spec.model_dump(),
                "rows": [without_keys(row, TIMING_KEYS) for row in rows],
                "recipe": cfg.training.with_epochs(spec.epochs).model_dump(),
                # what kind each method is ('pai', 'early', 'trained'): the report picks the single-shot
                # baselines by it without importing the registry (and torch)
                "methods": {m: {"kind": PRUNERS.get(m).kind} for m in cfg.transfer.methods},
                "dataset": {"name": spec.dataset, "train_images": len(data.train_y), "test_images": len(data.test_y),
                            "num_classes": data.num_classes, "image_size": int(data.train_x.shape[-1])},
                # IRP on this target as the oracle: how much of its ticket AutoS and |w0| keep (autos.sweep.oracle)
                **({"oracle_overlap": oracle_overlaps(
                    (c.key.method, c.key.sparsity, c.key.seed, c.mask) for c in results if c.mask is not None)}
                   if ORACLE in cfg.transfer.methods else {}),
            })
            write_resolved_config(out, cfg, ["seed", "device", "training", "pruning", "features"], {
                "target": spec.model_dump(mode="json"),
                "transfer": cfg.transfer.model_dump(mode="json", exclude={"targets"}),
                "method_settings_resolved": {m: method_settings(cfg, m).model_dump(mode="json")
                                             for m in cfg.transfer.methods},
            })
        ctx.write_metrics(f"transfer_{args.target}", transfer_metrics(rows))
        tracker.log_artifact(ctx.paths.transfer / args.target / "results.json")
        log_sweep_summary(tracker, args.target, rows, cells_total=len(cells), cells_run=runs.computed)


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--target", required=True)
    run_stage("transfer", main, p)
