"""What the training loop shares with its extensions (``TrainState``, ``Callback``) and the extensions every run
has: a progress bar on a terminal, log lines, and beats for the stall watchdog.

These built-ins only observe: they never change a weight, a gradient or a random draw, so a run's numbers do not
depend on them (``autos.sweep.cells`` leaves this module out of a cell's code digest).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from autos.watchdog import beat

log = logging.getLogger("autos.training")

STEP_LOG_SECONDS = 60.0  # a log line inside an epoch at most this often (the per-epoch line comes regardless)


@dataclass
class TrainState:
    """Shared with callbacks; set ``stop = True`` to end training after the current epoch.

    ``loss`` is the last step's training loss; the loop stores it as a device tensor and reading ``loss`` turns it
    into a float (a host sync, once per step at most), so steps where no callback reads it never sync."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0  # 0-based
    step: int = 0  # steps taken in the whole run
    masks: Mapping[str, Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    desc: str = "train"  # the run's label in log lines
    epochs: int = 0  # the recipe's
    steps_per_epoch: int = 0
    epoch_step: int = 0  # steps taken in the current epoch
    _loss: Tensor | float = field(default=math.nan, init=False, repr=False)

    @property
    def loss(self) -> float:
        if isinstance(self._loss, Tensor):
            self._loss = self._loss.item()  # cached: later readers in the same step do not sync again
        return self._loss

    @loss.setter
    def loss(self, value: float) -> None:
        self._loss = value


class Callback:
    """Override what you need. Called in order: train_begin, (epoch_begin, (after_backward, step_end)*,
    epoch_end)*, train_end. ``state.history[-1]`` holds the epoch's record at epoch_end."""

    def on_train_begin(self, state: TrainState) -> None: ...

    def on_epoch_begin(self, state: TrainState) -> None: ...

    def on_after_backward(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


class StallBeats(Callback):
    """Every step beats the active stall watchdog (``autos.watchdog``) with where the run is."""

    def on_step_end(self, state: TrainState) -> None:
        beat(f"{state.desc} epoch {state.epoch + 1} step {state.epoch_step}")


class LogLines(Callback):
    """One log line per epoch, and one per ``STEP_LOG_SECONDS`` inside an epoch that takes longer: the record of
    a run in a log file (DVC's), where no progress bar is drawn."""

    def __init__(self) -> None:
        self.epoch_start = self.last_line = time.perf_counter()

    def on_epoch_begin(self, state: TrainState) -> None:
        self.epoch_start = time.perf_counter()

    def on_step_end(self, state: TrainState) -> None:
        if time.perf_counter() - self.last_line >= STEP_LOG_SECONDS:
            self.last_line = time.perf_counter()
            log.info("%s epoch %d/%d: step %d/%d (%.0f s into the epoch)", state.desc, state.epoch + 1, state.epochs,
                     state.epoch_step, state.steps_per_epoch, self.last_line - self.epoch_start)

    def on_epoch_end(self, state: TrainState) -> None:
        record = state.history[-1]
        self.last_line = time.perf_counter()
        log.info("%s epoch %d/%d loss %.4f train_acc %.4f test_acc %s (%.0f s)", state.desc, state.epoch + 1,
                 state.epochs, record["train_loss"], record["train_acc"],
                 f"{record['test_acc']:.4f}" if "test_acc" in record else "-", self.last_line - self.epoch_start)


class ProgressBar(Callback):
    """A bar of epochs on a terminal only (``disable=None``: off when stderr is no tty, e.g. a DVC log)."""

    def on_train_begin(self, state: TrainState) -> None:
        self.bar = tqdm(total=state.epochs, desc=state.desc, leave=False, disable=None)

    def on_epoch_end(self, state: TrainState) -> None:
        record = state.history[-1]
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record.get('test_acc', math.nan):.3f}")

    def on_train_end(self, state: TrainState) -> None:
        self.bar.close()


def builtin_callbacks() -> list[Callback]:
    """The observers every run has, before the caller's own callbacks."""
    return [StallBeats(), ProgressBar(), LogLines()]
