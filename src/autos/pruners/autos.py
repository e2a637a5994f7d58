"""AutoS: score every weight of the target with the scorer trained on the source's IRP survival counts.

The target's features come from ``autos.features.weight_features``, the same function that built the source
table, so training and transfer share one feature definition. Scores are the scorer's raw regression outputs
(higher = survives longer), ranked globally as in the reference (docs/reference/autos.md §5.3).

Which features config builds the target's features: the one stored with the scorer (``meta.features``), because
it defines the scorer's inputs (g0's reduction over batches, its batch size, augmentation); a scorer fed features
built otherwise scores nonsense. ``ctx.features`` (the study's ``features`` section, or the caller's) adds one
thing: ``gradient_max_batches``, when it sets one, caps the target's g0 pass, a compute budget the caller opts into
(e.g. ``autos-prune --gradient-batches``; with ``gradient_reduction='sum'`` fewer batches also mean a smaller g0,
as any change of the target's dataset size does). For an old scorer saved without a config, ``ctx.features`` is
the whole config (a warning is logged). In the pipeline both are the same section, so nothing changes there.

Memory: layers are featurised and scored one at a time (``iter_weight_features`` streamed into ``score_layers``),
so a target with a 10^8-weight layer needs one layer's features, not every layer's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from autos.config import FeaturesConfig
from autos.features import iter_weight_features
from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import LoadedScorer, PruneContext, ScorePruner, ScoreSettings


class AutoSSettings(ScoreSettings):
    scorer_dir: str = Field(default="data/scorer", description="the trained scorer (relative to the repo root)")


def target_features(stored: FeaturesConfig | None, requested: FeaturesConfig) -> FeaturesConfig:
    """The features config for the target (module docstring): the scorer's ``stored`` one, with the
    ``requested`` g0 batch cap when it sets one; ``requested`` itself when the scorer stored none."""
    if stored is None:
        return requested
    if requested.gradient_max_batches is not None:
        return stored.model_copy(update={"gradient_max_batches": requested.gradient_max_batches})
    return stored


@PRUNERS.register("autos")
class AutoS(ScorePruner[AutoSSettings]):
    """The learned scorer's output for every weight's features, ranked globally (docs/reference/autos.md §5.3)."""

    Settings = AutoSSettings
    needs_data = True

    def __init__(self, settings: AutoSSettings | None = None) -> None:
        super().__init__(settings)
        self._loaded: dict[Path, LoadedScorer] = {}  # loaded once per pruner (one pruner serves a whole target)

    def scorer_path(self, ctx: PruneContext) -> Path:
        return ctx.root / self.settings.scorer_dir

    def scorer(self, ctx: PruneContext) -> LoadedScorer:
        """``ctx.scorer`` when given, else the scorer at ``ctx.root / scorer_dir`` (loaded on first use)."""
        if ctx.scorer is not None:
            return ctx.scorer
        from autos.scorer import load_scorer

        path = self.scorer_path(ctx)
        if path not in self._loaded:
            self._loaded[path] = load_scorer(path)
        return self._loaded[path]

    def features_config(self, ctx: PruneContext) -> FeaturesConfig:
        """The config the target's features are built with (``target_features``)."""
        from autos.scorer.io import stored_features

        where = "the given scorer" if ctx.scorer is not None else f"scorer {self.scorer_path(ctx)}"
        return target_features(stored_features(self.scorer(ctx)[3], where), ctx.features)

    def score(self, ctx: PruneContext) -> Scores:
        from autos.scorer import required_extra, score_layers

        model, _name, settings, _meta = self.scorer(ctx)
        layers = iter_weight_features(ctx.copy_model(), ctx.data, self.features_config(ctx), device=ctx.device,
                                      seed=ctx.seed, include_classifier=ctx.include_classifier,
                                      extra=required_extra(settings))
        scores = score_layers(model, settings, ((info.name, columns) for info, columns in layers), device=ctx.device)
        return {name: s.cpu() for name, s in scores.items()}
