"""Sweep cells: the unit of work of the transfer stage, with a stable id and a result file of its own.

A cell is one (target, method, sparsity, seed): it selects the mask once and trains every variant of it (the
unmodified mask, then each sanity-check modifier, which re-uses the same selection: recomputing an IRP ticket or a
Lottery Jackpots search once per modifier would triple the most expensive cells). The dense run of a seed is the
cell (target, ``dense``, 0, seed).

A cell's id hashes everything that determines its rows: its key, the resolved settings it reads (recipe, pruning,
the method's settings, its modifiers), the prepared data's sha256, the device (and on a CPU the torch thread
count), the source of the code it runs (``cell_code_digest``: the cell loop and its method's module, with what they
import) and, for the methods that read the AutoS scorer alone, the feature settings and the trained scorer's sha256
(so retraining the scorer re-runs no baseline or dense cell, and adding a method re-runs none of the others).
Its rows are written atomically to ``<cache>/<cell id>.json`` as soon as it finishes, so a killed stage re-runs
only the cells without a file, and the assembled rows are byte-identical to an uninterrupted run (JSON floats
round-trip exactly). A result file that does not parse, is not this cell's, holds a row that is not a valid
``RunRow`` or does not match its checksum is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autos.codebase import SRC, code_digest
from autos.config import StudyConfig
from autos.errors import DataError
from autos.files import atomic_write_json
from autos.sweep.records import RunRow

log = logging.getLogger(__name__)

DENSE = "dense"
CELL_FORMAT = 1


@dataclass(frozen=True)
class CellKey:
    target: str
    method: str
    sparsity: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.target}/{self.method}@{self.sparsity:g}/seed{self.seed}"


@dataclass
class CellResult:
    """The rows of one cell (one per variant) and each run's per-epoch history, for MLflow."""

    key: CellKey
    rows: list[RunRow]
    histories: list[list[dict[str, float]]]
    cell_id: str = ""
    logged: bool = False  # whether the driver has mirrored it to MLflow
    mask: dict[str, Any] | None = None  # the unmodified mask, packed, where the oracle needs it (autos.sweep.oracle)


def plan_cells(cfg: StudyConfig, target: str) -> list[CellKey]:
    """Every cell of a target, in the order rows appear in results.json (seed, dense, method, sparsity)."""
    cells: list[CellKey] = []
    for seed in cfg.transfer.seeds:
        if cfg.transfer.dense:
            cells.append(CellKey(target, DENSE, 0.0, seed))
        for method in cfg.transfer.methods:
            cells.extend(CellKey(target, method, sparsity, seed) for sparsity in cfg.transfer.sparsities)
    return cells


# What a cell runs: ``run_cell`` and its import closure, with the method registry's package opaque (its __init__
# imports every method so that names resolve; a cell runs one method, whose module is added by name). Editing or
# adding a method re-runs that method's cells alone; editing the loop, the data path or the selection re-runs all.
CELL_ENTRY = "autos.sweep.run_cell"
REGISTRY_PACKAGE = "autos.pruners"
# Modules in that closure that cannot change a row: log lines and progress, the stall watchdog, the registry's list
# of imports (tests/test_cells.py checks it holds nothing else). Everything the cell does not import (MLflow, the
# report, figures, the CLI and API) is outside the closure already.
RESULT_NEUTRAL = ("autos.progress", "autos.watchdog", "autos.training.callbacks", REGISTRY_PACKAGE)


def cell_code_digest(method_module: str | None, src: Path = SRC) -> str:
    """sha256 of the code a cell runs: ``run_cell``'s closure plus ``method_module``'s (None: the dense cell).
    ``src``: the folder holding the ``autos`` package (another copy of the code, in tests)."""
    modules = [CELL_ENTRY] + ([method_module] if method_module else [])
    return code_digest(modules, opaque={REGISTRY_PACKAGE}, exclude=RESULT_NEUTRAL, src=src)


def cell_id(key: CellKey, inputs: Mapping[str, Any]) -> str:
    """Stable id: key + the inputs that determine the cell's rows (see the module docstring)."""
    payload = json.dumps({"format": CELL_FORMAT, "key": asdict(key), "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cell_inputs(cfg: StudyConfig, key: CellKey, *, method_settings: Mapping[str, Any], data_digest: str,
                scorer_digest: str | None, code: str, device_type: str, torch_threads: int,
                reads_scorer: bool = False) -> dict[str, Any]:
    """What a cell's rows depend on, as plain JSON values. ``code``: ``cell_code_digest`` of its method.
    ``device_type`` is the resolved device ('cpu', 'cuda'), not the config's 'auto': rows computed on a GPU must
    never be mixed with CPU rows on resume. On a CPU the rows depend on the torch thread count too (the order of
    floating-point sums), so a re-run with another count recomputes rather than mixing the two."""
    spec = cfg.transfer.targets[key.target]
    inputs: dict[str, Any] = {
        "recipe": cfg.training.with_epochs(spec.epochs).model_dump(mode="json"),
        "target": spec.model_dump(mode="json"),
        "pruning": cfg.pruning.model_dump(mode="json"),
        "data": data_digest,
        "code": code,
        "device": device_type,
        **({"torch_threads": torch_threads} if device_type == "cpu" else {}),
    }
    if key.method != DENSE:
        inputs.update(method_settings=dict(method_settings), modifiers=cfg.transfer.modifiers_for(key.method))
    if reads_scorer:  # only the scorer's methods read it and the feature settings: a change upstream of the
        # scorer re-runs their cells alone, every baseline and dense cell is taken from the cache
        inputs.update(scorer=scorer_digest, features=cfg.features.model_dump(mode="json"))
    return inputs


def scorer_digest(scorer_dir: Path) -> str:
    """The trained scorer's identity for the cells of methods that read it: the sha256 save_scorer recorded."""
    try:
        return str(json.loads((scorer_dir / "scorer.json").read_text()).get("weights_sha256"))
    except (OSError, ValueError) as exc:
        raise DataError(f"no readable trained scorer at {scorer_dir} ({exc}); run the train_scorer stage") from None


@dataclass(frozen=True)
class SweepPlan:
    """A target's cells with their ids, in ``plan_cells`` order, and per (method, seed) the key of what its cells
    share across sparsities (``autos.pruners.shared``): the hash of a cell's inputs but its sparsity."""

    cells: list[tuple[CellKey, str]]
    share_keys: dict[str, str]  # share_key_of(method, seed) -> key
    # cell id -> the id of the cell it waits for: a method whose cells share work (``Pruner.shares_work``) computes
    # it in its first cell of each seed; the others start once that one is done (autos.sweep.executors)
    after: dict[str, str] = field(default_factory=dict)

    def share_key(self, key: CellKey) -> str | None:
        return self.share_keys.get(share_key_of(key.method, key.seed))


def share_key_of(method: str, seed: int) -> str:
    return f"{method}/{seed}"


def plan_sweep(cfg: StudyConfig, target: str, *, data_digest: str, scorer_dir: Path, device_type: str,
               torch_threads: int) -> SweepPlan:
    """Every cell of ``target`` with its id, in ``plan_cells`` order, and what they share. Each method's registry
    record says what its cells read (its module's code; the scorer, read from ``scorer_dir`` only if a method
    reads it)."""
    from autos.pruners import PRUNERS

    records = {m: PRUNERS.record(m) for m in cfg.transfer.methods}
    scorer = scorer_digest(scorer_dir) if any(r.reads_scorer for r in records.values()) else None
    code = {DENSE: cell_code_digest(None), **{m: cell_code_digest(r.module) for m, r in records.items()}}

    def inputs(key: CellKey) -> dict[str, Any]:
        record = records.get(key.method)
        settings = cfg.transfer.settings_of(key.method).model_dump(mode="json") if record else {}
        return cell_inputs(cfg, key, method_settings=settings, data_digest=data_digest, scorer_digest=scorer,
                           code=code[key.method], device_type=device_type, torch_threads=torch_threads,
                           reads_scorer=bool(record and record.reads_scorer))

    keys = plan_cells(cfg, target)
    shared = {share_key_of(k.method, k.seed): cell_id(CellKey(k.target, k.method, -1.0, k.seed),
                                                      {**inputs(k), "modifiers": None, "shared": True})
              for k in keys if k.method != DENSE}
    cells = [(key, cell_id(key, inputs(key))) for key in keys]
    sharing = {m for m in records if PRUNERS.get(m).shares_work(cfg.transfer.settings_of(m))}
    first: dict[str, str] = {}
    after = {}
    for key, cid in cells:
        if key.method in sharing:
            group = share_key_of(key.method, key.seed)
            if group in first:
                after[cid] = first[group]
            else:
                first[group] = cid
    return SweepPlan(cells=cells, share_keys=shared, after=after)


class CellStore:
    """Result files of finished cells under one folder (the stage's cache, not its DVC output: DVC deletes a
    stage's outputs before re-running it, and the finished cells must survive exactly that)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, cid: str) -> Path:
        return self.folder / f"{cid}.json"

    def load(self, key: CellKey, cid: str) -> CellResult | None:
        """The cell's result if its file is there and sound; else None (a bad file is removed with a warning).

        Sound: valid JSON of this cell (its id and key), every row a valid ``RunRow`` of this cell (finite numbers
        in range), and the checksum of its content as written: a file edited by hand, truncated or copied from
        another cell is recomputed, never averaged into the metrics."""
        path = self.path(cid)
        if not path.exists():
            return None
        try:
            if not path.is_file():
                raise ValueError("it is not a regular file")
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or raw.get("cell_id") != cid or raw.get("key") != asdict(key):
                raise ValueError("it belongs to another cell")
            rows, histories = raw["rows"], raw["histories"]
            if not isinstance(rows, list) or not isinstance(histories, list) or len(rows) != len(histories):
                raise ValueError("rows and histories do not match")
            if raw.get("checksum") != _checksum(raw):
                raise ValueError("its content does not match its checksum (edited or damaged)")
            typed = [RunRow.from_json(row, f"row {i}") for i, row in enumerate(rows)]
            if any(row.target != key.target or row.method != key.method or row.seed != key.seed
                   or row.sparsity != key.sparsity for row in typed):
                raise ValueError("its rows belong to another cell")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cell %s: result file %s is unusable (%s); recomputing it", key.name, path, exc)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            return None
        return CellResult(key, typed, histories, cell_id=cid, logged=bool(raw.get("logged")), mask=raw.get("mask"))

    def save(self, result: CellResult) -> None:
        payload: dict[str, Any] = {
            "cell_id": result.cell_id, "key": asdict(result.key), "rows": [row.to_json() for row in result.rows],
            "histories": result.histories, "logged": result.logged,
            **({"mask": result.mask} if result.mask is not None else {}),
        }
        atomic_write_json(self.path(result.cell_id), {**payload, "checksum": _checksum(payload)})


def _checksum(payload: Mapping[str, Any]) -> str:
    """sha256 of a cell file's content but for ``logged`` (set again once the rows reach MLflow)."""
    content = {k: payload.get(k) for k in ("cell_id", "key", "rows", "histories", "mask")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=float).encode()).hexdigest()


def failed_cells_message(failures: Sequence[tuple[CellKey, str, str]]) -> str:
    lines = [f"{len(failures)} cell(s) failed after retries (finished cells are kept; re-run to retry):"]
    lines += [f"  - {key.name} [{cid}]: {error}" for key, cid, error in failures]
    return "\n".join(lines)
