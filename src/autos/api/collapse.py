"""What ``autos.prune`` does about a mask that cuts the network: the diagnosis (``Health``: which layer was cut,
and how many after it lost every path), and the repair the caller chooses with ``on_collapse``.

- ``repair`` (the API's default): the method runs again with a floor on every layer's kept count
  (``layer_floor``: at least that fraction of what ERK would keep in the layer, the rest ranked as the method
  ranks; ``autos.masking.layer_floor_counts``), 0.25, then 0.5, then 1.0 of ERK's counts, until no layer is cut.
  The result records the floor it took. One-shot score methods score once for every attempt.
- ``warn``: the mask as the method chose it, with a ``LayerCollapseWarning`` naming the cut.
- ``error``: ``CollapseError`` naming the cut; nothing is returned.

A method without a ``layer_floor`` setting (random ERK, the methods that train) or selecting layer-wise cannot be
repaired this way: ``repair`` then warns, saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel
from torch import nn

from autos.masking import Masks
from autos.masking.health import effective_summary
from autos.pruners.base import PruneContext, Pruner, PruneResult

log = logging.getLogger(__name__)

OnCollapse = Literal["repair", "warn", "error"]
ON_COLLAPSE: tuple[OnCollapse, ...] = get_args(OnCollapse)
REPAIR_FLOORS = (0.25, 0.5, 1.0)


class LayerCollapseWarning(UserWarning):
    """A mask left a prunable layer with no (effective) weight: the network computes nothing through it."""


class CollapseError(ValueError):
    """``on_collapse='error'`` and the mask cut the network."""


@dataclass(frozen=True)
class Health:
    effective_sparsity: float | None  # None: the path analysis could not run this model
    empty: list[str]  # layers keeping no weight
    dead: list[str]  # layers keeping no weight on an input -> output path (the empty ones included)

    @property
    def collapsed(self) -> bool:
        return bool(self.empty or self.dead)

    @property
    def cut(self) -> str | None:
        """The layer that cut the network: the first emptied layer, else the first layer left without a path."""
        first = self.empty or self.dead
        return first[0] if first else None

    def describe(self) -> str:
        if not self.collapsed:
            return "no layer is cut"
        what = "keeps no weight" if self.cut in self.empty else "keeps no weight on an input -> output path"
        others = [name for name in self.dead if name != self.cut]
        more = f"; {len(others)} other layer(s) are left without a path through it" if others else ""
        emptied = [name for name in self.empty if name != self.cut]
        also = f" (also emptied: {', '.join(emptied[:5])}{' ...' if len(emptied) > 5 else ''})" if emptied else ""
        return f"layer {self.cut!r} {what}{also}{more}"


def health(model: nn.Module, masks: Masks, shape: tuple[int, ...] | None) -> Health:
    """Empty layers, and layers without an input -> output path when the input is a known square image (a model
    the path analysis cannot run gets the empty-layer check alone, with a logged note)."""
    empty = [name for name, m in masks.items() if not bool(m.any())]
    if shape is None or len(shape) != 3 or shape[1] != shape[2]:
        return Health(None, empty, empty)
    try:
        summary = effective_summary(model, masks, input_size=shape[1], in_channels=shape[0])
    except (RuntimeError, TypeError, ValueError) as exc:
        log.warning("effective sparsity not computed (the path analysis could not run this model): %s", exc)
        return Health(None, empty, empty)
    dead = [name for name, d in summary["layer_effective_density"].items() if d == 0.0]
    return Health(float(summary["effective_sparsity"]), empty, dead)


def _floored(pruner: Pruner[Any], fraction: float) -> Pruner[Any] | None:
    """The pruner with ``layer_floor = fraction``, or None when its settings have no floor or select layer-wise."""
    settings = pruner.settings
    if not isinstance(settings, BaseModel) or "layer_floor" not in type(settings).model_fields:
        return None
    if getattr(settings, "scope", "global") != "global" or settings.layer_floor >= fraction:  # type: ignore[attr-defined]
        return None
    try:
        floored = type(settings).model_validate({**settings.model_dump(), "layer_floor": fraction})
    except ValueError:  # the method fixes its floor (uniform random: every layer's count is fixed already)
        return None
    return type(pruner)(floored)


def repair(pruner: Pruner[Any], ctx: PruneContext, density: float, model: nn.Module,
           shape: tuple[int, ...] | None) -> tuple[PruneResult, Health, float] | None:
    """The method re-run with the smallest floor of ``REPAIR_FLOORS`` that leaves no layer cut; None when its
    settings have no floor. The attempts share one scoring (``PruneContext.shared``)."""
    if _floored(pruner, REPAIR_FLOORS[-1]) is None:
        return None
    with tempfile.TemporaryDirectory(prefix="autos-repair-") as tmp:
        shared = dataclasses.replace(ctx, share_dir=Path(tmp), share_key="repair")
        for fraction in REPAIR_FLOORS:
            floored = _floored(pruner, fraction)
            if floored is None:
                continue
            result = floored.prune(shared, density)
            diagnosis = health(model, result.masks, shape)
            if not diagnosis.collapsed or fraction == REPAIR_FLOORS[-1]:
                return result, diagnosis, fraction
    return None


def report(message: str, on_collapse: OnCollapse) -> None:
    if on_collapse == "error":
        raise CollapseError(message)
    warnings.warn(message, LayerCollapseWarning, stacklevel=4)  # points at the caller of autos.prune
