"""K-starts, dissipating gradients and their combination (Haroon, arXiv 2209.02201; docs/reference/methods.md §3).

Only the abstract is available, so these are the operationalisations of docs/reference/methods.md §3a-3c; every
choice the abstract leaves open ("choose" in docs/reference/methods.md §3) is a setting and is reported in
``PruneResult.info``.

- ``kstarts`` (3a): k random masks with identical per-layer densities, each trained from the same init with
  the same data order for ``select_epochs``; the fittest (magnitude / gradient accumulation / both) wins and
  training continues from its weights (no rewind, per the abstract).
- ``dissipating`` (3b): train while recording theta0; after every epoch prune the weights whose relative drift
  |theta - theta0| / (|theta0| + eps) is <= ``drift_fraction``, capped at the target; if the target is not
  reached after ``max_epochs``, finish with the smallest drift.
- ``kstarts_dissipating`` (3c): K-starts to density p1 = 1 - kstarts_share * sparsity, then dissipating to the
  target.

Selection: K-starts picks one of k random candidates by fitness, so it has no ranking for ``select_mask``; its
per-layer counts are fixed first (scope ``layerwise``). Dissipating ranks by drift with ``select_mask`` under its
``scope`` setting, which is the scope of its result (and of the combination's).

The short selection phases use ``phase_recipe``: by default the recipe's lr held constant, since the first
epochs of the study's full schedule run at (almost) the base lr, and the pruned network then continues with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor, nn

from autos.masking import Masks, apply_masks_, kept_count, select_mask
from autos.pruners._registry import PRUNERS
from autos.pruners.base import (
    NoSettings,
    PhaseSchedule,
    PruneContext,
    Pruner,
    PruneResult,
    clone_state,
    flat_settings,
    phase_recipe,
)
from autos.training import Callback, TrainState, train

log = logging.getLogger(__name__)

# ---------------------------------------- K-starts (docs/reference/methods.md §3a)


class KStartsCore(NoSettings):
    k: PositiveInt = Field(
        default=5, description="number of random candidate masks (docs/reference/methods.md §3a: 3-10)"
    )
    select_epochs: PositiveInt = Field(default=1, description="E_s: epochs each candidate trains before selection")
    fitness: Literal["magnitude", "gradient", "both"] = Field(
        default="magnitude",
        description="sum |theta| over kept weights after E_s epochs; sum over steps of |grad| over kept weights; "
        "or both combined (see combine)",
    )
    combine: Literal["zsum", "product"] = Field(
        default="zsum",
        description="fitness=both: sum of the two z-scores across candidates, or the product of the raw values "
        "(positive, so equal in argmax to the product of the scale-standardised values)",
    )
    layer_densities: Literal["uniform", "erk"] = Field(
        default="uniform", description="per-layer densities shared by every candidate (erk needs autos.pruners.erk)"
    )
    phase_schedule: PhaseSchedule = Field(
        default="constant", description="short-phase lr: constant at the base lr, or the recipe schedule compressed"
    )


class KStartsSettings(KStartsCore):
    rewind: bool = Field(
        default=False, description="false: continue from the winner's trained weights (the abstract); true: init"
    )


def layer_counts(ctx: PruneContext, density: float, mode: str) -> dict[str, int]:
    """Kept weights per prunable layer: ``kept_count(N_l, density)`` (uniform) or ERK's exact integer counts."""
    params = dict(ctx.model.named_parameters())
    shapes = {name: params[name].shape for name in ctx.prunable_names()}
    if mode == "uniform":
        return {name: kept_count(shape.numel(), density) for name, shape in shapes.items()}
    try:  # written by another engineer; guarded so that K-starts works without it
        from autos.pruners.erk import erk_counts
    except ImportError as exc:
        raise ValueError("layer_densities='erk' needs autos.pruners.erk.erk_counts, which is missing") from exc
    return erk_counts(shapes, density)


def candidate_masks(ctx: PruneContext, density: float, settings: KStartsCore) -> list[Masks]:
    """The k random candidates, all with the same kept count in every layer (``layer_counts``)."""
    counts = layer_counts(ctx, density, settings.layer_densities)
    params = dict(ctx.model.named_parameters())
    generator = torch.Generator().manual_seed(ctx.seed + 104729)
    candidates = []
    for _ in range(settings.k):
        masks = Masks()
        for name, count in counts.items():
            shape = params[name].shape
            keep = torch.zeros(shape.numel(), dtype=torch.bool)
            keep[torch.randperm(shape.numel(), generator=generator)[:count]] = True
            masks[name] = keep.view(shape)
        candidates.append(masks)
    return candidates


class GradientAccumulator(Callback):
    """Sum over steps of |grad| over the kept prunable weights (grads are already masked by the loop)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.total: Tensor | float = 0.0

    def on_train_begin(self, state: TrainState) -> None:
        params = dict(state.model.named_parameters())
        self.params = [params[n] for n in self.names]

    def on_after_backward(self, state: TrainState) -> None:
        grads = [p.grad.abs().sum(dtype=torch.float64) for p in self.params if p.grad is not None]
        if grads:
            self.total = self.total + torch.stack(grads).sum()


def _zscore(values: Tensor) -> Tensor:
    std = values.std() if values.numel() > 1 else values.new_zeros(())
    return (values - values.mean()) / std if float(std) > 0 else torch.zeros_like(values)


def kstarts_select(
    ctx: PruneContext, density: float, settings: KStartsCore
) -> tuple[Masks, dict[str, Tensor], dict[str, Any]]:
    """Train every candidate from the same init and data order; return (winner mask, its trained state, info)."""
    names = ctx.prunable_names()
    recipe = phase_recipe(ctx.recipe, settings.select_epochs, settings.phase_schedule)
    candidates = candidate_masks(ctx, density, settings)
    states, magnitudes, gradients = [], [], []
    for j, masks in enumerate(candidates):
        model = ctx.copy_model()
        accumulator = GradientAccumulator(names)
        train(model, ctx.data, recipe, seed=ctx.seed, device=ctx.device, masks=masks, callbacks=[accumulator],
              desc=f"kstarts {j + 1}/{settings.k}", evaluate_every_epoch=False)
        apply_masks_(model, masks)
        params = dict(model.named_parameters())
        magnitudes.append(float(sum(params[n].detach().abs().sum(dtype=torch.float64) for n in names)))
        gradients.append(float(accumulator.total))
        states.append(clone_state(model))
    mag, grad = torch.tensor(magnitudes, dtype=torch.float64), torch.tensor(gradients, dtype=torch.float64)
    if settings.fitness == "magnitude":
        fitness = mag
    elif settings.fitness == "gradient":
        fitness = grad
    else:
        fitness = _zscore(mag) + _zscore(grad) if settings.combine == "zsum" else mag * grad
    best = int(torch.argmax(fitness))  # first maximum on ties
    log.info("kstarts: candidate %d of %d selected (fitness %s)", best, settings.k, fitness.tolist())
    info: dict[str, Any] = {
        "kstarts_selected": best,
        "kstarts_fitness_values": ",".join(f"{v:.6g}" for v in fitness.tolist()),
        "kstarts_magnitude_values": ",".join(f"{v:.6g}" for v in magnitudes),
        "kstarts_gradient_values": ",".join(f"{v:.6g}" for v in gradients),
        "kstarts_sparse_epochs": settings.k * settings.select_epochs,
    }
    return candidates[best], states[best], info


@PRUNERS.register("kstarts")
class KStarts(Pruner[KStartsSettings]):
    """docs/reference/methods.md §3a. Cost: k * select_epochs sparse epochs (``extra_epochs``)."""

    Settings = KStartsSettings
    title = "K-starts"
    needs_data = True
    kind = "early"

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        masks, state, info = kstarts_select(ctx, density, s)
        info.update(flat_settings(s), extra_epochs=info["kstarts_sparse_epochs"], dense_epochs=0)
        return PruneResult(masks=masks, info=info, state_dict=None if s.rewind else state, scope="layerwise")


# ---------------------------------------- dissipating gradients (docs/reference/methods.md §3b)


class DissipatingCore(NoSettings):
    max_epochs: PositiveInt = Field(default=2, description="E_d: epochs after which the target is forced")
    drift_fraction: PositiveFloat = Field(default=0.1, description="f: prune when relative drift <= f (0.05-0.2)")
    eps: PositiveFloat = Field(default=1e-8, description="in |theta - theta0| / (|theta0| + eps)")
    strict: bool = Field(
        default=False, description="dissipated only if drift <= f at every epoch so far (ranks by running max drift)"
    )
    scope: Literal["global", "layerwise"] = Field(
        default="global", description="cap the pruning against the global target or every layer's own target"
    )
    phase_schedule: PhaseSchedule = Field(
        default="constant", description="short-phase lr: constant at the base lr, or the recipe schedule compressed"
    )


class DissipatingSettings(DissipatingCore):
    rewind: bool = Field(
        default=False, description="false: continue from the trained (masked) weights; true: survivors at init"
    )


class Dissipation(Callback):
    """Prunes at every epoch end (docs/reference/methods.md §3b steps 2-5) by updating the loop's masks in place."""

    def __init__(self, theta0: Mapping[str, Tensor], alive: Masks, groups: list[tuple[list[str], int]],
                 settings: DissipatingCore) -> None:
        self.theta0, self.alive, self.groups, self.s = theta0, alive, groups, settings
        self.drift: dict[str, Tensor] = {}
        self.by_drift = self.by_fallback = 0
        self.epochs = 0

    def on_train_begin(self, state: TrainState) -> None:
        params = dict(state.model.named_parameters())
        self.params = {name: params[name] for name in self.alive}
        self.theta0 = {n: t.to(params[n].device) for n, t in self.theta0.items()}

    def on_epoch_end(self, state: TrainState) -> None:
        self.epochs = state.epoch + 1
        final = self.epochs >= self.s.max_epochs
        for name, p in self.params.items():
            r = ((p.detach() - self.theta0[name]).abs() / (self.theta0[name].abs() + self.s.eps)).cpu()
            self.drift[name] = torch.maximum(self.drift[name], r) if self.s.strict and name in self.drift else r
        reached = True
        for names, target in self.groups:
            alive_n = sum(int(self.alive[n].sum()) for n in names)
            dissipated = sum(int(((self.drift[n] <= self.s.drift_fraction) & self.alive[n]).sum()) for n in names)
            keep = max(target, alive_n - dissipated)
            self.by_drift += alive_n - keep
            if final and keep > target:
                self.by_fallback += keep - target
                keep = target
            if keep < alive_n:  # dissipated weights have the smallest drift, so the lowest-drift ones go first
                total = sum(self.alive[n].numel() for n in names)
                new = select_mask({n: self.drift[n] for n in names}, keep / total, "global",
                                  alive={n: self.alive[n] for n in names})
                self.alive.update(new)
            reached = reached and keep == target
        assert state.masks is not None
        for name, mask in self.alive.items():
            state.masks[name].copy_(mask)  # the loop's (device) masks hold from the next step on
        apply_masks_(state.model, state.masks)
        state.stop = reached


def dissipate(
    ctx: PruneContext, model: nn.Module, alive: Masks, density: float, settings: DissipatingCore, desc: str
) -> tuple[Masks, dict[str, Any]]:
    """Train ``model`` (masked by ``alive``) and prune by drift from the target's init until ``density``."""
    names = ctx.prunable_names()
    params = dict(ctx.model.named_parameters())
    theta0 = {n: params[n].detach().to("cpu", copy=True) for n in names}  # the init of the target
    if settings.scope == "global":
        groups = [(names, kept_count(sum(alive[n].numel() for n in names), density))]
    else:
        groups = [([n], kept_count(alive[n].numel(), density)) for n in names]
    for names_, target in groups:
        if sum(int(alive[n].sum()) for n in names_) < target:
            raise ValueError(f"dissipating: the starting mask already keeps fewer than {target} weights")
    callback = Dissipation(theta0, Masks({n: m.clone() for n, m in alive.items()}), groups, settings)
    if all(sum(int(alive[n].sum()) for n in ns) == t for ns, t in groups):
        return callback.alive, {"dissipating_epochs": 0, "pruned_by_drift": 0, "pruned_by_fallback": 0}
    recipe = phase_recipe(ctx.recipe, settings.max_epochs, settings.phase_schedule)
    train(model, ctx.data, recipe, seed=ctx.seed, device=ctx.device, masks={n: m.clone() for n, m in alive.items()},
          callbacks=[callback], desc=desc, evaluate_every_epoch=False)
    apply_masks_(model, callback.alive)
    info = {"dissipating_epochs": callback.epochs, "pruned_by_drift": callback.by_drift,
            "pruned_by_fallback": callback.by_fallback}
    log.info("%s: %s", desc, info)
    return callback.alive, info


@PRUNERS.register("dissipating")
class Dissipating(Pruner[DissipatingSettings]):
    """docs/reference/methods.md §3b, from the dense network. Cost: ``dissipating_epochs`` dense epochs
    (early-training pruning)."""

    Settings = DissipatingSettings
    title = "Dissipating"
    needs_data = True
    kind = "early"

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        model = ctx.copy_model()
        params = dict(model.named_parameters())
        dense = Masks({n: torch.ones(params[n].shape, dtype=torch.bool) for n in ctx.prunable_names()})
        masks, info = dissipate(ctx, model, dense, density, s, desc="dissipating")
        info.update(flat_settings(s), extra_epochs=info["dissipating_epochs"], dense_epochs=info["dissipating_epochs"])
        return PruneResult(masks=masks, info=info, state_dict=None if s.rewind else clone_state(model), scope=s.scope)


# ---------------------------------------- combination (docs/reference/methods.md §3c)


class KStartsDissipatingSettings(NoSettings):
    kstarts_share: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="share of the sparsity reached by K-starts: p1 = 1 - share * sparsity, then dissipating",
    )
    kstarts: KStartsCore = KStartsCore()
    dissipating: DissipatingCore = DissipatingCore()
    rewind: bool = Field(default=False, description="false: continue from the trained weights; true: init")


@PRUNERS.register("kstarts_dissipating")
class KStartsDissipating(Pruner[KStartsDissipatingSettings]):
    """docs/reference/methods.md §3c. Drift is measured against the target's init (the K-starts winner has already
    moved)."""

    Settings = KStartsDissipatingSettings
    title = "K-starts + Dissipating"
    needs_data = True
    kind = "early"

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        density_p1 = 1.0 - s.kstarts_share * (1.0 - density)
        model = ctx.copy_model()
        info: dict[str, Any] = {"kstarts_density": density_p1, "kstarts_sparse_epochs": 0}
        if density_p1 < 1.0:
            alive, state, kinfo = kstarts_select(ctx, density_p1, s.kstarts)
            model.load_state_dict(state)
            info.update(kinfo)
        else:
            params = dict(model.named_parameters())
            alive = Masks({n: torch.ones(params[n].shape, dtype=torch.bool) for n in ctx.prunable_names()})
        masks, dinfo = dissipate(ctx, model, alive, density, s.dissipating, desc="kstarts_dissipating")
        info.update(dinfo)
        info.update(flat_settings(s), dense_epochs=info["dissipating_epochs"] if density_p1 >= 1.0 else 0,
                    extra_epochs=info["kstarts_sparse_epochs"] + info["dissipating_epochs"])
        return PruneResult(masks=masks, info=info, state_dict=None if s.rewind else clone_state(model),
                           scope=s.dissipating.scope)
