"""The one train/eval loop (``loop``), used by IRP rounds, dense and sparse training and every method that trains,
with what it reads: seeded in-memory batches (``batches``), the memory layout (``channels_last``), the optimizer and
lr schedule (``optim``), evaluation and results (``evaluate``) and the callbacks it is extended by (``callbacks``)."""

from __future__ import annotations

from autos.training.callbacks import Callback, TrainState
from autos.training.evaluate import TrainResult, evaluate, evaluate_only
from autos.training.loop import train
from autos.training.optim import lr_factor, make_optimizer

__all__ = ["Callback", "TrainResult", "TrainState", "evaluate", "evaluate_only", "lr_factor", "make_optimizer", "train"]
