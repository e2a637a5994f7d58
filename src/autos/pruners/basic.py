"""Data-free baselines that need no training: random (uniform per layer) and magnitude at init."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel

from autos.masking import Scores
from autos.pruners import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, PruneResult, ScopeSettings, ScorePruner


@PRUNERS.register("random")
class RandomUniform(ScorePruner):
    """Uniform random per layer: every prunable layer keeps the same density (methods.md section 9)."""

    Settings: ClassVar[type[BaseModel]] = NoSettings

    def score(self, ctx: PruneContext) -> Scores:
        generator = torch.Generator().manual_seed(ctx.seed)
        params = dict(ctx.model.named_parameters())
        return {name: torch.rand(params[name].shape, generator=generator) for name in ctx.prunable_names()}

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        from autos.masking import select_mask

        scores = self.score(ctx)
        return PruneResult(masks=select_mask(scores, density, scope="layerwise"), scores=scores)


@PRUNERS.register("magnitude")
class Magnitude(ScorePruner):
    """|w0|. Global by default, which collapses layers when init scales differ (methods.md section 8)."""

    Settings: ClassVar[type[BaseModel]] = ScopeSettings

    def score(self, ctx: PruneContext) -> Scores:
        params = dict(ctx.model.named_parameters())
        return {name: params[name].detach().abs().cpu() for name in ctx.prunable_names()}
