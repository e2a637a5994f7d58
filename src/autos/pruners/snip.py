"""SNIP (Lee et al., ICLR 2019): connection sensitivity |w * dL/dw| at init, summed over scoring batches."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from autos.masking import Scores
from autos.pruners import PRUNERS
from autos.pruners.base import DataSettings, PruneContext, ScorePruner
from autos.saliency import snip_scores


@PRUNERS.register("snip")
class SNIP(ScorePruner):
    """|w * dL/dw| at init (Lee et al. 2019; methods.md section 5), global ranking."""

    Settings: ClassVar[type[BaseModel]] = DataSettings
    needs_data: ClassVar[bool] = True

    def score(self, ctx: PruneContext) -> Scores:
        s = self.settings
        model = ctx.copy_model()
        return snip_scores(model, ctx.batches(s.num_batches, s.batch_size), ctx.prunable_names(model), s.train_mode)
