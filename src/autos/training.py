"""The one train/eval loop, used by IRP rounds, dense and sparse training, and every method that trains.

Data live in memory as uint8 NCHW tensors (the prepared arrays); batches are shuffled with a seeded generator
and augmented on the fly (random crop with 4-pixel zero padding + horizontal flip, the CIFAR standard used by
the AutoS reference), so a run is deterministic under its seed with no loader workers. Masks, when given, hold
through training: pruned gradients are zeroed before the step and pruned weights after it. Extensions (logging,
early selection criteria) hook in through ``Callback``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from autos.config import TrainRecipe
from autos.masking import apply_masks_, mask_gradients_
from autos.watchdog import beat

log = logging.getLogger(__name__)


class ImageData(Protocol):
    """What the loop needs from a prepared dataset (``autos.data.PreparedData`` satisfies it)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor

    @property
    def mean(self) -> Sequence[float]: ...

    @property
    def std(self) -> Sequence[float]: ...


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


# Channels-last on CPU: measured 1.9-3.8x faster for training at widths >= 16 on the 2-core AVX2 EPYC (DESIGN.md
# table, bench/results/throughput.json), but oneDNN's AVX2 1x1 backward-weights kernel (torch 2.13/2.14) segfaults
# or spins forever with 4-8 input channels per group: seen at 64x64 (bench/results/channels_last_probe.json), and
# reported at 32x32 and 16x16 on the same CPU family. So the CPU allow-list is what was measured safe: every conv
# past the RGB stem has at least this many input channels per group. Anything else trains in the default layout.
MIN_SAFE_CHANNELS_PER_GROUP = 16
STEM_MAX_IN_CHANNELS = 3  # the 3x3 stem on RGB/grey input was measured safe in channels-last at every width


def channels_last_is_safe(model: nn.Module, input_size: int | None = None) -> bool:
    """True when every conv's shape is on the measured-safe CPU allow-list for channels-last (see above).

    ``input_size`` is accepted for callers that know it, but the rule does not depend on it: the hang was reported
    at 16, 32 and 64 px alike, so size gives no safety."""
    del input_size
    for module in model.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        per_group = module.in_channels // module.groups
        is_stem = module.in_channels <= STEM_MAX_IN_CHANNELS and module.groups == 1 and module.kernel_size != (1, 1)
        if not is_stem and per_group < MIN_SAFE_CHANNELS_PER_GROUP:
            return False
    return True


def use_channels_last(setting: str, model: nn.Module, input_size: int, device: torch.device) -> bool:
    """Whether the loop trains ``model`` in channels-last: ``auto`` and ``on`` mean "where known safe", so no
    setting can reach the oneDNN hang; on CUDA channels-last is always allowed (faster with tensor cores)."""
    if setting == "off":
        return False
    safe = device.type == "cuda" or channels_last_is_safe(model, input_size)
    if setting == "on" and not safe:
        log.warning("channels_last=on ignored: convs with < %d input channels per group hang or crash oneDNN's CPU "
                    "channels-last backward (DESIGN.md); training in the default layout", MIN_SAFE_CHANNELS_PER_GROUP)
    return safe


# --------------------------------------------------------------------------- batches


def augment_batch(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop with zero padding + random horizontal flip, vectorised over a uint8 batch."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class Normalizer:
    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, data: ImageData, device: torch.device) -> Normalizer:
        mean = torch.tensor(list(data.mean), dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        std = torch.tensor(list(data.std), dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        return cls(mean, std)

    def __call__(self, x: Tensor, channels_last: bool) -> Tensor:
        out = (x.float() - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None,
    augment: bool,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """uint8 batches in a seeded random order (``generator``) or in order (``None``)."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx]
        if augment:
            xb = augment_batch(xb, generator if generator is not None else torch.Generator().manual_seed(0))
        yield xb, y[idx]


def scoring_batches(
    data: ImageData, num_batches: int, batch_size: int, *, seed: int, device: torch.device, augment: bool = False
) -> list[tuple[Tensor, Tensor]]:
    """The first ``num_batches`` normalised training batches in a seeded order (for saliency scores)."""
    generator = torch.Generator().manual_seed(seed)
    norm = Normalizer.of(data, device)
    out = []
    for i, (xb, yb) in enumerate(iterate_batches(data.train_x, data.train_y, batch_size, generator=generator,
                                                 augment=augment)):
        if i >= num_batches:
            break
        out.append((norm(xb.to(device), channels_last=False), yb.to(device)))
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    *,
    device: torch.device,
    batch_size: int = 512,
    channels_last: bool = False,
    split: str = "test",
) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) on a split, in eval mode."""
    x, y = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    norm = Normalizer.of(data, device)
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for xb, yb in iterate_batches(x, y, batch_size, generator=None, augment=False):
        xb, yb = norm(xb.to(device), channels_last), yb.to(device)
        logits = model(xb)
        beat("evaluate")
        total_loss += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    return total_loss / len(y), correct / len(y)


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainState:
    """Shared with callbacks; set ``stop = True`` to end training after the current epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    loss: float = math.nan
    masks: Mapping[str, Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False


class Callback:
    """Override what you need. Called in order: train_begin, (after_backward, step_end)*, epoch_end."""

    def on_train_begin(self, state: TrainState) -> None: ...

    def on_after_backward(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...


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


def make_optimizer(params: list[nn.Parameter], recipe: TrainRecipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )


def lr_factor(recipe: TrainRecipe, epoch_progress: float) -> float:
    """Multiplier of the base lr at a fractional epoch (linear warm-up, then the schedule)."""
    if recipe.warmup_epochs and epoch_progress < recipe.warmup_epochs:
        return (epoch_progress + 1e-8) / recipe.warmup_epochs
    fraction = epoch_progress / recipe.epochs
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
    if recipe.schedule == "multistep":
        return recipe.gamma ** sum(fraction >= m for m in recipe.milestones)
    return 1.0


def train(
    model: nn.Module,
    data: ImageData,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: torch.device,
    masks: Mapping[str, Tensor] | None = None,
    callbacks: Sequence[Callback] = (),
    desc: str = "train",
    evaluate_every_epoch: bool = True,
    parameters: list[nn.Parameter] | None = None,
) -> TrainResult:
    """Train ``model`` in place with ``recipe``; returns final- and best-epoch test accuracy.

    ``parameters`` restricts what the optimizer updates (default: all), for methods that learn gates or scores.
    """
    model.to(device)
    input_size = int(data.train_x.shape[-1])
    channels_last = use_channels_last(recipe.channels_last, model, input_size, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if masks is not None:
        masks = {k: v.to(device) for k, v in masks.items()}
        apply_masks_(model, masks)
    params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, recipe)
    generator = torch.Generator().manual_seed(seed)
    norm = Normalizer.of(data, device)
    use_bf16 = recipe.precision == "bf16" and device.type == "cuda"
    state = TrainState(model=model, optimizer=optimizer, masks=masks)
    for cb in callbacks:
        cb.on_train_begin(state)

    n = data.train_x.shape[0]
    steps_per_epoch = max(1, math.ceil(n / recipe.batch_size))
    best_acc, best_epoch, test_loss, test_acc = -1.0, 0, math.nan, math.nan
    start = time.perf_counter()
    train_seconds = 0.0
    bar = tqdm(range(recipe.epochs), desc=desc, leave=False, disable=None)
    for epoch in bar:
        state.epoch = epoch
        model.train()
        epoch_start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for i, (xb, yb) in enumerate(
            iterate_batches(data.train_x, data.train_y, recipe.batch_size, generator=generator, augment=recipe.augment)
        ):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_factor(recipe, epoch + i / steps_per_epoch)
            xb, yb = norm(xb.to(device, non_blocking=True), channels_last), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if masks is not None:
                mask_gradients_(model, masks)
            state.loss = loss.item()
            for cb in callbacks:
                cb.on_after_backward(state)
            optimizer.step()
            if masks is not None:
                apply_masks_(model, masks)  # weight decay and momentum must not revive pruned weights
            state.step += 1
            beat(f"{desc} epoch {epoch + 1} step {i + 1}")
            for cb in callbacks:
                cb.on_step_end(state)
            loss_sum += state.loss * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
        train_seconds += time.perf_counter() - epoch_start
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "lr": optimizer.param_groups[0]["lr"]}
        if evaluate_every_epoch or epoch == recipe.epochs - 1:
            test_loss, test_acc = evaluate(
                model, data, device=device, batch_size=recipe.eval_batch_size, channels_last=channels_last
            )
            record.update(test_loss=test_loss, test_acc=test_acc)
            if test_acc > best_acc:
                best_acc, best_epoch = test_acc, epoch + 1
        state.history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record.get('test_acc', math.nan):.3f}")
        log.info(
            "%s epoch %d/%d loss %.4f train_acc %.4f test_acc %s",
            desc, epoch + 1, recipe.epochs, record["train_loss"], record["train_acc"],
            f"{record['test_acc']:.4f}" if "test_acc" in record else "-",
        )
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.stop:
            break
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    if state.history and "test_acc" not in state.history[-1]:
        test_loss, test_acc = evaluate(model, data, device=device, batch_size=recipe.eval_batch_size)
        state.history[-1].update(test_loss=test_loss, test_acc=test_acc)
        if test_acc > best_acc:
            best_acc, best_epoch = test_acc, len(state.history)
    seconds = time.perf_counter() - start
    images = n * len(state.history)
    return TrainResult(
        final_test_acc=test_acc,
        best_test_acc=best_acc,
        best_epoch=best_epoch,
        final_test_loss=test_loss,
        epochs=len(state.history),
        seconds=seconds,
        train_images_per_second=images / max(train_seconds, 1e-9),
        history=state.history,
    )
