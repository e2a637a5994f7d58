"""A target's sweep, planned: every cell (``plan_cells``), what each one's rows depend on (``cell_inputs``, hashed
into its id by ``autos.sweep.cells.cell_id``), what cells share across sparsities, and which waits for which.

Cells of a method that reads the AutoS scorer come once per source run (``sources.seeds``) that its target seed
meets: every source with every target seed (``sources.pairing: crossed``) or source i with target seed i
(``paired``). Their rows carry the source (``RunRow.source``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autos.codebase import SRC, code_digest
from autos.config import StudyConfig
from autos.errors import DataError
from autos.sweep.cells import DENSE, CellKey, cell_id

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
    ``src``: the folder holding the ``autos`` package (another copy of the code, in tests). A method from a plugin
    (a module outside ``autos``) adds its own module file's bytes."""
    if method_module is not None and method_module.split(".")[0] != "autos":
        spec = importlib.util.find_spec(method_module)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        if origin is None or not origin.is_file():
            raise DataError(f"no source file for plugin module {method_module!r} (its cells key on its code)")
        digest = hashlib.sha256(cell_code_digest(None, src).encode())
        digest.update(method_module.encode() + origin.read_bytes())
        return digest.hexdigest()
    modules = [CELL_ENTRY] + ([method_module] if method_module else [])
    return code_digest(modules, opaque={REGISTRY_PACKAGE}, exclude=RESULT_NEUTRAL, src=src)


def sources_for(cfg: StudyConfig, seed: int) -> list[int]:
    """The source runs a target seed meets (``sources.pairing``)."""
    if cfg.sources.pairing == "paired":
        return [cfg.sources.seeds[cfg.transfer.seeds.index(seed)]]
    return list(cfg.sources.seeds)


def plan_cells(cfg: StudyConfig, target: str, scorer_methods: Collection[str] = ()) -> list[CellKey]:
    """Every cell of a target, in the order rows appear in results.json (seed, dense, method, sparsity, source).
    ``scorer_methods``: the methods that read the AutoS scorer (one cell per source they meet)."""
    cells: list[CellKey] = []
    for seed in cfg.transfer.seeds:
        if cfg.transfer.dense:
            cells.append(CellKey(target, DENSE, 0.0, seed))
        for method in cfg.transfer.methods:
            for sparsity in cfg.transfer.sparsities:
                if method in scorer_methods:
                    cells += [CellKey(target, method, sparsity, seed, source) for source in sources_for(cfg, seed)]
                else:
                    cells.append(CellKey(target, method, sparsity, seed))
    return cells


def cell_inputs(cfg: StudyConfig, key: CellKey, *, method_settings: Mapping[str, Any], data_digest: str,
                scorer_digest: str | None, code: str, device_type: str, torch_threads: int,
                reads_scorer: bool = False) -> dict[str, Any]:
    """What a cell's rows depend on, as plain JSON values. ``code``: ``cell_code_digest`` of its method.
    ``device_type`` is the resolved device ('cpu', 'cuda'), not the config's 'auto': rows computed on a GPU must
    never be mixed with CPU rows on resume. On a CPU the rows depend on the torch thread count too (the order of
    floating-point sums), so a re-run with another count recomputes rather than mixing the two. ``scorer_digest``:
    the scorer of the cell's source."""
    spec = cfg.transfer.targets[key.target]
    inputs: dict[str, Any] = {
        "recipe": cfg.training.with_epochs(spec.epochs).model_dump(mode="json"),
        "target": spec.model_dump(mode="json"),
        "pruning": cfg.pruning.model_dump(mode="json"),
        "data": data_digest,
        "code": code,
        "device": device_type,
        **({"torch_threads": torch_threads} if device_type == "cpu" else {}),
        # the training images a cell trains on: all but the validation split held out with this seed
        **({"validation": [cfg.transfer.validation_per_class, cfg.seed]} if cfg.transfer.validation_per_class else {}),
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


def share_key_of(method: str, seed: int, source: int | None = None) -> str:
    return f"{method}/{seed}" + (f"/{source}" if source is not None else "")


@dataclass(frozen=True)
class SweepPlan:
    """A target's cells with their ids, in ``plan_cells`` order, and per (method, seed, source) the key of what its
    cells share across sparsities (``autos.pruners.shared``): the hash of a cell's inputs but its sparsity."""

    cells: list[tuple[CellKey, str]]
    share_keys: dict[str, str]  # share_key_of(method, seed, source) -> key
    # cell id -> the id of the cell it waits for: a method whose cells share work (``Pruner.shares_work``) computes
    # it in its first cell of each (seed, source); the others start once that one is done (autos.sweep.executors)
    after: dict[str, str] = field(default_factory=dict)

    def share_key(self, key: CellKey) -> str | None:
        return self.share_keys.get(share_key_of(key.method, key.seed, key.source))


def plan_sweep(cfg: StudyConfig, target: str, *, data_digest: str, scorer_dir: Path, device_type: str,
               torch_threads: int) -> SweepPlan:
    """Every cell of ``target`` with its id, in ``plan_cells`` order, and what they share. Each method's record
    says what its cells read (its module's code; the scorer of their source, read from ``scorer_dir/<source>``
    only if a method reads one)."""
    from autos.pruners import PRUNERS
    from autos.study import method_records

    records = method_records(cfg)
    readers = {m for m, r in records.items() if r.reads_scorer}
    scorers = {s: scorer_digest(scorer_dir / str(s)) for s in cfg.sources.seeds} if readers else {}
    code = {DENSE: cell_code_digest(None), **{m: cell_code_digest(r.module) for m, r in records.items()}}

    def inputs(key: CellKey) -> dict[str, Any]:
        record = records.get(key.method)
        settings = cfg.transfer.settings_of(key.method).model_dump(mode="json") if record else {}
        return cell_inputs(cfg, key, method_settings=settings, data_digest=data_digest,
                           scorer_digest=scorers.get(key.source) if key.source is not None else None,
                           code=code[key.method], device_type=device_type, torch_threads=torch_threads,
                           reads_scorer=key.method in readers)

    keys = plan_cells(cfg, target, readers)
    cells = [(key, cell_id(key, inputs(key))) for key in keys]
    shared = {share_key_of(k.method, k.seed, k.source):
              cell_id(CellKey(k.target, k.method, -1.0, k.seed, k.source), {**inputs(k), "modifiers": None,
                                                                            "shared": True})
              for k in keys if k.method != DENSE}
    sharing = {m for m in records if PRUNERS.get(cfg.transfer.registered(m)).shares_work(cfg.transfer.settings_of(m))}
    first: dict[str, str] = {}
    after = {}
    for key, cid in cells:
        if key.method in sharing:
            group = share_key_of(key.method, key.seed, key.source)
            if group in first:
                after[cid] = first[group]
            else:
                first[group] = cid
    return SweepPlan(cells=cells, share_keys=shared, after=after)
