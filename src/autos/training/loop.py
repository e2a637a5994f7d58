"""The one train/eval loop, used by IRP rounds, dense and sparse training, and every method that trains.

Batches come from ``autos.training.batches`` (seeded, augmented, in memory); the memory layout from
``autos.training.channels_last``. Masks, when given, hold
through training: pruned gradients are zeroed before the step and pruned weights after it. Extensions (logging,
early selection criteria) hook in through ``Callback``.

One loop for CPU and GPU: the uint8 arrays move to the device once per ``train`` call and are augmented there; a
step never synchronises with the host (the epoch's loss sum and correct count accumulate on the device and are read
once per epoch; ``TrainState.loss`` syncs only when a callback reads it), so a GPU is never left waiting on Python.
On CUDA the step may run in bf16 autocast (``recipe.precision``), in channels-last, and through ``torch.compile``
(``compile_model``); cuDNN is held to deterministic algorithms so a seed gives the same run on the same device. On
CPU the results are bit-identical to the earlier loop that read the loss every step: same draws, same kernels,
and the on-device sums are float64 like the Python floats they replace.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from autos.config import TrainRecipe
from autos.masking import apply_masks_, mask_gradients_
from autos.training.batches import ImageData, Normalizer, device_batches, on_device
from autos.training.channels_last import use_channels_last
from autos.watchdog import beat

log = logging.getLogger(__name__)


Forward = Callable[[Tensor], Tensor]

STEP_LOG_SECONDS = 60.0  # a log line inside an epoch at most this often (the per-epoch line comes regardless)


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
    return _evaluate(model, forward, data, device=device, batch_size=batch_size, channels_last=channels_last,
                     split=split)


@torch.no_grad()
def _evaluate(model: nn.Module, forward: Forward, data: ImageData, *, device: torch.device, batch_size: int,
              channels_last: bool, split: str = "test") -> tuple[float, float]:
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


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainState:
    """Shared with callbacks; set ``stop = True`` to end training after the current epoch.

    ``loss`` is the last step's training loss; the loop stores it as a device tensor and reading ``loss`` turns it
    into a float (a host sync, once per step at most), so steps where no callback reads it never sync."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    masks: Mapping[str, Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
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
    optimizer_factory: Callable[[list[nn.Parameter], TrainRecipe], torch.optim.Optimizer] | None = None,
    compile_model: bool = False,
) -> TrainResult:
    """Train ``model`` in place with ``recipe``; returns final- and best-epoch test accuracy.

    ``parameters`` restricts what the optimizer updates (default: all), for methods that learn gates or scores.
    ``optimizer_factory(parameters, recipe)`` builds the optimizer (default ``make_optimizer``: the recipe's SGD);
    the loop sets every group's lr to ``recipe.lr`` times the schedule's factor before each step.
    ``compile_model`` (or ``recipe.compile``): run the forward (training and evaluation) through
    ``torch.compile(model)``; the compiled module shares ``model``'s parameters, so masks, callbacks and the
    optimizer all act on ``model`` itself. Meant for GPUs (the first epoch pays the compile); results agree with
    eager to rounding, not to the bit.
    """
    with _deterministic_cudnn(device):
        return _train(model, data, recipe, seed=seed, device=device, masks=masks, callbacks=callbacks, desc=desc,
                      evaluate_every_epoch=evaluate_every_epoch, parameters=parameters,
                      optimizer_factory=optimizer_factory, compile_model=compile_model or recipe.compile)


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device) -> Iterator[None]:
    """On CUDA, deterministic cuDNN algorithms (no benchmark autotuning, no atomics-based backward kernels) for the
    run, so a seed gives the same weights twice on the same GPU; the global flags are restored afterwards."""
    if device.type != "cuda":
        yield
        return
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True):
        yield


def _train(
    model: nn.Module,
    data: ImageData,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: torch.device,
    masks: Mapping[str, Tensor] | None,
    callbacks: Sequence[Callback],
    desc: str,
    evaluate_every_epoch: bool,
    parameters: list[nn.Parameter] | None,
    optimizer_factory: Callable[[list[nn.Parameter], TrainRecipe], torch.optim.Optimizer] | None,
    compile_model: bool,
) -> TrainResult:
    model.to(device)
    input_size = int(data.train_x.shape[-1])
    channels_last = use_channels_last(recipe.channels_last, model, input_size, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    step_masks: dict[str, Tensor] | None = None
    if masks is not None:
        masks = {k: v.to(device) for k, v in masks.items()}
        apply_masks_(model, masks)
        # The same masks in each weight's dtype, for the two per-step multiplies (saves a cast per weight per step;
        # multiplying by 0.0/1.0 is exact either way). Callbacks still see the masks as given, in ``state.masks``.
        named = dict(model.named_parameters())
        step_masks = {k: v.to(dtype=named[k].dtype) for k, v in masks.items()}
    params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = (optimizer_factory or make_optimizer)(params, recipe)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws whatever the device
    data = on_device(data, device)  # the uint8 arrays, copied to the device once per run
    norm = Normalizer.of(data, device)
    use_bf16 = recipe.precision == "bf16" and device.type == "cuda"
    forward: Forward = torch.compile(model) if compile_model else model
    state = TrainState(model=model, optimizer=optimizer, masks=masks)
    for cb in callbacks:
        cb.on_train_begin(state)

    n = data.train_x.shape[0]
    steps_per_epoch = max(1, math.ceil(n / recipe.batch_size))
    best_acc, best_epoch, test_loss, test_acc = -1.0, 0, math.nan, math.nan
    start = time.perf_counter()
    train_seconds = 0.0
    # A bar on a terminal only (disable=None: off when stderr is no tty, e.g. a DVC log); the log lines below are
    # the record either way: one per epoch, and one per STEP_LOG_SECONDS inside an epoch that takes longer.
    bar = tqdm(range(recipe.epochs), desc=desc, leave=False, disable=None)
    last_line = time.perf_counter()
    for epoch in bar:
        state.epoch = epoch
        model.train()
        epoch_start = time.perf_counter()
        # Per-epoch sums live on the device (read once, after the last step). float64, like the Python float sum
        # they replace, and the same operations in the same order, so CPU results are bit-identical to it.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for i, (xb, yb) in enumerate(
            device_batches(data.train_x, data.train_y, recipe.batch_size, generator=generator, augment=recipe.augment)
        ):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_factor(recipe, epoch + i / steps_per_epoch)
            xb = norm(xb, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = forward(xb)
                loss = F.cross_entropy(logits.float(), yb)
            with torch.no_grad():
                loss_sum += loss.double() * len(yb)  # no alpha=: a fused multiply-add would round differently
                correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step_masks is not None:
                mask_gradients_(model, step_masks)
            state._loss = loss.detach()  # a float only if a callback reads state.loss
            for cb in callbacks:
                cb.on_after_backward(state)
            optimizer.step()
            if step_masks is not None:
                apply_masks_(model, step_masks)  # weight decay and momentum must not revive pruned weights
            state.step += 1
            beat(f"{desc} epoch {epoch + 1} step {i + 1}")
            if time.perf_counter() - last_line >= STEP_LOG_SECONDS:
                last_line = time.perf_counter()
                log.info("%s epoch %d/%d: step %d/%d (%.0f s into the epoch)", desc, epoch + 1, recipe.epochs, i + 1,
                         steps_per_epoch, last_line - epoch_start)
            for cb in callbacks:
                cb.on_step_end(state)
        record = {"epoch": epoch + 1, "train_loss": loss_sum.item() / seen, "train_acc": int(correct.item()) / seen,
                  "lr": optimizer.param_groups[0]["lr"]}
        train_seconds += time.perf_counter() - epoch_start  # after the read: a GPU's queued steps are counted
        if evaluate_every_epoch or epoch == recipe.epochs - 1:
            test_loss, test_acc = _evaluate(
                model, forward, data, device=device, batch_size=recipe.eval_batch_size, channels_last=channels_last
            )
            record.update(test_loss=test_loss, test_acc=test_acc)
            if test_acc > best_acc:
                best_acc, best_epoch = test_acc, epoch + 1
        state.history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record.get('test_acc', math.nan):.3f}")
        last_line = time.perf_counter()
        log.info(
            "%s epoch %d/%d loss %.4f train_acc %.4f test_acc %s (%.0f s)",
            desc, epoch + 1, recipe.epochs, record["train_loss"], record["train_acc"],
            f"{record['test_acc']:.4f}" if "test_acc" in record else "-", last_line - epoch_start,
        )
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.stop:
            break
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    if state.history and "test_acc" not in state.history[-1]:
        test_loss, test_acc = _evaluate(model, forward, data, device=device, batch_size=recipe.eval_batch_size,
                                        channels_last=False)
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
