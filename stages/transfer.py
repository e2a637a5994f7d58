"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

The sweep is cut into cells (autos.cells: one per method x sparsity x seed, with its modifiers) run by
autos.executors (``execution.backend``: local or Ray). Finished cells are kept under <cache>/cells/<target>/, so a
killed stage resumes cell by cell.

Outputs: data/transfer/<target>/results.json (one row per run), metrics/transfer_<target>.json (accuracy per
method and sparsity, for ``dvc metrics``).

MLflow (written by this process only, ``SweepRuns``):

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
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autos.cells import DENSE, CellKey, CellResult, CellStore, cell_id, cell_inputs, plan_cells, source_digest
from autos.config import ExecutionConfig
from autos.errors import ConfigError, DataError
from autos.executors import CellTask, remember_data, run_cells
from autos.files import TIMING_KEYS, without_keys
from autos.oracle import ORACLE, oracle_overlaps
from autos.pruners import PRUNERS
from autos.records import RunKey, transfer_metrics
from autos.study import method_settings
from autos.tracking import RunHandle, Tracker
from stages.common import StageContext, atomic_dir, parser, read_json, run_stage, write_json, write_resolved_config

log = logging.getLogger("autos.stage.transfer")

PER_LAYER = ("layer_density", "layer_effective_density")


def metric_label(label: str) -> str:
    """A run label as part of an MLflow metric key (letters, digits, ``_ - . /`` and spaces): ``+`` -> ``-``."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "-", label)


def parent_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean final-epoch accuracy over seeds per (label, sparsity): ``acc/dense``, ``acc/<label>/s<sparsity %>``."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        run = RunKey.of_row(row)
        key = "acc/dense" if run.method == DENSE else f"acc/{metric_label(run.label)}/s{run.sparsity * 100:.4g}"
        groups[key].append(float(row["final_test_acc"]))
    return {key: sum(values) / len(values) for key, values in groups.items()}


class SweepRuns:
    """The sweep's MLflow runs (module docstring): ``run_cells``'s hooks, called in the driver only."""

    def __init__(self, tracker: Tracker, store: CellStore, parent_id: str | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.tracker = tracker
        self.store = store
        self.parent_id = parent_id
        self.clock = clock  # wall time (MLflow's start and end times)
        self.open: dict[str, RunHandle] = {}
        self.started: dict[str, float] = {}
        self.computed = 0  # cells computed (finished) by this process

    @staticmethod
    def _tags(run: RunKey, cid: str) -> dict[str, Any]:
        return {"stage": "transfer", "cell": cid, **run.tags(), "modifier": run.modifier or "none"}

    def on_start(self, key: CellKey, cid: str) -> None:
        if not self.tracker.enabled:
            return
        run = RunKey(key.target, key.method, key.sparsity, key.seed)
        self.started[cid] = self.clock()
        self.open[cid] = self.tracker.start_run(
            run.title, parent=self.parent_id, tags=self._tags(run, cid), start_time=self.started[cid],
            params={"method": run.method, "sparsity": run.sparsity, "seed": run.seed, "cell": cid})

    def on_finish(self, cell: CellResult) -> None:
        self.computed += 1
        if not self.tracker.enabled:
            return
        handle = self.open.pop(cell.cell_id, None)
        self._log_cell(cell, handle, self.started.pop(cell.cell_id, None))
        cell.logged = True
        self.store.save(cell)

    def on_fail(self, key: CellKey, cid: str, message: str) -> None:
        handle = self.open.pop(cid, None)
        self.started.pop(cid, None)
        if handle is not None:
            handle.set_tags({"error": message[:5000]})
            handle.end("FAILED")

    def on_done(self, cell: CellResult) -> None:
        """Every cell in planned order: log a cached cell that never reached MLflow (the others are logged)."""
        if cell.logged or not self.tracker.enabled:
            return
        if not self.tracker.has_run("cell", cell.cell_id):  # logged, then killed before the flag was saved
            seconds = sum(float(r.get("train_seconds", 0.0)) for r in cell.rows)
            seconds += float(cell.rows[0].get("select_seconds", 0.0)) if cell.rows else 0.0
            self._log_cell(cell, None, self.clock() - seconds, restored=True)
        cell.logged = True
        self.store.save(cell)

    def run(self, cells: Sequence[tuple[CellKey, str]], task: CellTask, execution: ExecutionConfig) -> list[CellResult]:
        """``run_cells`` with these hooks; cells still open when it raises end KILLED (an interrupt) or FAILED."""
        try:
            return run_cells(cells, task, self.store, execution, self.on_done, on_start=self.on_start,
                             on_finish=self.on_finish, on_fail=self.on_fail)
        except BaseException as exc:
            self.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise

    def close(self, status: str) -> None:
        """End the runs of cells still open (an interrupted or failed sweep) as ``status``; never raises."""
        for cid, handle in list(self.open.items()):
            try:
                handle.end(status)
            except Exception as exc:  # noqa: BLE001 - the sweep's own error matters more; the next stage closes it
                log.warning("could not end MLflow run %s as %s (%s)", handle.run_id, status, exc)
            self.open.pop(cid, None)

    def _log_cell(self, cell: CellResult, handle: RunHandle | None, started: float | None,
                  restored: bool = False) -> None:
        """The cell's rows: the method's own row on the cell's run, each variant on a run nested under it."""
        end = self.clock()
        start = started if started is not None else end
        runs = [RunKey.of_row(row) for row in cell.rows]
        if handle is None:  # not opened at start (a restored cell)
            head = RunKey(cell.key.target, cell.key.method, cell.key.sparsity, cell.key.seed)
            handle = self.tracker.start_run(
                head.title, parent=self.parent_id, start_time=start,
                tags={**self._tags(head, cell.cell_id), **({"autos.restored": "true"} if restored else {})},
                params={"method": head.method, "sparsity": head.sparsity, "seed": head.seed, "cell": cell.cell_id})
        # variants ran one after another, after the method's own row: place each by the seconds the rest took
        seconds = [float(row.get("train_seconds", 0.0)) for row in cell.rows]
        opened = [handle]
        try:
            with tempfile.TemporaryDirectory(prefix="autos-run-plots-") as tmp:
                for i, (run, row, history) in enumerate(zip(runs, cell.rows, cell.histories, strict=True)):
                    run_end = max(start, end - sum(seconds[i + 1:]))
                    target = handle
                    if run.modifier is not None:
                        target = self.tracker.start_run(
                            run.title, parent=handle, tags=self._tags(run, cell.cell_id),
                            start_time=max(start, run_end - seconds[i]),
                            params={"method": run.method, "sparsity": run.sparsity, "seed": run.seed,
                                    "cell": cell.cell_id})
                        opened.append(target)
                    self._log_row(target, run, row, history, Path(tmp) / f"{i}")
                    if target is not handle:
                        target.end("FINISHED", end_time=run_end)
            handle.end("FINISHED", end_time=end)
        except BaseException as exc:  # MLflow failed half way: no run of this cell stays RUNNING
            for run_handle in reversed(opened):
                try:
                    run_handle.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                except Exception as end_exc:  # noqa: BLE001 - keep the original error
                    log.warning("could not end MLflow run %s (%s)", run_handle.run_id, end_exc)
            raise

    @staticmethod
    def _log_row(handle: RunHandle, run: RunKey, row: Mapping[str, Any], history: Sequence[Mapping[str, float]],
                 tmp: Path) -> None:
        handle.log_params({"modifier": run.modifier or "none", "info": row.get("info", {})})
        handle.log_history(history)
        handle.log_metrics({k: v for k, v in row.items() if k not in (*PER_LAYER, "info", "seed")})
        if "layer_density" in row:
            handle.log_dict({k: row[k] for k in PER_LAYER if k in row}, "layer_density.json")
        try:
            from autos.run_plots import run_figure

            tmp.mkdir(parents=True, exist_ok=True)
            path = run_figure(history, row.get("layer_density"), run.title, tmp / "training_and_density.png")
            handle.log_artifact(path, "plots")
        except Exception as exc:  # noqa: BLE001 - a figure is a convenience; the numbers are logged above
            log.warning("no figure for MLflow run %s (%s)", handle.name, exc)


def log_sweep_summary(tracker: Tracker, target: str, rows: Sequence[Mapping[str, Any]], *, cells_total: int,
                      cells_run: int) -> None:
    """The parent run's summary: mean accuracy per (label, sparsity), the sweep figure, cell counts."""
    if not tracker.enabled:
        return
    tracker.log_metrics(parent_metrics(rows))
    tracker.set_tags({"autos.cells_total": cells_total, "autos.cells_cached": cells_total - cells_run,
                      "autos.cells_run": cells_run})
    try:
        from autos.run_plots import sweep_figure

        with tempfile.TemporaryDirectory(prefix="autos-sweep-plot-") as tmp:
            labelled = [{**row, "label": RunKey.of_row(row).label} for row in rows]
            path = sweep_figure(labelled, f"transfer {target}", Path(tmp) / "accuracy_vs_sparsity.png")
            tracker.log_artifact(path, "plots")
    except Exception as exc:  # noqa: BLE001 - a figure is a convenience; the metrics are logged above
        log.warning("no sweep figure for %s (%s)", target, exc)


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
                # IRP on this target as the oracle: how much of its ticket AutoS and |w0| keep (autos.oracle)
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
