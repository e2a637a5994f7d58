"""Iterative rewind pruning on the source model (``loop.run_irp``) and its density schedules (``schedules``)."""

from __future__ import annotations

from autos.irp.loop import (
    CHECKPOINT,
    IRPResult,
    check_tensors,
    clear_resume_state,
    data_digest,
    fingerprint,
    load_survival,
    run_irp,
    stale_temps,
)

__all__ = ["CHECKPOINT", "IRPResult", "check_tensors", "clear_resume_state", "data_digest", "fingerprint",
           "load_survival", "run_irp", "stale_temps"]
