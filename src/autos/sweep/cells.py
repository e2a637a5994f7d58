"""Sweep cells: the unit of work of the transfer stage, with a stable id and a result file of its own.

A cell is one (target, method, sparsity, seed): it selects the mask once and trains every variant of it (the
unmodified mask, then each sanity-check modifier, which re-uses the same selection: recomputing an IRP ticket or a
Lottery Jackpots search once per modifier would triple the most expensive cells). The dense run of a seed is the
cell (target, ``dense``, 0, seed).

A cell's id hashes everything that determines its rows: its key, the resolved settings it reads (recipe, pruning,
the method's settings, its modifiers), the prepared data's sha256, the library's source code and, for AutoS alone,
the feature settings and the trained scorer's sha256 (so retraining the scorer re-runs no baseline or dense cell).
Its rows are written atomically to ``<cache>/<cell id>.json`` as soon as it finishes, so a killed stage re-runs
only the cells without a file, and the assembled rows are byte-identical to an uninterrupted run (JSON floats
round-trip exactly). A result file that does not parse or does not match its id is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autos.config import StudyConfig
from autos.files import atomic_write_json

log = logging.getLogger(__name__)

DENSE = "dense"
SOURCE_ROOT = Path(__file__).resolve().parent
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
    rows: list[dict[str, Any]]
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


# Library modules that cannot change a cell's rows (MLflow, log lines, figures, the report, the user-facing CLI and
# API): editing them must not throw away days of finished cells. tests/test_cells.py checks that the code computing
# a cell (autos.sweep.run_cell and what it imports) imports none of them.
RESULT_NEUTRAL = ("tracking.py", "mlflow_scorer.py", "run_plots.py", "sweep_tracking.py", "report", "cli.py",
                  "api.py", "data_adapters.py", "methods_doc.py")


def source_digest(root: Path = SOURCE_ROOT) -> str:
    """sha256 of the library's source, but for ``RESULT_NEUTRAL``: a code change invalidates every cached cell
    (DVC re-runs the stage for the same reason, and a cached row computed by other code must not be mixed in)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in RESULT_NEUTRAL:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cell_id(key: CellKey, inputs: Mapping[str, Any]) -> str:
    """Stable id: key + the inputs that determine the cell's rows (see the module docstring)."""
    payload = json.dumps({"format": CELL_FORMAT, "key": asdict(key), "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cell_inputs(cfg: StudyConfig, key: CellKey, *, method_settings: Mapping[str, Any], data_digest: str,
                scorer_digest: str | None, code_digest: str, device_type: str) -> dict[str, Any]:
    """What a cell's rows depend on, as plain JSON values. ``device_type`` is the resolved device ('cpu',
    'cuda'), not the config's 'auto': rows computed on a GPU must never be mixed with CPU rows on resume."""
    spec = cfg.transfer.targets[key.target]
    inputs: dict[str, Any] = {
        "recipe": cfg.training.with_epochs(spec.epochs).model_dump(mode="json"),
        "target": spec.model_dump(mode="json"),
        "pruning": cfg.pruning.model_dump(mode="json"),
        "data": data_digest,
        "code": code_digest,
        "device": device_type,
    }
    if key.method != DENSE:
        inputs.update(method_settings=dict(method_settings), modifiers=cfg.transfer.modifiers_for(key.method))
    if key.method == "autos":  # only AutoS reads the scorer and the feature settings: a change upstream of the
        # scorer re-runs its cells alone, every baseline and dense cell is taken from the cache
        inputs.update(scorer=scorer_digest, features=cfg.features.model_dump(mode="json"))
    return inputs


class CellStore:
    """Result files of finished cells under one folder (the stage's cache, not its DVC output: DVC deletes a
    stage's outputs before re-running it, and the finished cells must survive exactly that)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, cid: str) -> Path:
        return self.folder / f"{cid}.json"

    def load(self, key: CellKey, cid: str) -> CellResult | None:
        path = self.path(cid)
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            if raw.get("cell_id") != cid or raw.get("key") != asdict(key):
                raise ValueError("it belongs to another cell")
            rows, histories = raw["rows"], raw["histories"]
            if not isinstance(rows, list) or not isinstance(histories, list) or len(rows) != len(histories):
                raise ValueError("rows and histories do not match")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cell %s: result file %s is unreadable (%s); recomputing it", key.name, path, exc)
            path.unlink(missing_ok=True)
            return None
        return CellResult(key, rows, histories, cell_id=cid, logged=bool(raw.get("logged")), mask=raw.get("mask"))

    def save(self, result: CellResult) -> None:
        atomic_write_json(self.path(result.cell_id), {
            "cell_id": result.cell_id, "key": asdict(result.key), "rows": result.rows,
            "histories": result.histories, "logged": result.logged,
            **({"mask": result.mask} if result.mask is not None else {}),
        })


def failed_cells_message(failures: Sequence[tuple[CellKey, str, str]]) -> str:
    lines = [f"{len(failures)} cell(s) failed after retries (finished cells are kept; re-run to retry):"]
    lines += [f"  - {key.name} [{cid}]: {error}" for key, cid, error in failures]
    return "\n".join(lines)
