"""SNIP (Lee et al., ICLR 2019): connection sensitivity |w * dL/dw| at init, summed over scoring batches."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from autos.masking import Scores
from autos.pruners import PRUNERS
from autos.pruners.base import DataSettings, PruneContext, ScorePruner


def snip_scores(model: torch.nn.Module, batches: list, names: list[str], train_mode: bool = True) -> Scores:
    """|w * g| where g sums the batch-mean loss gradients over ``batches`` (Synaptic-Flow's accumulation)."""
    model.train(train_mode)
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
    return {n: (params[n].grad * params[n]).detach().abs().cpu() for n in names}


@PRUNERS.register("snip")
class SNIP(ScorePruner):
    Settings: ClassVar[type[BaseModel]] = DataSettings
    needs_data: ClassVar[bool] = True

    def score(self, ctx: PruneContext) -> Scores:
        s = self.settings
        model = ctx.copy_model()
        return snip_scores(model, ctx.batches(s.num_batches, s.batch_size), ctx.prunable_names(model), s.train_mode)
