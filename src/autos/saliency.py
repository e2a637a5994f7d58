"""Gradient saliencies shared by IRP's SNIP criterion and the SNIP/ProsPr pruners (no pruner imports here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autos.masking import Scores


def snip_scores(model: torch.nn.Module, batches: list, names: list[str], train_mode: bool = True) -> Scores:
    """SNIP connection sensitivity |w * g| (Lee et al. 2019), g summing the batch-mean loss gradients over
    ``batches`` (Synaptic-Flow's accumulation; methods.md section 5). Train-mode BN by default (section 0.6)."""
    model.train(train_mode)
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
    return {n: (params[n].grad * params[n]).detach().abs().cpu() for n in names}
