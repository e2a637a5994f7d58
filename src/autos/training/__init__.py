"""The one train/eval loop (``loop``), used by IRP rounds, dense and sparse training and every method that trains,
with what it reads: seeded in-memory batches (``batches``), the memory layout (``channels_last``), the optimizer and
lr schedule (``optim``), evaluation (``evaluate``) and the callbacks it is extended by (``callbacks``)."""

from __future__ import annotations

from autos.training.loop import (
    Callback,
    TrainResult,
    TrainState,
    evaluate,
    evaluate_only,
    lr_factor,
    make_optimizer,
    train,
)

__all__ = ["Callback", "TrainResult", "TrainState", "evaluate", "evaluate_only", "lr_factor", "make_optimizer", "train"]
