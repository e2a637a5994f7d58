"""Gradients and gradient saliencies shared by IRP's SNIP criterion, the target features (g0) and the SNIP, ProsPr
and GraSP pruners (no pruner imports here).

``summed_gradients`` is the one gradient-accumulation loop: features' g0, SNIP's g and GraSP's g all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from autos.masking import Scores
from autos.model_compat import scoring_mode


def summed_gradients(
    model: torch.nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    names: Sequence[str],
    *,
    temperature: float | None = None,
) -> tuple[dict[str, Tensor], int]:
    """Sum over ``batches`` of the gradient of the batch-mean cross-entropy, for the parameters ``names``.

    One ``backward`` per batch into ``.grad`` (Synaptic-Flow's accumulation; docs/reference/methods.md §5), the logits
    divided by ``temperature`` when given (GraSP). The model is used in the mode the caller set (train/eval BN)
    and its ``.grad`` are cleared before and after. Returns ({name: summed gradient}, number of batches).
    """
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    count = 0
    for x, y in batches:
        logits = model(x)
        if temperature is not None:
            logits = logits / temperature
        F.cross_entropy(logits, y).backward()
        count += 1
    if count == 0:
        raise ValueError("summed_gradients needs at least one batch")
    grads: dict[str, Tensor] = {}
    for name in names:
        grad = params[name].grad
        if grad is None:
            raise ValueError(f"{name!r} received no gradient")
        grads[name] = grad.detach()
    model.zero_grad(set_to_none=True)
    return grads, count


def snip_scores(model: torch.nn.Module, batches: list, names: list[str], train_mode: bool = True) -> Scores:
    """SNIP connection sensitivity |w * g| (Lee et al. 2019), g summing the batch-mean loss gradients over
    ``batches`` (``summed_gradients``; docs/reference/methods.md §5). Train-mode BN by default (§0.6), dropout
    and stochastic depth off (``scoring_mode``: the same call gives the same scores)."""
    scoring_mode(model, train_mode)
    params = dict(model.named_parameters())
    grads, _ = summed_gradients(model, batches, names)
    return {n: (grads[n] * params[n]).detach().abs().cpu() for n in names}
