"""SynFlow (Tanaka et al., NeurIPS 2020; ``ganguli-lab/Synaptic-Flow``): methods.md section 7.

Data-free synaptic saliency |theta * dR/dtheta| of the "linearised" network (every state_dict tensor replaced by
its absolute value, eval mode, all-ones input, R = sum of the outputs), pruned iteratively on an exponential
schedule: iteration k of n keeps density^(k/n), and already-pruned weights stay pruned. Iterating is what avoids
layer collapse (the per-layer conservation law makes single-shot global pruning over-prune large layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from autos.masking import Masks, Scores, invert_scores, select_mask
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, Pruner, PruneResult, ScopeSettings


class SynFlowSettings(ScopeSettings):
    # Section 7 "Iterative schedule": prune_epochs = 100 for SynFlow in the paper runs.
    iterations: int = Field(100, ge=1, description="scoring rounds on the exponential schedule d^(k/n)")
    # Frankle et al. 2021 inversion (section 11, S3) for an iterative method: Synaptic-Flow's prune_loop inverts
    # the scores at every iteration, so it has to happen here; ``autos.modifiers.invert`` on a final score
    # would re-select already-pruned weights. Negation, not 1/s.
    invert: bool = Field(False, description="keep the lowest scores at every iteration (sanity check S3)")
    # float64 is the safe default (section 7 "Numerical range"); float32 is ~6x faster on a CPU and exact enough
    # for shallow or narrow nets (the default CPU study uses it; checked there: no empty layer, no inf/nan).
    precision: Literal["float64", "float32"] = Field("float64", description="dtype of the linearised copy")


def linearize_(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Eval mode, |tensor| for every floating parameter and buffer (BN running stats included), in ``dtype``.

    Eval mode because train-mode BN on a batch of one constant image breaks (section 7 pitfalls); float64
    because path norms of deep nets overflow/underflow float32 (section 7 "Numerical range").
    """
    model.to(dtype).eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():  # state_dict tensors share storage with the module's
            if tensor.is_floating_point():
                tensor.abs_()
    return model


def synflow_scores(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> Scores:
    """One SynFlow scoring of an already linearised ``model`` as it stands (masks already multiplied in).

    A weight that is zero (pruned) gets score 0 because the score carries the factor theta.
    """
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    first = params[names[0]]
    x = torch.ones((1, *input_shape), dtype=first.dtype, device=first.device)
    model(x).sum().backward()
    scores = {n: (params[n].grad * params[n]).detach().abs().cpu() for n in names}
    model.zero_grad(set_to_none=True)
    return scores


def synflow_masks(
    model: nn.Module,
    names: Sequence[str],
    input_shape: Sequence[int],
    density: float,
    iterations: int = 100,
    scope: str = "global",
    invert: bool = False,
    dtype: torch.dtype = torch.float64,
) -> tuple[Masks, Scores]:
    """Iterative SynFlow on ``model`` (linearised in place: pass a copy). Returns (masks, last scores)."""
    linearize_(model, dtype)
    params = dict(model.named_parameters())
    theta0 = {n: params[n].detach().clone() for n in names}
    masks: Masks = {n: torch.ones(theta0[n].shape, dtype=torch.bool) for n in names}
    scores: Scores = {}
    for k in range(1, iterations + 1):
        with torch.no_grad():  # the mask holds between iterations (Synaptic-Flow's masked layers multiply it in)
            for n in names:
                params[n].copy_(theta0[n] * masks[n].to(theta0[n].device))
        scores = synflow_scores(model, names, input_shape)
        ranked = invert_scores(scores) if invert else scores
        # "exponential" schedule d_k = d^(k/n); alive=masks keeps pruned weights pruned even at tied zero scores
        masks = select_mask(ranked, density ** (k / iterations), scope=scope, alive=masks)
    return masks, scores


@PRUNERS.register("synflow")
class SynFlow(Pruner):
    Settings: ClassVar[type[BaseModel]] = SynFlowSettings

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        model = ctx.copy_model()
        names = ctx.prunable_names(model)
        input_shape = tuple(ctx.data.train_x.shape[1:])  # (C, H, W) of the data, batch of one
        dtype = torch.float64 if s.precision == "float64" else torch.float32
        masks, scores = synflow_masks(model, names, input_shape, density, s.iterations, s.scope, s.invert, dtype)
        if not all(torch.isfinite(v).all() for v in scores.values()):
            raise FloatingPointError("SynFlow scores overflowed; use precision: float64")
        # scores=None: the last iteration's scores are 0 on pruned weights, so they cannot be re-ranked or
        # inverted after the fact; use the ``invert`` setting instead.
        return PruneResult(masks=masks, info={"synflow_iterations": s.iterations, "synflow_precision": s.precision})
