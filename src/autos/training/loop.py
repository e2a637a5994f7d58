"""The one train/eval loop, used by IRP rounds, dense and sparse training, and every method that trains.

Batches come from ``autos.training.batches`` (seeded, augmented, in memory); the memory layout from
``autos.training.channels_last``. Masks, when given, hold through training: pruned gradients are zeroed before the
step, so the recipe's SGD (momentum, Nesterov, weight decay) leaves pruned weights at exactly zero; with any other
optimizer (a method's own ``optimizer_factory``) the pruned weights are also zeroed after the step. Logging,
progress and the stall watchdog are callbacks (``autos.training.callbacks``), as is any method's extension.

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
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autos.config import TrainRecipe
from autos.errors import TrainingDiverged
from autos.masking import apply_masks_
from autos.training.batches import ImageData, Normalizer, device_batches, on_device
from autos.training.callbacks import Callback, TrainState, builtin_callbacks
from autos.training.channels_last import use_channels_last
from autos.training.evaluate import Forward, TrainResult, evaluate, evaluate_only, evaluate_with
from autos.training.graph_step import WARMUP_STEPS, CapturedStep, forward_loss, graph_optimizer, set_lr, why_not
from autos.training.optim import lr_factor, make_optimizer

__all__ = ["Callback", "TrainResult", "TrainState", "evaluate", "evaluate_only", "lr_factor", "make_optimizer",
           "train"]

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[list[nn.Parameter], TrainRecipe], torch.optim.Optimizer]


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
    optimizer_factory: OptimizerFactory | None = None,
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
        run = _Run.start(model, data, recipe, seed=seed, device=device, masks=masks, desc=desc,
                         parameters=parameters, optimizer_factory=optimizer_factory,
                         compile_model=compile_model or recipe.compile)
        return run.fit([*builtin_callbacks(), *callbacks], evaluate_every_epoch)


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device) -> Iterator[None]:
    """On CUDA, deterministic cuDNN algorithms (no benchmark autotuning, no atomics-based backward kernels) for the
    run, so a seed gives the same weights twice on the same GPU; the global flags are restored afterwards."""
    if device.type != "cuda":
        yield
        return
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True):
        yield


@dataclass
class _Run:
    """One training run's working set, resolved once before the first step (nothing is rebuilt per step)."""

    model: nn.Module
    data: ImageData  # on the device
    recipe: TrainRecipe
    device: torch.device
    state: TrainState
    generator: torch.Generator  # on the CPU: the same draws whatever the device
    norm: Normalizer
    forward: Forward
    channels_last: bool
    use_bf16: bool
    masked: list[tuple[nn.Parameter, Tensor]]  # (weight, its mask in the weight's dtype and memory format)
    mask_after_step: bool  # zero pruned weights after each step too (an optimizer other than the recipe's SGD)
    graph: bool = False  # capture the step in a CUDA graph (training.cuda_graph, where it can apply)
    captured: CapturedStep | None = None

    @classmethod
    def start(cls, model: nn.Module, data: ImageData, recipe: TrainRecipe, *, seed: int, device: torch.device,
              masks: Mapping[str, Tensor] | None, desc: str, parameters: list[nn.Parameter] | None,
              optimizer_factory: OptimizerFactory | None, compile_model: bool) -> _Run:
        model.to(device)
        channels_last = use_channels_last(recipe.channels_last, model, int(data.train_x.shape[-1]), device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        masked: list[tuple[nn.Parameter, Tensor]] = []
        if masks is not None:
            masks = {k: v.to(device) for k, v in masks.items()}
            apply_masks_(model, masks)
            # The masks in each weight's dtype and memory format, for the per-step multiply: exact either way (by
            # 0.0/1.0), but a mask strided unlike its weight makes every multiply a strided one.
            named = dict(model.named_parameters())
            masked = [(named[k], v.to(dtype=named[k].dtype).to(memory_format=_format_of(named[k])))
                      for k, v in masks.items()]
        params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
        graph = recipe.cuda_graph and _graph_applies(device, optimizer_factory, compile_model)
        optimizer = graph_optimizer(params, recipe, device) if graph else (optimizer_factory or make_optimizer)(
            params, recipe)
        on_dev = on_device(data, device)  # the uint8 arrays, copied to the device once per run
        steps_per_epoch = max(1, math.ceil(on_dev.train_x.shape[0] / recipe.batch_size))
        state = TrainState(model=model, optimizer=optimizer, masks=masks, desc=desc, epochs=recipe.epochs,
                           steps_per_epoch=steps_per_epoch)
        return cls(model=model, data=on_dev, recipe=recipe, device=device, state=state,
                   generator=torch.Generator().manual_seed(seed), norm=Normalizer.of(on_dev, device),
                   forward=torch.compile(model) if compile_model else model, channels_last=channels_last,
                   use_bf16=recipe.precision == "bf16" and device.type == "cuda", masked=masked,
                   mask_after_step=optimizer_factory is not None, graph=graph)

    def fit(self, callbacks: Sequence[Callback], evaluate_every_epoch: bool) -> TrainResult:
        state, recipe = self.state, self.recipe
        if self.graph and _callback_may_touch_gradients(callbacks):
            self.graph = _graph_applies(self.device, None, False, edits_gradients=True)
        for cb in callbacks:
            cb.on_train_begin(state)
        best_acc, best_epoch, test_loss, test_acc = -1.0, 0, math.nan, math.nan
        start = time.perf_counter()
        train_seconds = 0.0
        for epoch in range(recipe.epochs):
            state.epoch, state.epoch_step = epoch, 0
            epoch_start = time.perf_counter()
            record = self.train_epoch(callbacks)
            train_seconds += time.perf_counter() - epoch_start  # after the read: a GPU's queued steps are counted
            if evaluate_every_epoch or epoch == recipe.epochs - 1:
                test_loss, test_acc = self.evaluate(self.channels_last)
                record.update(test_loss=test_loss, test_acc=test_acc)
                if test_acc > best_acc:
                    best_acc, best_epoch = test_acc, epoch + 1
            state.history.append(record)
            for cb in callbacks:
                cb.on_epoch_end(state)
            if state.stop:
                break
        if self.channels_last:
            self.model.to(memory_format=torch.contiguous_format)
        if state.history and "test_acc" not in state.history[-1]:  # stopped early without an evaluation
            test_loss, test_acc = self.evaluate(channels_last=False)
            state.history[-1].update(test_loss=test_loss, test_acc=test_acc)
            if test_acc > best_acc:
                best_acc, best_epoch = test_acc, len(state.history)
        for cb in callbacks:
            cb.on_train_end(state)
        images = self.data.train_x.shape[0] * len(state.history)
        return TrainResult(final_test_acc=test_acc, best_test_acc=best_acc, best_epoch=best_epoch,
                           final_test_loss=test_loss, epochs=len(state.history), seconds=time.perf_counter() - start,
                           train_images_per_second=images / max(train_seconds, 1e-9), history=state.history)

    def evaluate(self, channels_last: bool) -> tuple[float, float]:
        return evaluate_with(self.model, self.forward, self.data, device=self.device,
                             batch_size=self.recipe.eval_batch_size, channels_last=channels_last)

    def train_epoch(self, callbacks: Sequence[Callback]) -> dict[str, float]:
        """One pass over the training set; the epoch's record (train loss and accuracy, last lr)."""
        state, recipe, optimizer = self.state, self.recipe, self.state.optimizer
        self.model.train()
        for cb in callbacks:
            cb.on_epoch_begin(state)
        # Per-epoch sums live on the device (read once, after the last step). float64, like the Python float sum
        # they replace, and the same operations in the same order, so CPU results are bit-identical to it.
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        batches = device_batches(self.data.train_x, self.data.train_y, recipe.batch_size, generator=self.generator,
                                 augment=recipe.augment)
        for i, (xb, yb) in enumerate(batches):
            set_lr(optimizer, recipe.lr * lr_factor(recipe, state.epoch + i / state.steps_per_epoch))
            xb = self.norm(xb, self.channels_last)
            if self.graph and state.step >= WARMUP_STEPS and len(yb) == recipe.batch_size:
                logits, loss = self.graph_step(xb, yb)
                _accumulate(loss_sum, correct, logits, loss, yb)
            else:  # a graph's warm-up steps run on a side stream, as PyTorch prescribes before a capture
                with _side_stream(self.graph and state.step < WARMUP_STEPS):
                    logits, loss = forward_loss(self.forward, xb, yb, use_bf16=self.use_bf16)
                    _accumulate(loss_sum, correct, logits, loss, yb)
                    self.step(loss, callbacks)
            seen += len(yb)
            self.after_step(callbacks)
        train_loss = loss_sum.item() / seen  # the epoch's one host read
        if not math.isfinite(train_loss):  # a diverged run fails, loudly, rather than train on and report chance
            raise TrainingDiverged(f"{state.desc}: the training loss is {train_loss} in epoch {state.epoch + 1} "
                                   f"(lr {recipe.lr}): the run diverged; lower the learning rate (training.lr)")
        return {"epoch": state.epoch + 1, "train_loss": train_loss, "train_acc": int(correct.item()) / seen,
                "lr": float(optimizer.param_groups[0]["lr"])}

    def graph_step(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """The step replayed from its CUDA graph, captured at the first full batch after the warm-up."""
        if self.captured is None:
            self.captured = CapturedStep.capture(self.forward, self.state.optimizer, self.masked, xb, yb,
                                                 use_bf16=self.use_bf16)
        logits, loss = self.captured.replay(xb, yb)
        self.state._loss = loss.detach().clone()  # the graph's output is overwritten by the next replay
        return logits, loss

    def step(self, loss: Tensor, callbacks: Sequence[Callback]) -> None:
        """Backward, masked gradients, the optimizer step; pruned weights stay exactly zero."""
        state = self.state
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for weight, mask in self.masked:  # momentum and weight decay must never revive a pruned weight
                if weight.grad is not None:
                    weight.grad.mul_(mask)
        state._loss = loss.detach()  # a float only if a callback reads state.loss
        for cb in callbacks:
            cb.on_after_backward(state)
        state.optimizer.step()
        if self.mask_after_step or (self.masked and _callback_may_touch_gradients(callbacks)):
            with torch.no_grad():
                for weight, mask in self.masked:
                    weight.mul_(mask)

    def after_step(self, callbacks: Sequence[Callback]) -> None:
        """Count the step and tell the callbacks (eager or replayed alike)."""
        state = self.state
        state.step += 1
        state.epoch_step += 1
        for cb in callbacks:
            cb.on_step_end(state)


def _accumulate(loss_sum: Tensor, correct: Tensor, logits: Tensor, loss: Tensor, yb: Tensor) -> None:
    """The epoch's on-device sums, in place."""
    with torch.no_grad():
        loss_sum += loss.double() * len(yb)  # no alpha=: a fused multiply-add would round differently
        correct += (logits.argmax(1) == yb).sum()


def _graph_applies(device: torch.device, optimizer_factory: OptimizerFactory | None, compile_model: bool, *,
                   edits_gradients: bool = False) -> bool:
    """Whether ``training.cuda_graph`` can capture this run's step; when not, says why once and trains eagerly."""
    reason = why_not(device, custom_optimizer=optimizer_factory is not None, edits_gradients=edits_gradients,
                     compiled=compile_model)
    if reason is not None:
        log.warning("training.cuda_graph: training eagerly: %s", reason)
    return reason is None


@contextlib.contextmanager
def _side_stream(enabled: bool) -> Iterator[None]:
    """Run the enclosed work on a side CUDA stream (the warm-up PyTorch prescribes before a graph capture)."""
    if not enabled:
        yield
        return
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        yield
    torch.cuda.current_stream().wait_stream(side)


def _format_of(weight: Tensor) -> torch.memory_format:
    return torch.channels_last if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last) \
        and not weight.is_contiguous() else torch.contiguous_format


def _callback_may_touch_gradients(callbacks: Sequence[Callback]) -> bool:
    """A caller's callback with an ``on_after_backward`` may change gradients after they were masked (the built-in
    observers never do): then the pruned weights are zeroed after the step as well."""
    return any(type(cb).on_after_backward is not Callback.on_after_backward for cb in callbacks)
