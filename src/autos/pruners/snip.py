"""SNIP (Lee et al., ICLR 2019): connection sensitivity |w * dL/dw| at init, summed over scoring batches."""

from __future__ import annotations

from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import DataSettings, PruneContext, ScorePruner
from autos.saliency import snip_scores

__all__ = ["SNIP", "snip_scores"]


@PRUNERS.register("snip")
class SNIP(ScorePruner[DataSettings]):
    """|w * dL/dw| at init (Lee et al. 2019; docs/reference/methods.md §5), global ranking."""

    Settings = DataSettings
    title = "SNIP"
    needs_data = True

    def score(self, ctx: PruneContext) -> Scores:
        s = self.settings
        model = ctx.copy_model()
        return snip_scores(model, ctx.batches(s.num_batches, s.batch_size), ctx.prunable_names(model), s.train_mode)
