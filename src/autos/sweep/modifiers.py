"""Frankle et al. 2021 sanity checks, applicable to any method's ``PruneResult`` (docs/reference/methods.md §11).

- S1 ``shuffle_within_layers``: same count per layer, positions permuted uniformly. A real copy, unlike
  Synaptic-Flow's ``shuffle()``, which permutes into a local variable and is a no-op (section 7 bugs).
- S2 ``reinit_weights``: keep the mask, draw *fresh* weights from the same initializer (a new seed of the same
  model factory), not a permutation of the old values.
- S3 ``invert``: keep the lowest scores at the same density and scope (``scope_of``: the scope the result
  records), by negation (not Synaptic-Flow's 1/s, which does not reverse signed GraSP scores). Iterative
  selections (SynFlow, any score method with ``iterations > 1``) must invert at every iteration instead: the
  ``invert`` setting of ``autos.pruners.base.ScoreSettings``.
S4 (random at the same layer-wise densities) is S1.

The sweep reads them by name from ``MODIFIERS`` (``transfer.modifiers``); a new check is one registered class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from autos.masking import SCOPES, Masks, Scope, invert_scores, kept_count, select_mask
from autos.pruners.base import PruneContext, PruneResult
from autos.registry import Registry


def shuffle_within_layers(masks: Mapping[str, Tensor], seed: int) -> Masks:
    """S1: each layer's mask with its entries permuted uniformly at random (per-layer kept counts unchanged)."""
    generator = torch.Generator().manual_seed(seed)
    out = Masks()
    for name, mask in masks.items():
        flat = mask.detach().flatten()
        perm = torch.randperm(flat.numel(), generator=generator).to(flat.device)
        out[name] = flat[perm].view(mask.shape).clone()
    return out


def reinit_weights(ctx: PruneContext, masks: Mapping[str, Tensor], seed: int) -> dict[str, Tensor]:
    """S2: a state_dict of fresh weights (``ctx.build_model(seed)``) with the pruned weights zeroed.

    The mask itself is unchanged (the caller keeps using ``masks``). Every tensor comes from the fresh model
    (BN and biases too: they are part of "the same initializer"). Raises if ``seed`` reproduces the weights of
    ``ctx.model``, which would make the check a silent no-op.
    """
    if ctx.build_model is None:
        raise ValueError("reinit_weights needs ctx.build_model (a factory of the same architecture from a seed)")
    fresh = ctx.build_model(seed)
    state = {k: v.detach().clone() for k, v in fresh.state_dict().items()}
    original = ctx.model.state_dict()
    if all(torch.equal(state[n].cpu(), original[n].detach().cpu()) for n in masks):
        raise ValueError(f"reinit seed {seed} reproduces the original weights; pick another seed")
    with torch.no_grad():
        for name, mask in masks.items():
            state[name].mul_(mask.to(device=state[name].device, dtype=state[name].dtype))
    return state


def invert(scores: Mapping[str, Tensor], density: float, scope: Scope = "global") -> Masks:
    """S3: the mask keeping the *lowest* scores (scores negated, then the usual top-k selection).

    ``scope`` must be the one the method selected with (``scope_of``): inverting a layer-wise method
    globally would change its per-layer densities, which is a different check."""
    return select_mask(invert_scores(scores), density, scope=scope)


def scope_of(result: PruneResult, density: float) -> Scope:
    """The scope ``result`` was selected with: ``result.scope`` (every registered method records it); only a
    result without one (e.g. built by hand) falls back to reading it off the mask (``selection_scope``)."""
    return selection_scope(result.masks, density, declared=result.scope)


def selection_scope(masks: Mapping[str, Tensor], density: float, declared: str | None = None) -> Scope:
    """``declared`` when given (checked), else the scope read off the mask: layer-wise iff every layer keeps
    exactly ``kept_count(N_l, density)`` (as ``select_mask(scope='layerwise')`` does). A guess, for results that
    do not record their scope; a global selection can match it by chance."""
    if declared is not None:
        if declared not in SCOPES:
            raise ValueError(f"unknown scope {declared!r}; allowed: {', '.join(SCOPES)}")
        return "layerwise" if declared == "layerwise" else "global"
    per_layer = all(int(m.sum()) == kept_count(m.numel(), density) for m in masks.values())
    return "layerwise" if per_layer else "global"


# --------------------------------------------------------------------------- the registry the sweep reads

Variant = tuple[Masks, dict[str, Tensor] | None]  # the mask to train and the weights to start from (None: the init)


class Modifier(Protocol):
    """A sanity check: the variant it trains from a method's result. ``applies`` says whether it can run on this
    result (``invert`` needs re-rankable scores); a modifier that does not apply is skipped with a log line."""

    def applies(self, result: PruneResult) -> bool: ...

    def variant(self, result: PruneResult, ctx: PruneContext, density: float, seed: int) -> Variant: ...


MODIFIERS: Registry[Modifier] = Registry("modifier")


@dataclass(frozen=True)
class _Shuffle:
    def applies(self, result: PruneResult) -> bool:
        return True

    def variant(self, result: PruneResult, ctx: PruneContext, density: float, seed: int) -> Variant:
        return shuffle_within_layers(result.masks, seed), result.state_dict


@dataclass(frozen=True)
class _Reinit:
    def applies(self, result: PruneResult) -> bool:
        return True

    def variant(self, result: PruneResult, ctx: PruneContext, density: float, seed: int) -> Variant:
        return result.masks, reinit_weights(ctx, result.masks, seed)


@dataclass(frozen=True)
class _Invert:
    def applies(self, result: PruneResult) -> bool:
        return result.scores is not None  # iterative or floored selections invert with their ``invert`` setting

    def variant(self, result: PruneResult, ctx: PruneContext, density: float, seed: int) -> Variant:
        if result.scores is None:
            raise ValueError("invert needs a one-shot score-based result (its scores)")
        return invert(result.scores, density, scope_of(result, density)), result.state_dict


MODIFIERS.register("shuffle")(_Shuffle())
MODIFIERS.register("reinit")(_Reinit())
MODIFIERS.register("invert")(_Invert())
