"""AutoS: score every weight of the target with the scorer trained on the source's IRP survival counts.

The target's features come from ``autos.features.weight_features``, the same function that built the source
table, so training and transfer share one feature definition. Scores are the scorer's raw regression outputs
(higher = survives longer), ranked globally as in the reference (docs/reference/autos.md §5.3).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from autos.features import weight_features
from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import LoadedScorer, PruneContext, ScorePruner, ScoreSettings


class AutoSSettings(ScoreSettings):
    scorer_dir: str = Field(default="data/scorer", description="the trained scorer (relative to the repo root)")


@PRUNERS.register("autos")
class AutoS(ScorePruner[AutoSSettings]):
    """The learned scorer's output for every weight's features, ranked globally (docs/reference/autos.md §5.3)."""

    Settings = AutoSSettings
    needs_data = True

    def __init__(self, settings: AutoSSettings | None = None) -> None:
        super().__init__(settings)
        self._loaded: dict[Path, LoadedScorer] = {}  # loaded once per pruner (one pruner serves a whole target)

    def scorer(self, ctx: PruneContext) -> LoadedScorer:
        """``ctx.scorer`` when given, else the scorer at ``ctx.root / scorer_dir`` (loaded on first use)."""
        if ctx.scorer is not None:
            return ctx.scorer
        from autos.scorer import load_scorer

        path = ctx.root / self.settings.scorer_dir
        if path not in self._loaded:
            self._loaded[path] = load_scorer(path)
        return self._loaded[path]

    def score(self, ctx: PruneContext) -> Scores:
        from autos.scorer import required_extra, score_layers

        model, _name, settings, _meta = self.scorer(ctx)
        extra = required_extra(settings)
        _infos, features = weight_features(ctx.copy_model(), ctx.data, ctx.features, device=ctx.device,
                                           seed=ctx.seed, include_classifier=ctx.include_classifier, extra=extra)
        return {name: s.cpu() for name, s in score_layers(model, settings, features, device=ctx.device).items()}
