"""Data-free baselines that need no training: random (uniform per layer) and magnitude at init."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import PruneContext, ScorePruner, ScoreSettings


class RandomSettings(ScoreSettings):
    # Uniform random per layer *is* a layer-wise selection of random scores; the scope is fixed, not a setting
    # (left out of the settings' dump: it cannot differ between runs).
    scope: Literal["layerwise"] = Field(
        default="layerwise", exclude=True, description="fixed: every prunable layer keeps the same density"
    )
    layer_floor: float = Field(default=0.0, ge=0.0, le=0.0, exclude=True,
                               description="fixed: no floor (every layer's count is already fixed)")


@PRUNERS.register("random")
class RandomUniform(ScorePruner[RandomSettings]):
    """Uniform random per layer: every prunable layer keeps the same density (docs/reference/methods.md §9)."""

    Settings = RandomSettings
    title = "Random"

    def score(self, ctx: PruneContext) -> Scores:
        generator = torch.Generator().manual_seed(ctx.seed)
        params = dict(ctx.model.named_parameters())
        return {name: torch.rand(params[name].shape, generator=generator) for name in ctx.prunable_names()}


@PRUNERS.register("magnitude")
class Magnitude(ScorePruner[ScoreSettings]):
    """|w0|. Global by default, which collapses layers when init scales differ (docs/reference/methods.md §8)."""

    Settings = ScoreSettings
    title = "Magnitude"

    def score(self, ctx: PruneContext) -> Scores:
        params = dict(ctx.model.named_parameters())
        return {name: params[name].detach().abs().cpu() for name in ctx.prunable_names()}
