"""SynFlow (Tanaka et al., NeurIPS 2020; ``ganguli-lab/Synaptic-Flow``): docs/reference/methods.md §7.

Data-free synaptic saliency |theta * dR/dtheta| of the "linearised" network (every state_dict tensor replaced by
its absolute value, eval mode, all-ones input, R = sum of the outputs), pruned iteratively on an exponential
schedule: iteration k of n keeps density^(k/n), and already-pruned weights stay pruned. Iterating is what avoids
layer collapse (the per-layer conservation law makes single-shot global pruning over-prune large layers).

SynFlow is a score plus a schedule: ``SynFlow.score`` is one scoring of the masked network, and the iterations
are ``ScorePruner.prune``'s shared schedule (``autos.pruners.base.prune_loop``), the one every score method has.

On models that are not ReLU networks (bench/model_matrix.py, docs/benchmarks.md "Methods on torchvision models"):

- Layers behind a saturated gate carry no flow. In the linearised network every pre-activation is large and
  positive, so a squeeze-excitation gate (MobileNetV3's Hardsigmoid: slope exactly 0 above 3; EfficientNet's
  Sigmoid: slope underflows to 0) is constant, R does not depend on the gate's weights, and their scores are
  exactly 0: the first round prunes them first and they empty (18 layers of MobileNetV3-small, 28 of
  EfficientNet-B0). The network is not cut (each gate becomes a constant per-channel scale), but the layers are
  empty; ``score`` says so in a warning, and ``layer_floor`` (or the API's collapse repair) keeps a share of them.
  Using the gates' linear part instead overflows float64 (the gate multiplies two path sums), so it is not done.
  It is not a precision effect (float32 and float64 give the same zeros), nor BN (eval-mode BN linearises to a
  positive scale). A classifier initialised to zero (torchvision's ViT) blocks every path the same way: every
  score is 0 (SNIP's gradients are 0 too, but for the classifier's). LayerNorm is left as it is: as its affine
  part alone, ViT's attention logits overflow float64.
- Cost: one round is a forward and backward of a batch of one (~2 s for VGG-11-bn's 128.8 M weights at 32x32
  on 2 CPU cores) plus ``select_mask`` over every weight (~10 s there), so the default 100 rounds take ~20 min on
  such a model (bench/model_matrix.py --synflow-rounds); the rounds report themselves (``prune_loop``'s
  heartbeat) and ``iterations`` trades them for time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import SELECTION, PruneContext, ScorePruner, ScoreSettings

log = logging.getLogger(__name__)


class SynFlowSettings(ScoreSettings):
    # Section 7 "Iterative schedule": prune_epochs = 100 for SynFlow in the paper runs. Redeclared (not the
    # one-shot default of ScoreSettings) and always recorded.
    iterations: int = Field(default=100, ge=1, json_schema_extra=SELECTION,
                            description="scoring rounds on the exponential schedule d^(k/n)")
    # Frankle et al. 2021 inversion (section 11, S3) for an iterative method: Synaptic-Flow's prune_loop inverts
    # the scores at every iteration, so it has to happen in the schedule; ``autos.sweep.modifiers.invert`` on a final
    # score would re-select already-pruned weights. Negation, not 1/s.
    invert: bool = Field(default=False, json_schema_extra=SELECTION,
                         description="keep the lowest scores at every iteration (sanity check S3)")
    # float64 is the safe default (section 7 "Numerical range"); float32 is ~6x faster on a CPU and exact enough
    # for shallow or narrow nets (the default CPU study uses it; checked there: no empty layer, no inf/nan).
    precision: Literal["float64", "float32"] = Field(default="float64", description="dtype of the linearised copy")


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
    scores = {}
    for n in names:
        grad = params[n].grad
        if grad is None:
            raise ValueError(f"{n!r} is not on the path from the input to the output")
        scores[n] = (grad * params[n]).detach().abs().cpu()
    model.zero_grad(set_to_none=True)
    return scores


@PRUNERS.register("synflow")
class SynFlow(ScorePruner[SynFlowSettings]):
    """The synaptic saliency of the linearised network, pruned on the shared iterative schedule (`iterations`)."""

    Settings = SynFlowSettings
    title = "SynFlow"

    def score(self, ctx: PruneContext) -> Scores:
        """One scoring of ``ctx.model`` (the schedule passes the currently masked network) in a linearised copy."""
        model = ctx.copy_model()
        names = ctx.prunable_names(model)
        input_shape = tuple(ctx.data.train_x.shape[1:])  # (C, H, W) of the data, batch of one
        linearize_(model, torch.float64 if self.settings.precision == "float64" else torch.float32)
        scores = synflow_scores(model, names, input_shape)
        if not all(torch.isfinite(v).all() for v in scores.values()):
            raise FloatingPointError("SynFlow scores overflowed; use precision: float64")
        self._warn_zero_flow(ctx, scores)
        return scores

    def _warn_zero_flow(self, ctx: PruneContext, scores: Scores) -> None:
        """Once per call: the layers whose kept weights all score 0 (no synaptic flow; see the module doc)."""
        if getattr(self, "_warned_zero_flow", False):
            return
        zero = [n for n in scores if not bool(ctx.model.get_parameter(n).any())]
        silent = [n for n, v in scores.items() if not bool(v.any()) and n not in zero]
        if silent:
            self._warned_zero_flow = True
            shown = ", ".join(silent[:4]) + (f" and {len(silent) - 4} more" if len(silent) > 4 else "")
            cause = (f"layer(s) whose weights are all zero block it: {', '.join(zero[:4])}" if zero else
                     "e.g. a saturated squeeze-excitation gate on their way to the output")
            log.warning("synflow: %d prunable layer(s) carry no flow in the linearised network (every score 0; %s), "
                        "so they are pruned first and empty: %s; setting layer_floor > 0 keeps a share of every "
                        "layer", len(silent), cause, shown)

    def result_info(self) -> dict[str, float | int | str]:
        return {"synflow_iterations": self.settings.iterations, "synflow_precision": self.settings.precision}
