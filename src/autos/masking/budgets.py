"""Per-layer budgets that need no scores: ERK's closed-form layer densities (Evci et al. 2020, RigL;
docs/reference/methods.md §9) and the layer floors derived from them (``layer_floor_counts``).

ERK gives layer l the density d_l = eps * (n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w) (ER,
(n_in + n_out) / (n_in * n_out), for Linear), with eps solved so the kept total is the requested density.
Layers whose d_l would exceed 1 are made dense and eps is re-solved over the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from autos.masking.select import check_density, kept_count


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


def layer_floor_counts(
    scores: Mapping[str, Tensor], density: float, fraction: float, alive: Mapping[str, Tensor] | None = None
) -> dict[str, int]:
    """Per layer, ``floor(fraction * ERK's kept count)`` at ``density`` (at most its alive weights).

    Why ERK (Evci et al. 2020; ``erk_counts``): it is the layer profile that needs no scores, gives small
    layers (the stem, shortcuts, the classifier) high densities, and was the best single-shot baseline of the
    default study (docs/sweeps.md). ``fraction`` 0 is the method's own allocation, 1 is ERK's with the method
    choosing only within layers; the floors sum to at most ``fraction`` of the budget.
    """
    counts = erk_counts({name: s.shape for name, s in scores.items()}, density)
    floor = {name: int(fraction * count) for name, count in counts.items()}
    if alive is not None:  # rounding can make an ERK count grow by one as the density falls; never ask for more
        floor = {name: min(count, int(alive[name].sum())) for name, count in floor.items()}
    return floor
