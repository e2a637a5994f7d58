"""IRP run on the target itself as an oracle: how much of its ticket AutoS (and |w0|) keep at the same density.

AutoS imitates IRP from a source model; the `irp` method runs IRP on the target (expensive: paper profile). When a
study has both, the cells of ``ORACLE`` and of ``COMPARED`` methods keep their unmodified mask, packed to one bit per
weight in prunable order, in the cell result (never in results.json rows); ``oracle_overlaps`` then compares each
compared method's kept set with the oracle's for every (sparsity, seed) where both exist: |kept & ticket| / |ticket|
(chance: the density). The report shows it per target.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

ORACLE = "irp"
COMPARED = ("autos", "magnitude")  # the learned imitation, and the trivial scorer it ranks most like


def keeps_mask(methods: Sequence[str], method: str) -> bool:
    """Whether a cell of ``method`` keeps its mask: only when the study runs the oracle, and only the methods
    compared with it."""
    return ORACLE in methods and method in (ORACLE, *COMPARED)


def pack_masks(masks: Mapping[str, Tensor]) -> dict[str, Any]:
    """One bit per weight, layers concatenated in the masks' (prunable) order: {"numel", "bits" (base64)}."""
    flat = torch.cat([m.detach().to("cpu", torch.bool).flatten() for m in masks.values()]).numpy()
    return {"numel": int(flat.size), "bits": base64.b64encode(np.packbits(flat).tobytes()).decode("ascii")}


def unpack_mask(packed: Mapping[str, Any]) -> np.ndarray:
    bits = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    return np.unpackbits(bits, count=int(packed["numel"])).astype(bool)


def oracle_overlaps(masks: Iterable[tuple[str, float, int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """(method, sparsity, seed, packed mask) -> one record per compared method, sparsity and seed with an oracle:
    {"method", "sparsity", "seed", "overlap" (|kept & ticket| / |ticket|), "chance" (the oracle's density)}."""
    by_key = {(m, float(s), int(seed)): unpack_mask(p) for m, s, seed, p in masks}
    out = []
    for (method, sparsity, seed), kept in sorted(by_key.items()):
        ticket = by_key.get((ORACLE, sparsity, seed))
        if method == ORACLE or ticket is None:
            continue
        if kept.size != ticket.size:
            raise ValueError(f"{method} s={sparsity} seed {seed}: {kept.size} weights, the oracle has {ticket.size}")
        size = int(ticket.sum())
        out.append({"method": method, "sparsity": sparsity, "seed": seed,
                    "overlap": float((kept & ticket).sum() / size) if size else float("nan"),
                    "chance": size / ticket.size})
    return out
