"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

The sweep is cut into cells (autos.sweep.cells: one per method x sparsity x seed, with its modifiers) run by
autos.sweep.executors (``execution.backend``: local or Ray). Finished cells are kept under <cache>/cells/<target>/, so a
killed stage resumes cell by cell.

Outputs: data/transfer/<target>/results.json (one row per run), metrics/transfer_<target>.json (accuracy per
method and sparsity, for ``dvc metrics``).

MLflow (written by this process only, ``autos.tracking.sweep.SweepRuns``):

* the parent run ``transfer <target>``: the sweep's params; at the end, per (method, sparsity), the final accuracy
  over seeds in percent: ``acc/<label>/s<sparsity %>/mean``, ``/std`` (two seeds or more) and ``/n``
  (``acc/dense/...`` for the dense run; ``+`` in a label becomes ``-``, which MLflow keys allow), the
  accuracy-vs-sparsity figure (``plots/accuracy_vs_sparsity.png``), results.json, and tags
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
from typing import Any

from autos.config import StudyConfig
from autos.data.prepared import PreparedData
from autos.data.validation import hold_out
from autos.errors import ConfigError
from autos.pipeline.context import StageContext, atomic_dir, write_json, write_resolved_config
from autos.registry import MethodRecord
from autos.study import method_records
from autos.sweep.cells import CellResult, CellStore
from autos.sweep.executors import CellTask
from autos.sweep.oracle import ORACLE, oracle_overlaps
from autos.sweep.plan import plan_sweep
from autos.sweep.records import transfer_metrics
from autos.tracking.sweep import SweepRuns, log_sweep_summary

log = logging.getLogger("autos.stage.transfer")


def torch_threads(cfg: StudyConfig) -> int:
    """CPU threads per cell: ``execution.num_cpus`` (its integer part), else 1 on Ray, else all of this process's."""
    import torch

    if cfg.execution.num_cpus is not None:
        return max(1, int(cfg.execution.num_cpus))
    return 1 if cfg.execution.backend == "ray" else torch.get_num_threads()


def results_payload(cfg: StudyConfig, target: str, data: PreparedData, results: list[CellResult]) -> dict[str, Any]:
    """``results.json``: every row (without wall-clock figures, so that it is byte-reproducible), the recipe, each
    method's kind and title (the report's single-shot baselines and names), the dataset, the oracle's overlaps."""
    spec = cfg.transfer.targets[target]
    return {
        "target": target, "spec": spec.model_dump(),
        "rows": [row.to_json(timing=False) for cell in results for row in cell.rows],
        "recipe": cfg.training.with_epochs(spec.epochs).model_dump(),
        "methods": {m: _method_entry(r) for m, r in method_records(cfg).items()},
        "sources": cfg.sources.model_dump(mode="json"),
        "validation_per_class": cfg.transfer.validation_per_class,
        "dataset": {"name": spec.dataset, "train_images": len(data.train_y), "test_images": len(data.test_y),
                    "num_classes": data.num_classes, "image_size": int(data.train_x.shape[-1])},
        # IRP on this target as the oracle: how much of its ticket AutoS and |w0| keep (autos.sweep.oracle)
        **({"oracle_overlap": oracle_overlaps(
            (c.key.method, c.key.sparsity, c.key.seed, c.mask) for c in results if c.mask is not None)}
           if ORACLE in cfg.transfer.methods else {}),
    }


def _method_entry(record: MethodRecord) -> dict[str, Any]:
    """What results.json says of a method: its kind (the report's single-shot baselines), and for a variant what
    it runs."""
    variant = {"variant_of": record.variant_of, "settings": record.variant_settings} if record.variant_of else {}
    return {"kind": record.kind, **variant}


def run(ctx: StageContext) -> None:
    cfg, args, tracker = ctx.cfg, ctx.args, ctx.tracker
    if args.target not in cfg.transfer.targets:
        raise ConfigError([f"--target {args.target!r} is not declared under transfer.targets "
                           f"(declared: {', '.join(cfg.transfer.targets)})"], args.params)
    target = args.target
    spec = cfg.transfer.targets[target]
    data, validation = hold_out(ctx.dataset(spec.dataset), cfg.transfer.validation_per_class, cfg.seed)
    settings = {m: cfg.transfer.settings_of(m) for m in cfg.transfer.methods}
    params = {"target": spec.model_dump(), "methods": cfg.transfer.methods, "sparsities": cfg.transfer.sparsities,
              "seeds": cfg.transfer.seeds, "modifiers": cfg.transfer.modifiers,
              "training": cfg.training.with_epochs(spec.epochs).model_dump(),
              "method_settings": {m: s.model_dump() for m, s in settings.items()},
              "dataset.train_images": len(data.train_y), "dataset.test_images": len(data.test_y),
              "dataset.validation_images": 0 if validation is None else len(validation.test_y),
              "sources": cfg.sources.model_dump()}
    threads = torch_threads(cfg)
    plan = plan_sweep(cfg, target, data_digest=json.dumps(data.meta.get("files"), sort_keys=True),
                      scorer_dir=ctx.paths.scorer, device_type=ctx.device.type, torch_threads=threads)
    cells = plan.cells
    store = CellStore(ctx.paths.cache / "cells" / target)
    task = CellTask(cfg=cfg, root=ctx.root, cache_dir=ctx.paths.cache / "transfer" / target, torch_threads=threads,
                    share_keys=plan.share_keys, scorer_root=ctx.paths.scorer)

    with tracker.run(f"transfer {target}", params=params, tags={"stage": "transfer", "target": target}):
        runs = SweepRuns(tracker, store, tracker.active_run_id())
        results = runs.run(cells, task, data, cfg.execution, after=plan.after, validation=validation)
        with atomic_dir(ctx.paths.transfer / target) as out:
            write_json(out / "results.json", results_payload(cfg, target, data, results))
            write_resolved_config(out, cfg, ["seed", "device", "training", "pruning", "features"], {
                "target": spec.model_dump(mode="json"),
                "transfer": cfg.transfer.model_dump(mode="json", exclude={"targets"}),
                "method_settings_resolved": {m: s.model_dump(mode="json") for m, s in settings.items()},
            })
        rows = [row for cell in results for row in cell.rows]
        ctx.write_metrics(f"transfer_{target}", transfer_metrics(rows))
        tracker.log_artifact(ctx.paths.transfer / target / "results.json")
        log_sweep_summary(tracker, target, rows, cells_total=len(cells), cells_run=runs.computed)
