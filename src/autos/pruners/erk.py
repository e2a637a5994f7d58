"""Random pruning with Erdős–Rényi-Kernel layer densities (Evci et al. 2020, RigL; docs/reference/methods.md §9).

ERK gives layer l the density d_l = eps * (n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w) (ER,
(n_in + n_out) / (n_in * n_out), for Linear), with eps solved so the kept total is the requested density.
Layers whose d_l would exceed 1 are made dense and eps is re-solved over the rest. Positions within each
layer are uniformly random (seeded by ``ctx.seed``). A data-free, score-free baseline: ``scores`` is None.

Why not ``select_mask``: it keeps one density (globally or in every layer), while ERK gives every layer its own
closed-form count, which may round to 0; the result's scope is ``layerwise`` (each layer's count is fixed first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from autos.masking import check_density, kept_count
from autos.pruners._registry import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, Pruner, PruneResult


def _erk_raw(shape: torch.Size) -> float:
    """(sum of dims) / (product of dims): conv (n_out, n_in, k_h, k_w) gives the ERK ratio, linear the ER one.

    docs/reference/methods.md §9 pitfall: the kernel dims must be in the numerator and the denominator for convs.
    """
    if len(shape) not in (2, 4):
        raise ValueError(f"ERK expects Linear (2-d) or Conv2d (4-d) weights, got shape {tuple(shape)}")
    return sum(shape) / math.prod(shape)


def erk_densities(shapes: Mapping[str, torch.Size], density: float) -> dict[str, float]:
    """Per-layer ERK densities whose weighted mean is ``density`` (real-valued; no rounding).

    Solve eps * sum_{l sparse} raw_l * N_l = density * N - sum_{l dense} N_l; a layer with eps * raw_l >= 1 is
    made dense and eps is re-solved until no sparse layer exceeds 1 (RigL's ``get_sparsities_erdos_renyi``).
    Making a layer dense frees budget, so eps only grows: adding every offender at once is equivalent to
    adding them one by one.
    """
    check_density(density)
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: _erk_raw(shape) for name, shape in shapes.items()}
    target = density * sum(numel.values())
    dense: set[str] = set()
    while True:
        sparse = [n for n in shapes if n not in dense]
        if not sparse:
            return {n: 1.0 for n in shapes}
        budget = target - sum(numel[n] for n in dense)
        eps = budget / sum(raw[n] * numel[n] for n in sparse)
        offenders = {n for n in sparse if eps * raw[n] >= 1.0}
        if not offenders:
            return {n: (1.0 if n in dense else eps * raw[n]) for n in shapes}
        dense |= offenders


def erk_counts(shapes: Mapping[str, torch.Size], density: float) -> dict[str, int]:
    """Integer kept counts per layer summing exactly to ``kept_count(N, density)`` (largest remainder)."""
    densities = erk_densities(shapes, density)
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    total = kept_count(sum(numel.values()), density)
    exact = {n: densities[n] * numel[n] for n in shapes}
    counts = {n: min(numel[n], math.floor(exact[n])) for n in shapes}
    remainder = total - sum(counts.values())
    # Hand the rounding remainder to the layers with the largest fractional parts (stable: module order on ties).
    order = sorted(shapes, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True)
    while remainder > 0:
        progressed = False
        for n in order:
            if remainder == 0:
                break
            if counts[n] < numel[n]:
                counts[n] += 1
                remainder -= 1
                progressed = True
        if not progressed:  # cannot happen: total <= N
            raise RuntimeError("ERK rounding could not place the remaining weights")
    while remainder < 0:  # float error made floors sum above total: take back from the largest layers
        n = max((m for m in shapes if counts[m] > 0), key=lambda m: counts[m])
        counts[n] -= 1
        remainder += 1
    return counts


@PRUNERS.register("random_erk")
class RandomERK(Pruner[NoSettings]):
    """Random positions at ERK layer densities (docs/reference/methods.md §9; S4 of §11)."""

    Settings = NoSettings

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        params = dict(ctx.model.named_parameters())
        names = ctx.prunable_names()
        shapes = {n: params[n].shape for n in names}
        counts = erk_counts(shapes, density)
        densities = erk_densities(shapes, density)
        generator = torch.Generator().manual_seed(ctx.seed)
        masks = {}
        for n in names:
            flat = torch.zeros(params[n].numel(), dtype=torch.bool)
            flat[torch.randperm(flat.numel(), generator=generator)[: counts[n]]] = True
            masks[n] = flat.view(shapes[n])
        info: dict[str, float | int | str] = {"erk_dense_layers": sum(1 for d in densities.values() if d >= 1.0)}
        return PruneResult(masks=masks, info=info, scope="layerwise")
