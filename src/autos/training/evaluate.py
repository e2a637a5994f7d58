"""Evaluation on a split, and what a run returns (``TrainResult``), also for weights used as they are."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autos.masking import apply_masks_
from autos.training.batches import ImageData, Normalizer
from autos.watchdog import beat

Forward = Callable[[Tensor], Tensor]


@dataclass
class TrainResult:
    final_test_acc: float
    best_test_acc: float
    best_epoch: int
    final_test_loss: float
    epochs: int
    seconds: float
    train_images_per_second: float
    history: list[dict[str, float]]

    def metrics(self) -> dict[str, float]:
        return {
            "final_test_acc": self.final_test_acc,
            "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch,
            "final_test_loss": self.final_test_loss,
            "train_seconds": self.seconds,
            "train_images_per_second": self.train_images_per_second,
        }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    *,
    device: torch.device,
    batch_size: int = 512,
    channels_last: bool = False,
    split: str = "test",
    compile_model: bool = False,
) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) on a split, in eval mode.

    ``compile_model``: run the forward through ``torch.compile(model)`` (worth it on a GPU for large splits)."""
    forward: Forward = torch.compile(model) if compile_model else model
    return evaluate_with(model, forward, data, device=device, batch_size=batch_size, channels_last=channels_last,
                         split=split)


@torch.no_grad()
def evaluate_with(model: nn.Module, forward: Forward, data: ImageData, *, device: torch.device, batch_size: int,
                  channels_last: bool, split: str = "test") -> tuple[float, float]:
    """``evaluate`` through a given forward (the training loop's, possibly compiled)."""
    x, y = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    x, y = x.to(device), y.to(device)  # one copy per call (none when the loop already holds the data there)
    norm = Normalizer.of(data, device)
    was_training = model.training
    model.eval()
    # Sums stay on the device and are read once: a float()/int() per batch would stall a GPU every batch. The
    # loss sum is float64, as Python's float sum was, so CPU results are unchanged to the bit.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(y), batch_size):
        xb, yb = norm(x[start : start + batch_size], channels_last), y[start : start + batch_size]
        logits = forward(xb)
        beat("evaluate")
        total_loss += F.cross_entropy(logits.float(), yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    return total_loss.item() / len(y), int(correct.item()) / len(y)


def evaluate_only(model: nn.Module, data: ImageData, *, device: torch.device, masks: Mapping[str, Tensor] | None = None,
                  batch_size: int = 512) -> TrainResult:
    """A zero-epoch result for weights used as they are (e.g. Lottery Jackpots' searched mask, no tuning)."""
    model.to(device)
    if masks is not None:
        apply_masks_(model, {k: v.to(device) for k, v in masks.items()})
    start = time.perf_counter()
    loss, acc = evaluate(model, data, device=device, batch_size=batch_size)
    return TrainResult(final_test_acc=acc, best_test_acc=acc, best_epoch=0, final_test_loss=loss, epochs=0,
                       seconds=time.perf_counter() - start, train_images_per_second=0.0,
                       history=[{"epoch": 0, "test_loss": loss, "test_acc": acc}])
