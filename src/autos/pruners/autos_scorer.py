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

Label: a scorer trained on ``scorer.label: residual_rank`` predicts the within-layer residual rank after |w0|;
its outputs are turned into scores with the magnitude curve stored beside it (``autos.scorer.labels``).

Selection: the shared ``ScorePruner`` selection (global by default, ``layer_floor`` available to every score
method). ``within_layer: random`` keeps the layer counts that selection chose and draws the weights inside each
layer at random (seeded): AutoS as a learned per-layer density allocator. Why it is offered: on the default study
the shuffle check showed that AutoS's layer densities transfer while its choice within a layer ranks like |w0|,
which at 98% sparsity is worse than random (docs/sweeps.md); Frankle et al. 2021 found the same of PaI methods.

Memory: layers are featurised and scored one at a time (``iter_weight_features`` streamed into ``score_layers``),
so a target with a 10^8-weight layer needs one layer's features, not every layer's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from pydantic import Field

from autos.config import FeaturesConfig
from autos.features import iter_weight_features
from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import (
    SELECTION,
    LoadedScorer,
    PruneContext,
    PruneResult,
    ScorePruner,
    ScoreSettings,
)


def _is_score(value: object) -> bool:
    return value == "score"


class AutoSSettings(ScoreSettings):
    scorer_dir: str = Field(default="data/scorer/0", description="the trained scorer (relative to the repo root; "
                            "the sweep gives each cell the scorer of its source run instead)")
    within_layer: Literal["score", "random"] = Field(
        default="score", exclude_if=_is_score, json_schema_extra=SELECTION,
        description="which weights each layer keeps: the scorer's highest (the paper) or random ones at the layer "
        "counts the scorer's ranking chose (a learned per-layer density allocation)",
    )


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
    title = "AutoS"
    needs_data = True
    reads_scorer = True

    def __init__(self, settings: AutoSSettings | None = None) -> None:
        super().__init__(settings)
        self._loaded: dict[Path, LoadedScorer] = {}  # loaded once per pruner (one pruner serves a whole target)

    def scorer_path(self, ctx: PruneContext) -> Path:
        """The context's scorer (a sweep cell's source run), else the settings' ``scorer_dir`` under the root."""
        return ctx.scorer_dir if ctx.scorer_dir is not None else ctx.root / self.settings.scorer_dir

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

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        result = super().prune(ctx, density)
        if self.settings.within_layer == "score":
            return result
        from autos.sweep.modifiers import shuffle_within_layers  # modifiers imports the pruner base

        # the per-layer counts of the scorer's selection, positions uniform within each layer (sanity check S1 as a
        # method); no scores to re-rank, so the invert modifier skips it
        return dataclasses.replace(result, masks=shuffle_within_layers(result.masks, seed=ctx.seed), scores=None)

    def score(self, ctx: PruneContext) -> Scores:
        from autos.scorer import required_extra, score_layers
        from autos.scorer.labels import compose_score, read_label_record

        model, _name, settings, meta = self.scorer(ctx)
        where = "the given scorer" if ctx.scorer is not None else f"scorer {self.scorer_path(ctx)}"
        label = read_label_record(meta, where)
        layers = iter_weight_features(ctx.copy_model(), ctx.data, self.features_config(ctx), device=ctx.device,
                                      seed=ctx.seed, include_classifier=ctx.include_classifier,
                                      extra=required_extra(settings))
        scores = score_layers(model, settings, ((info.name, columns) for info, columns in layers), device=ctx.device)
        # a residual_rank scorer predicts what |w0| leaves unexplained: add the magnitude curve back (labels module)
        w0 = dict(ctx.model.named_parameters())
        return {name: compose_score(s.cpu(), w0[name], label) for name, s in scores.items()}
