"""Run a target's sweep cells: in this process (``execution.backend: local``) or as Ray tasks (``ray``).

Either way the driver (the stage process) skips cells whose result file exists (``autos.sweep.cells.CellStore``), saves
each finished cell's rows at once, and tells the caller what happens through hooks, all called in the driver, so
MLflow is written by one process only and ``results.json`` has the same rows whatever the backend or the
interruptions:

* ``on_start(key, cell_id)``: a cell starts. Locally right before it runs; on Ray when it is handed to a free
  slot (the driver keeps only as many cells in flight as the cluster's CPUs and GPUs fit, so a submitted cell is a
  running one). Never called for cells restored from the cache.
* ``on_finish(result)``: a cell computed by this process finished and its result file is saved (completion order).
* ``on_fail(key, cell_id, message)``: a cell failed (on Ray after its retries). Locally the exception then
  propagates and ends the sweep; on Ray the other cells go on.
* ``on_done(result)``: every result, cached or computed, in the cells' planned order.

A line per finished cell reports the sweep's progress with an ETA (``autos.progress.SweepProgress``).

Ray: with no ``execution.address`` (and no ``RAY_ADDRESS``) an embedded local instance starts with this machine's
CPUs and GPUs; with an address, the stage joins that cluster (``ray start --head`` / ``ray start --address``). A
cell asks for ``execution.num_cpus`` / ``num_gpus`` (fractions pack several small trainings on one GPU); a worker
gets the cell's key, a small ``CellTask`` (the config, paths) and the prepared data, put once into Ray's object
store by the driver (no module-level cache in the workers), and returns the rows. A cell that raises, runs out of
memory or loses its worker is retried ``execution.max_retries`` times, then reported with its id and error while the
other cells go on; the stage exits non-zero at the end, with every finished cell kept. The number of cells in flight
follows the cluster's resources as they are when a slot frees (nodes that join are used); an autoscaler that only
adds nodes for queued work sees no queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autos.config import ExecutionConfig, StudyConfig
from autos.data.prepared import PreparedData
from autos.device import resolve_device, torch_threads
from autos.errors import AutosError
from autos.models import model_for
from autos.progress import Clock, SweepProgress, percent
from autos.sweep.cells import DENSE, CellKey, CellResult, CellStore, failed_cells_message
from autos.sweep.plan import share_key_of
from autos.watchdog import Watchdog, active, beat, stall_seconds_from_env, watching

log = logging.getLogger(__name__)


class ExecutionError(AutosError):
    """A backend that cannot start, a cluster that cannot run a cell, or cells that failed after retries."""


@dataclass(frozen=True)
class CellTask:
    """What a worker needs besides the cell's key and the data: plain, picklable values only."""

    cfg: StudyConfig
    root: Path
    cache_dir: Path
    torch_threads: int | None  # CPU threads a cell computes with (None: the process's count as it is)
    share_keys: Mapping[str, str] = field(default_factory=dict)  # autos.sweep.plan.SweepPlan.share_keys
    scorer_root: Path | None = None  # the scorers of the source runs: <scorer_root>/<source seed>/


def execute_cell(task: CellTask, key: CellKey, data: PreparedData,
                 validation: PreparedData | None = None) -> CellResult:
    """Run one cell (in the driver or in a Ray worker) with ``task.torch_threads`` CPU threads; ``validation``:
    the images held out of ``data``'s training set, evaluated after every training."""
    from autos.study import load_plugins
    from autos.sweep.run_cell import run_cell  # run_cell imports the pruners; workers pay for it once

    load_plugins(task.cfg.plugins)  # a Ray worker: the study's own methods register here too
    spec = task.cfg.transfer.targets[key.target]

    def build(seed: int) -> torch.nn.Module:
        return model_for(spec, num_classes=data.num_classes, input_size=data.image_size, seed=seed)

    # in the stage process the stage's watchdog is active; a Ray worker opens its own for the cell
    own = None if active() is not None else Watchdog(stall_seconds_from_env())
    with torch_threads(task.torch_threads), watching(own) if own is not None else contextlib.nullcontext():
        beat(f"cell {key.name}")
        scorer_dir = task.scorer_root / str(key.source) if task.scorer_root and key.source is not None else None
        return run_cell(task.cfg, key, data, build=build, device=resolve_device(task.cfg.device), root=task.root,
                        cache_dir=task.cache_dir, validation=validation, scorer_dir=scorer_dir,
                        share_key=task.share_keys.get(share_key_of(key.method, key.seed, key.source)))


OnDone = Callable[[CellResult], None]
OnStart = Callable[[CellKey, str], None]
OnFail = Callable[[CellKey, str, str], None]


def describe(key: CellKey) -> str:
    """A cell for a person: ``snip s=98% seed 0``, ``dense seed 0``."""
    if key.method == DENSE:
        return f"{key.method} seed {key.seed}"
    return f"{key.method} s={percent(key.sparsity)} seed {key.seed}"


def error_line(exc: BaseException) -> str:
    """The last line of an exception's message (Ray wraps the worker's traceback in it), or its type."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def run_cells(cells: Sequence[tuple[CellKey, str]], task: CellTask, data: PreparedData, store: CellStore,
              execution: ExecutionConfig, on_done: OnDone, *, on_start: OnStart | None = None,
              on_finish: OnDone | None = None,
              on_fail: OnFail | None = None, clock: Clock = time.monotonic,
              after: Mapping[str, str] | None = None, validation: PreparedData | None = None) -> list[CellResult]:
    """Run every (key, cell id) not yet in ``store``; return all results in the given order (hooks: module doc).

    ``after``: cell id -> the cell it waits for (``SweepPlan.after``: the cells of a method at its other sparsities
    wait for the one that computes their shared work, so no slot sits idle on a lock). Locally cells run in the
    planned order, where every prerequisite comes first."""
    results: dict[str, CellResult] = {}
    todo: list[tuple[CellKey, str]] = []
    for key, cid in cells:
        cached = store.load(key, cid)
        if cached is not None:
            results[cid] = cached
        else:
            todo.append((key, cid))
    name = f"transfer {cells[0][0].target}" if cells else "transfer"
    progress = SweepProgress(name, len(cells), cached=len(results), clock=clock)
    log.info("%s: %d cells, %d already finished, %d to run on the %s backend", name, len(cells), len(results),
             len(todo), execution.backend)
    emitted = 0

    def emit_ready() -> None:
        """Hand finished results to on_done in planned order (rows and MLflow runs keep their order)."""
        nonlocal emitted
        while emitted < len(cells) and cells[emitted][1] in results:
            on_done(results[cells[emitted][1]])
            emitted += 1

    def start(key: CellKey, cid: str) -> None:
        progress.started(cid)
        log.info("%s: cell %d/%d started (%s)", name, progress.index(), len(cells), describe(key))
        if on_start is not None:
            on_start(key, cid)

    def finish(key: CellKey, cid: str, result: CellResult) -> None:
        result.cell_id = cid
        store.save(result)  # before anything else: a kill after this line loses nothing
        results[cid] = result
        log.info("%s", progress.finished(cid, describe(key)))
        if on_finish is not None:
            on_finish(result)
        emit_ready()

    def fail(key: CellKey, cid: str, message: str) -> None:
        log.error("%s: %s", progress.failed(cid, f"{describe(key)} [{cid}]"), message)
        if on_fail is not None:
            on_fail(key, cid, message)

    emit_ready()
    failures: list[tuple[CellKey, str, str]] = []
    if execution.backend == "local":
        for key, cid in todo:
            start(key, cid)
            try:
                result = execute_cell(task, key, data, validation)
            except Exception as exc:
                fail(key, cid, error_line(exc))
                raise
            finish(key, cid, result)
    else:
        failures = _run_on_ray(todo, task, (data, validation), execution, start, finish, fail, after)
    if failures:
        raise ExecutionError(failed_cells_message(failures))
    return [results[cid] for _, cid in cells]


# --------------------------------------------------------------------------- Ray


def _check_address(address: str, timeout: float = 5.0) -> None:
    """A Ray address that does not answer fails in seconds with its name (ray.init alone retries for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        hostport = address.removeprefix("ray://") if address != "auto" else ""
    else:
        hostport = address
    if not hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ExecutionError(
            f"Ray cluster at {address!r} does not answer ({exc}); start it with `ray start --head`, fix "
            "execution.address / RAY_ADDRESS, or use execution.backend: local") from None


def _connect(ray: Any, address: str) -> None:
    """``ray.init`` on an existing cluster; no cluster behind 'auto', or a token the cluster refuses, is one
    sentence with the fix (Ray 2.59+ authenticates by token: docs.ray.io, ray-security/token-auth)."""
    try:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    except ray.exceptions.AuthenticationError as exc:
        raise ExecutionError(
            f"the Ray cluster at {address!r} refused this process's token ({_first_sentence(exc)}); run "
            "`ray get-auth-token` on the head node and set RAY_AUTH_TOKEN to it here and on every node") from None
    except ConnectionError as exc:
        raise ExecutionError(
            f"no Ray cluster found at {address!r} ({_first_sentence(exc)}); start one with `ray start --head`, "
            "set execution.address / RAY_ADDRESS to its host:port, or use execution.backend: local") from None


def _first_sentence(exc: BaseException) -> str:
    """Ray's own message up to its first full stop (the rest repeats advice our sentence gives)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def _start_ray(execution: ExecutionConfig) -> Any:
    import ray

    address = execution.address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        if address:
            _check_address(address)
            _connect(ray, address)
        else:  # embedded: this machine's CPUs and GPUs
            ray.init(log_to_driver=False, include_dashboard=False)
    resources = ray.cluster_resources()
    for name, wanted in (("CPU", execution.num_cpus or 1.0), ("GPU", execution.num_gpus)):
        have = float(resources.get(name, 0.0))
        if wanted > have:
            raise ExecutionError(f"a cell asks for {wanted:g} {name}(s) (execution.num_{name.lower()}s) but the Ray "
                                 f"cluster has {have:g}; lower it or add nodes")
    return ray


def slots(resources: Mapping[str, float], execution: ExecutionConfig) -> int:
    """How many cells the cluster's ``resources`` run at once (at least 1)."""
    fits = [float(resources.get("CPU", 0.0)) / (execution.num_cpus or 1.0)]
    if execution.num_gpus > 0:
        fits.append(float(resources.get("GPU", 0.0)) / execution.num_gpus)
    return max(1, int(min(fits) + 1e-9))


def next_ready(queue: Sequence[tuple[CellKey, str]], after: Mapping[str, str], waiting: set[str]) -> int | None:
    """The index of the first queued cell whose prerequisite (``after``) is not ``waiting`` any more (finished or
    failed, or never part of this run), else None."""
    return next((i for i, (_, cid) in enumerate(queue) if after.get(cid) not in waiting), None)


def _run_on_ray(todo: Sequence[tuple[CellKey, str]], task: CellTask,
                data: tuple[PreparedData, PreparedData | None], execution: ExecutionConfig,
                start: Callable[[CellKey, str], None], finish: Callable[[CellKey, str, CellResult], None],
                fail: Callable[[CellKey, str, str], None],
                after: Mapping[str, str] | None = None) -> list[tuple[CellKey, str, str]]:
    if not todo:
        return []
    ray = _start_ray(execution)
    remote = ray.remote(execute_cell).options(
        num_cpus=execution.num_cpus or 1.0, num_gpus=execution.num_gpus,
        max_retries=execution.max_retries,  # lost workers (a crash, an out-of-memory kill)
        retry_exceptions=execution.max_retries > 0,  # exceptions raised by the cell itself
    )
    # once: every cell reads the same objects (the training and the validation images)
    task_ref, data_ref, validation_ref = ray.put(task), ray.put(data[0]), ray.put(data[1])
    queue = list(todo)
    pending: dict[Any, tuple[CellKey, str]] = {}
    failures: list[tuple[CellKey, str, str]] = []
    waiting = {cid for _, cid in todo}  # not settled yet: a cell ``after`` names one of these waits for it

    while queue or pending:
        # Only as many cells in flight as fit at once: a submitted cell starts now, so its MLflow run is live.
        free = slots(ray.cluster_resources(), execution) - len(pending)
        while queue and (free > 0 or not pending):
            index = next_ready(queue, after or {}, waiting)
            if index is None:
                if pending:
                    break  # every queued cell waits for one in flight
                index = 0  # nothing in flight to wait for (cannot happen with a plan's prerequisites)
            key, cid = queue.pop(index)
            start(key, cid)
            pending[remote.remote(task_ref, key, data_ref, validation_ref)] = (key, cid)
            free -= 1
        done, _ = ray.wait(list(pending), num_returns=1)
        key, cid = pending.pop(done[0])
        waiting.discard(cid)
        try:
            result = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 - any cell failure is reported with its id; the rest go on
            message = error_line(exc)
            failures.append((key, cid, message))
            fail(key, cid, f"{message} (after {execution.max_retries} retries)")
            continue
        finish(key, cid, result)
    return failures
