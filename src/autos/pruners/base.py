"""The pruner contract: every method turns a model at initialization into a mask.

Score-based methods subclass ``ScorePruner`` and implement only ``score`` (higher = keep); the shared
``autos.masking.select_mask`` turns scores into a mask. Methods that need training or their own selection
(SynFlow's iterations, K-starts, Pruning from Scratch, ...) override ``prune`` and build on
``autos.training``. A pruner never modifies ``ctx.model``: it works on copies (tested for every method).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from autos.config import TrainRecipe
from autos.masking import Masks, Scores, prunable_parameters, select_mask
from autos.training import ImageData, scoring_batches


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScopeSettings(NoSettings):
    scope: Literal["global", "layerwise"] = Field(
        default="global", description="rank all layers together (the methods' default) or keep the density per layer"
    )


class DataSettings(ScopeSettings):
    """Settings of methods that score on a few batches of training data."""

    num_batches: int = Field(default=1, ge=1, description="training batches the score is summed over")
    batch_size: int = Field(default=256, ge=1, description="images per scoring batch")
    train_mode: bool = Field(
        default=True, description="BN in train mode while scoring (methods.md 0.6: data-driven scores use batch stats)"
    )


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
    resources: dict[str, Any] = field(default_factory=dict)  # e.g. the trained AutoS scorer

    def prunable_names(self, model: nn.Module | None = None) -> list[str]:
        return list(prunable_parameters(model or self.model, self.include_classifier))

    def copy_model(self) -> nn.Module:
        return copy.deepcopy(self.model).to(self.device)

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
    scores: Scores | None = None  # kept for modifiers (invert) when the method is score-based
    train: bool = True  # False: evaluate the masked weights as returned (methods that never tune weights)


class Pruner:
    """Base class. ``Settings`` is validated from ``transfer.method_settings.<name>`` at config load."""

    Settings: ClassVar[type[BaseModel]] = NoSettings
    needs_data: ClassVar[bool] = False
    # 'pai' = at initialization; 'early' = after a little training; 'trained' = needs a trained model
    kind: ClassVar[str] = "pai"

    def __init__(self, settings: BaseModel | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        raise NotImplementedError


class ScorePruner(Pruner):
    """A method defined by its scoring rule alone."""

    Settings: ClassVar[type[BaseModel]] = ScopeSettings

    def score(self, ctx: PruneContext) -> Scores:
        raise NotImplementedError

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        scores = self.score(ctx)
        scope = getattr(self.settings, "scope", "global")
        return PruneResult(masks=select_mask(scores, density, scope=scope), scores=scores)


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
