"""The pruner contract: every method turns a model at initialization into a mask.

- ``Pruner[S]`` is generic over its typed pydantic ``Settings`` model ``S``: ``self.settings`` is an ``S``.
  A method that needs its own loop (ERK's closed-form budgets, K-starts, Pruning from Scratch, ...) subclasses
  it and implements ``prune``; it builds on ``autos.training`` and states the ``scope`` of its result.
- ``ScorePruner[S]`` is a method defined by its scoring rule: implement ``score`` (higher = keep). Its ``prune``
  owns the selection: the one shared ``autos.masking.select_mask`` with the settings' ``scope``, either once or,
  with ``iterations > 1``, on Synaptic-Flow's iterative schedule (``prune_loop``). So any score method can run
  iteratively, and SynFlow is its score plus that schedule.

``PruneResult.scope`` records the scope a mask was selected with; the modifiers (``autos.sweep.modifiers``) read it. A
pruner never modifies ``ctx.model``: it works on copies (tested for every method).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from autos.config import FeaturesConfig, TrainRecipe
from autos.masking import (
    Masks,
    Scope,
    Scores,
    apply_masks_,
    invert_scores,
    layer_floor_counts,
    prunable_parameters,
    select_mask,
)
from autos.progress import Heartbeat
from autos.pruners.shared import shared_result
from autos.registry import MethodKind
from autos.training.batches import ImageData, scoring_batches

if TYPE_CHECKING:  # the scorer package is imported by the AutoS method only when it runs
    from autos.scorer import ScorerNet, ScorerSettings

log = logging.getLogger(__name__)

# What ``autos.scorer.load_scorer`` returns: (scorer net in eval mode, scorer name, its settings, metadata).
LoadedScorer = tuple["ScorerNet", str, "ScorerSettings", dict[str, Any]]


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_one(value: object) -> bool:
    return value == 1


def _is_false(value: object) -> bool:
    return value is False


def _is_zero(value: object) -> bool:
    return value == 0


# The settings that change *what* a method selects (not how much work it does): under a registered method's name they
# keep its defaults; another value is a variant with a name of its own (autos.config.transfer).
SELECTION: dict[str, Any] = {"selection": True}


class ScoreSettings(NoSettings):
    """The selection settings every score-based method shares (``ScorePruner.prune`` reads them).

    ``iterations`` and ``invert`` are left out of the settings' dump (and so of the resolved config a stage
    writes) while they hold their one-shot defaults, so that adding them changed no existing record; any other
    value is recorded. ``SynFlowSettings`` redeclares both (always recorded, 100 iterations by default).
    """

    scope: Scope = Field(
        default="global", json_schema_extra=SELECTION,
        description="rank all layers together (the methods' default) or keep the density per layer",
    )
    iterations: int = Field(
        default=1, ge=1, exclude_if=_is_one, json_schema_extra=SELECTION,
        description="scoring rounds on Synaptic-Flow's exponential schedule: round k of n scores the masked network "
        "and keeps density^(k/n), pruned weights stay pruned (1 = one-shot)",
    )
    invert: bool = Field(
        default=False, exclude_if=_is_false, json_schema_extra=SELECTION,
        description="keep the lowest scores (negated) in every round: sanity check S3 inside the selection",
    )
    layer_floor: float = Field(
        default=0.0, ge=0.0, le=1.0, exclude_if=_is_zero, json_schema_extra=SELECTION,
        description="every layer keeps at least this fraction of what ERK would keep in it at the same density "
        "(its highest-scored weights), the rest is ranked globally; stops a global ranking from emptying small "
        "layers (0 = no floor, the methods' own selection; needs scope 'global')",
    )

    @model_validator(mode="after")
    def _floor_is_global(self) -> ScoreSettings:
        if self.layer_floor > 0 and self.scope != "global":
            raise ValueError(f"layer_floor {self.layer_floor} needs scope 'global', got scope {self.scope!r} (a "
                             "layer-wise selection already fixes every layer's count)")
        return self


class DataSettings(ScoreSettings):
    """Settings of methods that score on a few batches of training data."""

    num_batches: int = Field(default=1, ge=1, description="training batches the score is summed over")
    batch_size: int = Field(default=256, ge=1, description="images per scoring batch")
    train_mode: bool = Field(
        default=True,
        description="BN in train mode while scoring (docs/reference/methods.md §0.6: data-driven scores use "
        "batch stats)",
    )


S = TypeVar("S", bound=BaseModel)
SS = TypeVar("SS", bound=ScoreSettings)


@dataclass
class PruneContext:
    """Everything a method may use. ``model`` is the target at init (never modified by a pruner)."""

    model: nn.Module
    data: ImageData
    recipe: TrainRecipe
    device: torch.device
    seed: int
    num_classes: int
    include_classifier: bool = True
    build_model: Callable[[int], nn.Module] | None = None  # same architecture, init drawn from a seed
    cache_dir: Path | None = None  # for expensive intermediate results (e.g. a trained dense model)
    root: Path = Path(".")  # the repository root: relative paths in settings (AutoS's scorer_dir) resolve here
    features: FeaturesConfig = field(default_factory=FeaturesConfig)  # how target features are built (AutoS)
    scorer: LoadedScorer | None = None  # an AutoS scorer already loaded (else AutoS loads it from disk)
    scorer_dir: Path | None = None  # the study's scorer for this cell (its source run); None: the settings' one
    # where work that does not depend on the density is kept for the cells of the other sparsities, and what it
    # depends on (autos.pruners.shared); None: computed here, never shared
    share_dir: Path | None = None
    share_key: str | None = None
    densities: tuple[float, ...] = ()  # every density the study evaluates on this target (a run shared across them)

    def shared(self, what: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per (``share_key``, ``what``) across this method's cells (``autos.pruners.shared``)."""
        return shared_result(self.share_dir, self.share_key, what, compute)

    def prunable_names(self, model: nn.Module | None = None) -> list[str]:
        return list(prunable_parameters(model or self.model, self.include_classifier))

    def copy_model(self) -> nn.Module:
        return copy.deepcopy(self.model).to(self.device)

    def masked(self, masks: Mapping[str, Tensor]) -> PruneContext:
        """This context with ``model`` replaced by a copy whose pruned weights are zero (``ctx.model`` unchanged)."""
        model = copy.deepcopy(self.model)
        apply_masks_(model, masks)
        return dataclasses.replace(self, model=model)

    def batches(
        self, num_batches: int, batch_size: int, *, augment: bool = False, seed_offset: int = 0
    ) -> list[tuple[Tensor, Tensor]]:
        """Normalised training batches drawn with the context seed (the same for every method)."""
        return scoring_batches(self.data, num_batches, batch_size, seed=self.seed + 7919 * (seed_offset + 1),
                               device=self.device, augment=augment)


@dataclass
class PruneResult:
    masks: Masks
    info: dict[str, float | int | str] = field(default_factory=dict)  # logged next to the result
    state_dict: dict[str, Tensor] | None = None  # weights to train from, for methods that move them
    scores: Scores | None = None  # kept for modifiers (invert) when the method is score-based and one-shot
    train: bool = True  # False: evaluate the masked weights as returned (methods that never tune weights)
    # How the kept count was spread over layers: 'global' = one ranking across all prunable layers decided each
    # layer's count; 'layerwise' = every layer's count was fixed before ranking within it. None: not recorded
    # (then ``autos.sweep.modifiers.selection_scope`` reads it off the mask).
    scope: Scope | None = None

    def __post_init__(self) -> None:
        self.masks = Masks(self.masks)  # checked here, where a method hands it over (bool tensors, str keys)


class Pruner(Generic[S]):
    """Base class. ``Settings`` is validated from ``transfer.method_settings.<name>`` at config load."""

    Settings: type[S]
    name: ClassVar[str]  # the registry name, set by ``PRUNERS.register``
    title: ClassVar[str]  # its name for people ("SynFlow"): figures, captions, sentences
    needs_data: ClassVar[bool] = False  # whether it reads training images (else data-free: shapes only)
    reads_scorer: ClassVar[bool] = False  # whether it reads the study's trained AutoS scorer (its cells key on it)
    kind: ClassVar[MethodKind] = "pai"  # autos.registry.MethodKind: pai, early or trained

    def __init__(self, settings: S | None = None) -> None:
        self.settings: S = settings if settings is not None else self.Settings()

    @classmethod
    def shares_work(cls, settings: BaseModel) -> bool:
        """Whether cells of this method with ``settings`` at different densities share work computed once
        (``PruneContext.shared``); then the sweep runs one cell of each seed first (``SweepPlan.after``)."""
        return False

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        raise NotImplementedError


def prune_loop(
    score: Callable[[PruneContext], Scores],
    ctx: PruneContext,
    density: float,
    *,
    scope: Scope = "global",
    iterations: int = 1,
    invert: bool = False,
    layer_floor: float = 0.0,
) -> tuple[Masks, Scores]:
    """Synaptic-Flow's ``prune_loop`` with its exponential schedule; returns (masks, the last round's scores).

    Round k = 1..n scores the network with the current mask applied (``ctx.masked``; round 1 scores ``ctx`` as
    is) and keeps ``density ** (k / n)`` of all prunable weights by ``select_mask``; weights already pruned stay
    pruned (``alive``), even at tied zero scores. ``invert`` negates the scores of every round (sanity check S3).
    ``layer_floor`` > 0 gives every round's selection a floor per layer (``layer_floor_counts``). With n = 1 it is
    the one-shot selection.

    A long loop says where it is: ``<method>: scoring round k/n`` at most every ``progress.HEARTBEAT_SECONDS``
    (nothing when the loop is quick), and a closing line when it said anything.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    label = _method_label(score)
    heartbeat = Heartbeat(logger=log)
    masks: Masks | None = None
    scores: Scores = {}
    for k in range(1, iterations + 1):
        heartbeat.beat("%s: scoring round %d/%d (%.0f s so far)", label, k, iterations, heartbeat.elapsed())
        scores = score(ctx if masks is None else ctx.masked(masks))
        ranked = invert_scores(scores) if invert else scores
        round_density = density ** (k / iterations)
        floor = layer_floor_counts(ranked, round_density, layer_floor, alive=masks) if layer_floor > 0 else None
        masks = select_mask(ranked, round_density, scope=scope, alive=masks, floor=floor)
    if heartbeat.fired:
        log.info("%s: %d scoring round(s) done in %.0f s", label, iterations, heartbeat.elapsed())
    assert masks is not None
    return masks, scores


def _method_label(score: Callable[[PruneContext], Scores]) -> str:
    """The registered name of the method whose ``score`` this is (progress lines), else 'scoring'."""
    owner = getattr(score, "__self__", None)
    return "scoring" if owner is None else getattr(owner, "name", type(owner).__name__)


class ScorePruner(Pruner[SS]):
    """A method defined by its scoring rule alone: implement ``score``; the selection is shared.

    One-shot (``iterations == 1``): the result keeps the scores it ranked (negated when ``invert``), so the
    ``invert`` modifier can re-rank them. Iterative: ``scores`` is None, because the last round's scores are
    computed on the masked network and cannot be re-ranked after the fact (use the ``invert`` setting); the same
    with a ``layer_floor``, which the modifier's plain re-ranking would drop.
    """

    def score(self, ctx: PruneContext) -> Scores:
        raise NotImplementedError

    def result_info(self) -> dict[str, float | int | str]:
        """Entries logged next to every result of this method (none by default)."""
        return {}

    @classmethod
    def shares_work(cls, settings: BaseModel) -> bool:
        return getattr(settings, "iterations", 1) == 1  # one-shot: one scoring serves every density

    def shared_score(self, ctx: PruneContext) -> Scores:
        """``score(ctx)``, computed once for this method's cells at every sparsity (``PruneContext.shared``)."""
        return cast(Scores, ctx.shared("scores", lambda: self.score(ctx)))

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        # one-shot: the scores do not depend on the density, so the cells of every sparsity share one scoring
        score = self.shared_score if s.iterations == 1 else self.score
        masks, scores = prune_loop(score, ctx, density, scope=s.scope, iterations=s.iterations, invert=s.invert,
                                   layer_floor=s.layer_floor)
        # the invert modifier re-ranks ``scores`` with the plain selection, which knows no floor: a floored or
        # iterative method inverts with its ``invert`` setting instead
        one_shot = s.iterations == 1 and s.layer_floor == 0
        ranked = (invert_scores(scores) if s.invert else scores) if one_shot else None
        return PruneResult(masks=masks, info=self.result_info(), scores=ranked, scope=s.scope)


# --------------------------------------------------------------------------- helpers shared by pruners that train

PhaseSchedule = Literal["constant", "compressed"]


def phase_recipe(recipe: TrainRecipe, epochs: int, schedule: PhaseSchedule = "constant") -> TrainRecipe:
    """The recipe for a short selection phase of ``epochs`` epochs.

    ``constant``: the recipe's base lr held constant (warm-up kept): the first epochs of the full schedule.
    ``compressed``: the recipe's own schedule squeezed into ``epochs`` (lr decays to ~0 at the end).
    """
    if schedule == "compressed":
        return recipe.with_epochs(epochs)
    return recipe.model_copy(update={"epochs": epochs, "schedule": "constant"})


def flat_settings(settings: BaseModel, prefix: str = "") -> dict[str, float | int | str]:
    """Settings as flat ``info`` entries (nested models become ``outer.inner`` keys; None becomes 'null')."""
    out: dict[str, float | int | str] = {}
    for key, value in settings.model_dump().items():
        name = f"{prefix}{key}"
        if isinstance(getattr(settings, key), BaseModel):
            out.update(flat_settings(getattr(settings, key), prefix=f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = "null" if value is None else str(value)
    return out


def clone_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
