"""The training step captured in one CUDA graph and replayed (``training.cuda_graph``; GPU only).

Why: at batch 128 a ResNet-18 step on an H100 is bound by its ~360 kernel launches (docs/benchmarks.md, "GPU"), and
the GPU idles for much of each step. A CUDA graph records the whole step (forward, loss, backward, the masked
gradients, the optimizer's update) once and replays it with one launch, the pattern of PyTorch's "whole-network
capture" (``torch.cuda.graphs``, https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture).

What it takes, and how each is met here:

- **Static memory**: the step reads its batch from fixed buffers (``x``, ``y``); each replay copies the next batch
  in. A batch of another size (the epoch's last, partial one) takes the eager step instead.
- **No host reads inside the step**: the learning rate lives in a 0-dim device tensor (``fused`` SGD reads it on the
  device), set by ``set_lr`` outside the graph; the epoch's loss and accuracy sums are read from the graph's output
  tensors after each replay, on the device.
- **Warm-up before capture**: lazily created state (momentum buffers, cuBLAS/cuDNN workspaces) must exist before
  capture, so the run's first ``WARMUP_STEPS`` steps are ordinary eager steps on a side stream; the graph is
  captured at the next full batch. Those warm-up steps are real training steps, not extra ones.
- **Grads in the graph's pool**: ``.grad`` is set to None before capture, so backward allocates the gradients
  inside the graph and every replay overwrites them (no accumulation, no zeroing kernel).
- **Autocast without its cache** (bf16), as graphs require.

Results agree with the eager loop to rounding, not to the bit: fused SGD rounds differently from the foreach SGD of
the eager recipe. A callback that edits gradients (``on_after_backward``) or an optimizer of a method's own cannot
run inside a graph: the loop then trains eagerly and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autos.config import TrainRecipe

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's whole-network example uses 3)

Forward = Callable[[Tensor], Tensor]


def graph_optimizer(params: list[nn.Parameter], recipe: TrainRecipe, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's SGD (``autos.training.optim.make_optimizer``) as the graph needs it: fused, its lr a 0-dim
    tensor on ``device`` that ``set_lr`` updates in place."""
    return torch.optim.SGD(
        params,
        lr=torch.tensor(recipe.lr, dtype=torch.float32, device=device),
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
        fused=True,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr: assigned when it is a float, written in place (no host sync) when it is a device tensor."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def forward_loss(forward: Forward, x: Tensor, y: Tensor, *, use_bf16: bool,
                 cache: bool = True) -> tuple[Tensor, Tensor]:
    """Logits and the mean cross-entropy, in bf16 autocast when asked (its weight cache off inside a graph)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16, cache_enabled=cache):
        logits = forward(x)
        return logits, F.cross_entropy(logits.float(), y)


def why_not(device: torch.device, *, custom_optimizer: bool, edits_gradients: bool, compiled: bool) -> str | None:
    """Why a run asked for ``cuda_graph`` trains eagerly instead (None: it can be captured)."""
    if device.type != "cuda":
        return f"the device is {device.type}, and CUDA graphs need a CUDA device"
    if custom_optimizer:
        return "the method trains with an optimizer of its own, which the graph cannot hold"
    if edits_gradients:
        return "a callback edits gradients after backward (on_after_backward), which cannot run inside a graph"
    if compiled:
        return "the forward is compiled (training.compile); choose one of compile and cuda_graph"
    return None


@dataclass
class CapturedStep:
    """One training step recorded in a CUDA graph: ``replay(x, y)`` takes the step on that batch."""

    graph: torch.cuda.CUDAGraph
    x: Tensor  # static input batch (normalised, in the run's memory format)
    y: Tensor  # static labels
    logits: Tensor  # the last replay's outputs, overwritten by the next
    loss: Tensor

    @classmethod
    def capture(cls, forward: Forward, optimizer: torch.optim.Optimizer, masked: Sequence[tuple[nn.Parameter, Tensor]],
                x: Tensor, y: Tensor, *, use_bf16: bool) -> CapturedStep:
        """Record the step on buffers shaped like ``x``, ``y`` (recording runs nothing: ``replay`` takes it)."""
        static_x, static_y = x.clone(memory_format=torch.preserve_format), y.clone()
        optimizer.zero_grad(set_to_none=True)  # backward allocates the grads inside the graph's pool
        torch.cuda.synchronize(x.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits, loss = forward_loss(forward, static_x, static_y, use_bf16=use_bf16, cache=False)
            loss.backward()
            with torch.no_grad():
                for weight, mask in masked:  # as the eager step: momentum and decay never revive a pruned weight
                    if weight.grad is not None:
                        weight.grad.mul_(mask)
            optimizer.step()
        log.info("training step captured in a CUDA graph (batch %d)", len(static_y))
        return cls(graph=graph, x=static_x, y=static_y, logits=logits, loss=loss)

    def fits(self, x: Tensor) -> bool:
        return x.shape == self.x.shape

    def replay(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.logits, self.loss
