"""Random pruning with Erdős–Rényi-Kernel layer densities (Evci et al. 2020, RigL; docs/reference/methods.md §9).

ERK gives layer l the density d_l = eps * (n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w) (ER,
(n_in + n_out) / (n_in * n_out), for Linear), with eps solved so the kept total is the requested density.
Layers whose d_l would exceed 1 are made dense and eps is re-solved over the rest. Positions within each
layer are uniformly random (seeded by ``ctx.seed``). A data-free, score-free baseline: ``scores`` is None.

Why not ``select_mask``: it keeps one density (globally or in every layer), while ERK gives every layer its own
closed-form count, which may round to 0; the result's scope is ``layerwise`` (each layer's count is fixed first).
"""

from __future__ import annotations

import torch

from autos.masking import Masks
from autos.masking.budgets import erk_counts, erk_densities
from autos.pruners._registry import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, Pruner, PruneResult


@PRUNERS.register("random_erk")
class RandomERK(Pruner[NoSettings]):
    """Random positions at ERK layer densities (docs/reference/methods.md §9; S4 of §11)."""

    Settings = NoSettings
    title = "Random (ERK)"

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        params = dict(ctx.model.named_parameters())
        names = ctx.prunable_names()
        shapes = {n: params[n].shape for n in names}
        counts = erk_counts(shapes, density)
        densities = erk_densities(shapes, density)
        generator = torch.Generator().manual_seed(ctx.seed)
        masks = Masks()
        for n in names:
            flat = torch.zeros(params[n].numel(), dtype=torch.bool)
            flat[torch.randperm(flat.numel(), generator=generator)[: counts[n]]] = True
            masks[n] = flat.view(shapes[n])
        info: dict[str, float | int | str] = {"erk_dense_layers": sum(1 for d in densities.values() if d >= 1.0)}
        return PruneResult(masks=masks, info=info, scope="layerwise")
