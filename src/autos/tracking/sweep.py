"""The transfer sweep in MLflow: ``SweepRuns`` (``autos.sweep.executors.run_cells``'s hooks, called in the driver only)
and the parent run's summary (``log_sweep_summary``). What is logged where: stages/transfer.py's docstring.

It changes no result row, so it is left out of the cell code hash (``autos.sweep.cells.RESULT_NEUTRAL``).
"""

from __future__ import annotations

import logging
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autos.config import ExecutionConfig
from autos.data.prepared import PreparedData
from autos.sweep.cells import DENSE, CellKey, CellResult, CellStore
from autos.sweep.executors import CellTask, run_cells
from autos.sweep.records import RunKey, RunRow
from autos.tracking import RunHandle, Tracker

log = logging.getLogger("autos.tracking.sweep")

PER_LAYER = ("layer_density", "layer_effective_density")


def metric_label(label: str) -> str:
    """A run label as part of an MLflow metric key (letters, digits, ``_ - . /`` and spaces): ``+`` -> ``-``."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "-", label)


def parent_metrics(rows: Sequence[RunRow]) -> dict[str, float]:
    """Final-epoch test accuracy over seeds, in percent rounded to 0.01 (as ``metrics/transfer_<target>.json``), per
    (label, sparsity) key ``acc/dense`` or ``acc/<label>/s<sparsity %>``: ``<key>/mean``, ``<key>/n`` (seeds) and,
    from two seeds on, ``<key>/std`` (sample standard deviation): which method won, and with what spread."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        run = row.key
        key = "acc/dense" if run.method == DENSE else f"acc/{metric_label(run.label)}/s{run.sparsity * 100:.4g}"
        groups[key].append(100.0 * row.final_test_acc)
    metrics: dict[str, float] = {}
    for key, values in groups.items():
        metrics[f"{key}/mean"] = round(statistics.fmean(values), 2)
        if len(values) > 1:
            metrics[f"{key}/std"] = round(statistics.stdev(values), 2)
        metrics[f"{key}/n"] = len(values)
    return metrics


TAG_REFERENCE = "autos.reference_to"  # a cached cell's run under a later sweep: the id of the run that computed it


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
        self.done_here: set[str] = set()  # their ids: logged when they finished

    @staticmethod
    def _tags(run: RunKey, cid: str) -> dict[str, Any]:
        return {"stage": "transfer", "cell": cid, **run.tags(), "modifier": run.modifier or "none"}

    def on_start(self, key: CellKey, cid: str) -> None:
        if not self.tracker.enabled:
            return
        run = RunKey(key.target, key.method, key.sparsity, key.seed, source=key.source)
        self.started[cid] = self.clock()
        self.open[cid] = self.tracker.start_run(
            run.title, parent=self.parent_id, tags=self._tags(run, cid), start_time=self.started[cid],
            params={"method": run.method, "sparsity": run.sparsity, "seed": run.seed, "cell": cid})

    def on_finish(self, cell: CellResult) -> None:
        self.computed += 1
        self.done_here.add(cell.cell_id)
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
        """Every cell in planned order. A cell this process computed is logged already. A cached cell gets a run
        under this sweep's parent too, so that every experiment lists every cell: a *reference* to the run that
        computed it (its numbers copied, tag ``autos.reference_to``; nothing retrained), or, when no such run is in
        this store (a kill between saving the rows and logging them, another store), the full record, tagged
        ``autos.restored``."""
        if not self.tracker.enabled or cell.cell_id in self.done_here:
            return
        original = self.tracker.find_run("cell", cell.cell_id, without=TAG_REFERENCE)
        seconds = sum(r.train_seconds or 0.0 for r in cell.rows)
        seconds += (cell.rows[0].select_seconds or 0.0) if cell.rows else 0.0
        self._log_cell(cell, None, self.clock() - seconds, restored=original is None, reference=original)
        if not cell.logged:
            cell.logged = True
            self.store.save(cell)

    def run(self, cells: Sequence[tuple[CellKey, str]], task: CellTask, data: PreparedData,
            execution: ExecutionConfig, after: Mapping[str, str] | None = None,
            validation: PreparedData | None = None) -> list[CellResult]:
        """``run_cells`` with these hooks; cells still open when it raises end KILLED (an interrupt) or FAILED."""
        try:
            return run_cells(cells, task, data, self.store, execution, self.on_done, on_start=self.on_start,
                             on_finish=self.on_finish, on_fail=self.on_fail, after=after, validation=validation)
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
                  restored: bool = False, reference: str | None = None) -> None:
        """The cell's rows: the method's own row on the cell's run, each variant on a run nested under it;
        ``reference``: the id of the run that computed them (the rows' numbers only, no figure)."""
        end = self.clock()
        start = started if started is not None else end
        runs = [row.key for row in cell.rows]
        if handle is None:  # not opened at start (a restored cell)
            head = RunKey(cell.key.target, cell.key.method, cell.key.sparsity, cell.key.seed, source=cell.key.source)
            handle = self.tracker.start_run(
                head.title, parent=self.parent_id, start_time=start,
                tags={**self._tags(head, cell.cell_id), **({"autos.restored": "true"} if restored else {}),
                      **({TAG_REFERENCE: reference} if reference else {})},
                params={"method": head.method, "sparsity": head.sparsity, "seed": head.seed, "cell": cell.cell_id})
        # variants ran one after another, after the method's own row: place each by the seconds the rest took
        seconds = [row.train_seconds or 0.0 for row in cell.rows]
        opened = [handle]
        try:
            with tempfile.TemporaryDirectory(prefix="autos-run-plots-") as tmp:
                for i, (run, row, history) in enumerate(zip(runs, cell.rows, cell.histories, strict=True)):
                    run_end = max(start, end - sum(seconds[i + 1:]))
                    target = handle
                    if run.modifier is not None:
                        target = self.tracker.start_run(
                            run.title, parent=handle,
                            tags={**self._tags(run, cell.cell_id), **({TAG_REFERENCE: reference} if reference else {})},
                            start_time=max(start, run_end - seconds[i]),
                            params={"method": run.method, "sparsity": run.sparsity, "seed": run.seed,
                                    "cell": cell.cell_id})
                        opened.append(target)
                    self._log_row(target, run, row, history, Path(tmp) / f"{i}", figure=reference is None)
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
    def _log_row(handle: RunHandle, run: RunKey, run_row: RunRow, history: Sequence[Mapping[str, float]],
                 tmp: Path, figure: bool = True) -> None:
        row = run_row.to_json()
        handle.log_params({"modifier": run.modifier or "none", "info": row.get("info", {})})
        handle.log_history(history)
        handle.log_metrics({k: v for k, v in row.items() if k not in (*PER_LAYER, "info", "seed")})
        if "layer_density" in row:
            handle.log_dict({k: row[k] for k in PER_LAYER if k in row}, "layer_density.json")
        if not figure:
            return
        try:
            from autos.tracking.run_plots import run_figure

            tmp.mkdir(parents=True, exist_ok=True)
            path = run_figure(history, row.get("layer_density"), run.title, tmp / "training_and_density.png")
            handle.log_artifact(path, "plots")
        except Exception as exc:  # noqa: BLE001 - a figure is a convenience; the numbers are logged above
            log.warning("no figure for MLflow run %s (%s)", handle.name, exc)


def log_sweep_summary(tracker: Tracker, target: str, rows: Sequence[RunRow], *, cells_total: int,
                      cells_run: int) -> None:
    """The parent run's summary: accuracy mean, std and n over seeds per (label, sparsity), the sweep figure, cell
    counts."""
    if not tracker.enabled:
        return
    tracker.log_metrics(parent_metrics(rows))
    tracker.set_tags({"autos.cells_total": cells_total, "autos.cells_cached": cells_total - cells_run,
                      "autos.cells_run": cells_run})
    try:
        from autos.tracking.run_plots import sweep_figure

        with tempfile.TemporaryDirectory(prefix="autos-sweep-plot-") as tmp:
            labelled = [{**row.to_json(), "label": row.label} for row in rows]
            path = sweep_figure(labelled, f"transfer {target}", Path(tmp) / "accuracy_vs_sparsity.png")
            tracker.log_artifact(path, "plots")
    except Exception as exc:  # noqa: BLE001 - a figure is a convenience; the metrics are logged above
        log.warning("no sweep figure for %s (%s)", target, exc)
