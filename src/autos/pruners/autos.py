"""AutoS: score every weight of the target with the scorer trained on the source's IRP survival counts.

The target's features come from ``autos.features.weight_features``, the same function that built the source
table, so training and transfer share one feature definition. Scores are the scorer's raw regression outputs
(higher = survives longer), ranked globally as in the reference (autos.md section 5.3).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from autos.config import FeaturesConfig
from autos.features import weight_features
from autos.masking import Scores
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, ScopeSettings, ScorePruner


class AutoSSettings(ScopeSettings):
    scorer_dir: str = Field(default="data/scorer", description="the trained scorer (relative to the repo root)")


@PRUNERS.register("autos")
class AutoS(ScorePruner):
    """The learned scorer's output for every weight's features, ranked globally (autos.md section 5.3)."""

    Settings: ClassVar[type[BaseModel]] = AutoSSettings
    needs_data: ClassVar[bool] = True

    def score(self, ctx: PruneContext) -> Scores:
        from autos.scorer import load_scorer, required_extra, score_layers

        scorer = ctx.resources.get("scorer")
        if scorer is None:
            root = Path(ctx.resources.get("root", "."))
            scorer = load_scorer(root / self.settings.scorer_dir)
            ctx.resources["scorer"] = scorer
        model, _name, settings, _meta = scorer
        features_cfg: FeaturesConfig = ctx.resources.get("features_config", FeaturesConfig())
        extra = required_extra(settings)
        _infos, features = weight_features(ctx.copy_model(), ctx.data, features_cfg, device=ctx.device,
                                           seed=ctx.seed, include_classifier=ctx.include_classifier, extra=extra)
        return {name: s.cpu() for name, s in score_layers(model, settings, features, device=ctx.device).items()}
