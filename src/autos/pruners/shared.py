"""Work a method's cells share across sparsities: what does not depend on the target density is computed once per
(target, method, seed) and read back by the cell of every other sparsity (pay once for what does not depend
on the sparsity).

A cell's ``PruneContext`` carries ``share_dir`` and ``share_key``: the key hashes everything the cell's id hashes
but the sparsity (``autos.sweep.cells.plan_sweep``), so two cells share a result exactly when only their densities
differ. The result is saved atomically with ``autos.files.save_torch`` under a file lock (``filelock``): cells of one
method running at once on several Ray workers compute it once, the others wait and read it. Read back with
``torch.load(weights_only=True)``, tensors are bit-identical, so the masks selected from them are the ones a cell
computing alone would select (``tests/test_shared.py``). Without a key (the public API, tests) nothing is shared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from autos.errors import DataError
from autos.files import load_torch, save_torch

log = logging.getLogger(__name__)


def shared_result(share_dir: Path | None, share_key: str | None, what: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s value, computed once per (``share_key``, ``what``) and kept in ``share_dir``; computed here
    every time when either is None. A kept file that does not load is recomputed (with a warning)."""
    if share_dir is None or share_key is None:
        return compute()
    share_dir.mkdir(parents=True, exist_ok=True)
    path = share_dir / f"{share_key}-{what}.pt"
    with FileLock(str(path.with_suffix(".lock"))):
        if path.is_file():
            try:
                value = load_torch(path, what=f"shared {what}")
                log.info("%s: reusing the result of another sparsity's cell (%s)", what, path.name)
                return value
            except DataError as exc:
                log.warning("%s: ignoring an unreadable shared result (%s); recomputing", what, exc)
                path.unlink(missing_ok=True)
        value = compute()
        save_torch(value, path)
        return value
