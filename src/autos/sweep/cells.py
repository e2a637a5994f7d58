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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
    source: int | None = None  # the source run whose scorer the cell's method reads (autos.sweep.plan)

    @property
    def name(self) -> str:
        source = f"/source{self.source}" if self.source is not None else ""
        return f"{self.target}/{self.method}@{self.sparsity:g}/seed{self.seed}{source}"


@dataclass
class CellResult:
    """The rows of one cell (one per variant) and each run's per-epoch history, for MLflow."""

    key: CellKey
    rows: list[RunRow]
    histories: list[list[dict[str, float]]]
    cell_id: str = ""
    logged: bool = False  # whether the driver has mirrored it to MLflow
    mask: dict[str, Any] | None = None  # the unmodified mask, packed, where the oracle needs it (autos.sweep.oracle)


def cell_id(key: CellKey, inputs: Mapping[str, Any]) -> str:
    """Stable id: key + the inputs that determine the cell's rows (see the module docstring)."""
    payload = json.dumps({"format": CELL_FORMAT, "key": asdict(key), "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


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
