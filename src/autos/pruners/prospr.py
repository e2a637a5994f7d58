"""ProsPr, Prospect Pruning (Alizadeh et al., ICLR 2022; ``mil-ad/prospr``, ``prospr/prospr.py``):
docs/reference/methods.md §1.

Score = |dL_meta/dc| at c = 1, where c multiplies the initial prunable weights, theta_0 = c * theta_init, and
L_meta is the loss after M unrolled SGD steps from theta_0. The gradient flows through the whole trajectory
(create_graph=True in the inner steps), so the score sees how a weight's removal changes the *trained* loss.
With M = 0 it is |theta * dL/dtheta|: SNIP (tested).

The meta-gradient is a double backward: the scoring copy has its modules without a differentiable backward swapped
and runs attention on the math backend (``autos.model_compat``); a model that still needs an op torch cannot
differentiate twice is refused (``UnsupportedModelError``). Dropout and stochastic depth are off while scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.func import functional_call

from autos.masking import Scores
from autos.model_compat import double_backward, forward_probe, prepare_double_backward_, scoring_mode
from autos.progress import Heartbeat
from autos.pruners._registry import PRUNERS
from autos.pruners.base import PruneContext, ScorePruner, ScoreSettings

log = logging.getLogger(__name__)


class ProsPrSettings(ScoreSettings):
    # CLI defaults of the reference (docs/reference/methods.md §1 "Hyperparameters"): 3 steps, lr 0.1, momentum 0,
    # meta-batch 128, full meta-gradients, the same batch in every inner step.
    num_steps: int = Field(default=3, ge=0, description="M unrolled SGD steps (0 = SNIP)")
    inner_lr: float = Field(default=0.1, gt=0, description="lr of the unrolled steps")
    inner_momentum: float = Field(default=0.0, ge=0, lt=1, description="momentum of the unrolled steps")
    batch_size: int = Field(default=128, ge=1, description="meta-batch size")
    # The paper uses the first-order variant only on ImageNet, for memory.
    first_order: bool = Field(
        default=False, description="drop the Jacobian of the inner steps (a different, cheaper method)"
    )
    # Note the reference CLI flag bug: ``--new-data-in-inner`` is truthy for any string; its intended default is False.
    new_data_in_inner: bool = Field(default=False, description="draw a new batch after every inner step")


def prospr_scores(
    model: nn.Module,
    batches: Sequence[tuple[Tensor, Tensor]],
    names: Sequence[str],
    num_steps: int = 3,
    inner_lr: float = 0.1,
    inner_momentum: float = 0.0,
    first_order: bool = False,
) -> Scores:
    """|dL_meta/dc| for every weight in ``names``. Uses ``batches[min(k, len - 1)]`` at step k (k = 0..M).

    ``model`` is used as is, in train mode (its BN running stats get updated, modules torch cannot differentiate
    twice are swapped: ``autos.model_compat``): pass a copy.
    """
    # docs/reference/methods.md §0.6 / §1 step 1: batch statistics (dropout off: the score is a function of the data)
    scoring_mode(prepare_double_backward_(model), True)
    with double_backward("prospr", model, forward_probe(batches[0][0])):
        return _meta_gradients(model, batches, names, num_steps, inner_lr, inner_momentum, first_order)


def _meta_gradients(
    model: nn.Module,
    batches: Sequence[tuple[Tensor, Tensor]],
    names: Sequence[str],
    num_steps: int,
    inner_lr: float,
    inner_momentum: float,
    first_order: bool,
) -> Scores:
    """Steps 3-6 of ``prospr_scores`` on a model already in its scoring mode."""
    params = dict(model.named_parameters())
    masks = {n: torch.ones_like(params[n], requires_grad=True) for n in names}
    # Step 3: the mask multiplies only the starting point theta_0; the inner updates are not re-masked.
    fast: dict[str, Tensor] = {
        n: masks[n] * p.detach() if n in masks else p.detach().clone().requires_grad_(True)
        for n, p in params.items()
    }
    keys = list(fast)
    momentum_buf: list[Tensor] | None = None

    def batch(k: int) -> tuple[Tensor, Tensor]:
        return batches[min(k, len(batches) - 1)]

    heartbeat = Heartbeat(logger=log)  # a line every 30 s on a large model (nothing when it is quick)
    for k in range(num_steps):  # step 4: functional SGD on fast weights
        heartbeat.beat("prospr: unrolled step %d/%d (%.0f s so far)", k + 1, num_steps, heartbeat.elapsed())
        x, y = batch(k)
        loss = F.cross_entropy(functional_call(model, fast, (x,)), y)
        grads = torch.autograd.grad(loss, [fast[n] for n in keys], create_graph=not first_order)
        if inner_momentum > 0:
            # PyTorch convention buf_1 = g_1. (The reference clones *and detaches* g_1 here, which drops part
            # of the meta-gradient when momentum > 0; we keep the graph, as docs/reference/methods.md §1 describes.)
            if momentum_buf is None:
                momentum_buf = list(grads)
            else:
                momentum_buf = [inner_momentum * b + g for b, g in zip(momentum_buf, grads, strict=True)]
            steps = momentum_buf
        else:
            steps = list(grads)
        fast = {n: fast[n] - inner_lr * d for n, d in zip(keys, steps, strict=True)}

    x, y = batch(num_steps)  # step 5: meta-loss after M steps
    meta_loss = F.cross_entropy(functional_call(model, fast, (x,)), y)
    meta_grads = torch.autograd.grad(meta_loss, [masks[n] for n in names])
    return {n: g.detach().abs().cpu() for n, g in zip(names, meta_grads, strict=True)}  # step 6


@PRUNERS.register("prospr")
class ProsPr(ScorePruner[ProsPrSettings]):
    Settings = ProsPrSettings
    title = "ProsPr"
    needs_data = True

    def score(self, ctx: PruneContext) -> Scores:
        s = self.settings
        model = ctx.copy_model()
        # The same batch convention as SNIP (ctx.batches(1, batch_size)), so num_steps=0 reproduces SNIP.
        batches = ctx.batches(s.num_steps + 1 if s.new_data_in_inner else 1, s.batch_size)
        return prospr_scores(
            model, batches, ctx.prunable_names(model), s.num_steps, s.inner_lr, s.inner_momentum, s.first_order
        )
