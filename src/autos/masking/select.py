"""The one score -> mask selection (``select_mask``), exact kept counts and the selection scopes.

Scores are keyed like masks (``autos.masking.masks``); higher means keep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Literal, get_args

import torch
from torch import Tensor

from autos.masking.masks import Masks, Scores

Scope = Literal["global", "layerwise"]
"""How a kept count is spread over layers: ``global`` ranks all prunable layers together; ``layerwise`` fixes every
layer's count before ranking within it."""
SCOPES: tuple[Scope, ...] = get_args(Scope)


def check_density(density: float) -> None:
    if not (0.0 < density <= 1.0) or density != density:
        raise ValueError(f"density must be in (0, 1], got {density!r}")


def kept_count(numel: int, density: float) -> int:
    """Exact number of weights kept at ``density``: round-half-up, at least 1."""
    return max(1, min(numel, int(density * numel + 0.5)))


# Selection by radix select over order-preserving integer keys, one layer at a time: the k-th largest score is
# found in four passes of 16 bits (a histogram per pass), then every layer keeps its scores above it and the ties
# at it in global index order. The result equals a stable descending sort of all scores concatenated (ties broken
# by lower index; tests/test_masking.py checks against that sort), but the memory is one layer's keys, not the
# 3 x 8 bytes per weight of a float64 concatenation and its sort (128.8 M weights: ~3 GB), and it is ~5x faster
# (0.30 s vs 1.49 s on 11.2 M scores, bench/select_mask.py; SynFlow selects 100 times per call).
_DIGIT_BITS = 16
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1  # above every finite score's key (the largest is +max float's, 0x7FEF...): a reserved weight


def _order_keys(scores: Tensor, alive: Tensor | None) -> Tensor:
    """int64 keys in the order of the float64 values (a < b iff key(a) < key(b)); pruned weights get the lowest key.

    -0.0 is made +0.0 first (they compare equal as floats and must tie here too).
    """
    x = scores.detach().to("cpu", torch.float64).flatten() + 0.0
    bits = x.view(torch.int64)
    keys = bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)  # negative floats: flip all bits but the sign
    if alive is not None:
        keys = keys.masked_fill(~alive.detach().to("cpu").flatten().bool(), _INT64_MIN)
    return keys


def _kth_largest_key(layer_keys: Callable[[], Iterator[Tensor]], k: int) -> tuple[int, int]:
    """(t, r): the k-th largest key over all layers, and how many of the keys equal to t are among the top k."""
    bins = 1 << _DIGIT_BITS
    prefix: int | None = None  # the high bits of t found so far (signed, as ``key >> shift`` gives them)
    remaining = k  # rank of t among the keys that share ``prefix``
    for shift in range(64 - _DIGIT_BITS, -1, -_DIGIT_BITS):
        hist = torch.zeros(bins, dtype=torch.int64)
        for keys in layer_keys():
            if prefix is None:
                digits = (keys >> shift) + bins // 2  # the top digit carries the sign
            else:
                digits = (keys[(keys >> (shift + _DIGIT_BITS)) == prefix] >> shift) & (bins - 1)
            hist += torch.bincount(digits, minlength=bins)
        from_top = hist.flip(0).cumsum(0)
        i = int(torch.searchsorted(from_top, remaining))  # first digit (from the top) reaching the rank
        digit = bins - 1 - i
        remaining -= int(from_top[i]) - int(hist[digit])
        prefix = digit - bins // 2 if prefix is None else (prefix << _DIGIT_BITS) | digit
    assert prefix is not None
    return prefix, remaining


def _top_k(keys_of: Callable[[str], Tensor], names: list[str], k: int) -> dict[str, Tensor]:
    """Flat bool masks keeping the k highest keys over ``names`` together; ties go to the lower global index."""
    threshold, ties = _kth_largest_key(lambda: (keys_of(n) for n in names), k)
    keep: dict[str, Tensor] = {}
    for name in names:
        keys = keys_of(name)
        mask = keys > threshold
        if ties > 0:
            at = (keys == threshold).nonzero().flatten()[:ties]
            mask[at] = True
            ties -= at.numel()
        keep[name] = mask
    return keep


def select_mask(
    scores: Mapping[str, Tensor],
    density: float,
    scope: Scope = "global",
    alive: Mapping[str, Tensor] | None = None,
    floor: Mapping[str, int] | None = None,
) -> Masks:
    """Keep the top ``density`` fraction of weights by score: the one mask-selection function.

    ``scope='global'`` ranks all weights together and keeps exactly ``kept_count(N, density)``;
    ``'layerwise'`` keeps ``kept_count(N_l, density)`` in every layer. Weights already pruned (``alive`` False)
    stay pruned; density is always relative to the full prunable count, so an IRP round asks for a lower
    density than the current one. Scores must be finite where alive.

    ``floor`` (global scope only): layer ``name`` keeps at least ``floor[name]`` weights, its highest-scored alive
    ones; the rest of the budget is ranked globally as usual. The total kept count is unchanged, so a floor moves
    weights from the layers the ranking favours to the ones it would (nearly) empty (``layer_floor_counts``).
    """
    check_density(density)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}")
    if floor is not None and scope != "global":
        raise ValueError(f"a layer floor needs scope 'global' (a layer-wise selection fixes every layer's count), "
                         f"got scope {scope!r}")
    names = list(scores)
    for name in names:
        s = scores[name].detach()
        check = s if alive is None else s[alive[name].detach().to(s.device).bool()]
        if not torch.isfinite(check).all():
            raise ValueError(f"scores for {name!r} contain NaN or infinite values")

    def ranked_keys(name: str) -> Tensor:
        return _order_keys(scores[name], None if alive is None else alive[name])

    def alive_count(name: str) -> int:
        return scores[name].numel() if alive is None else int(alive[name].sum())

    reserved: dict[str, Tensor] = {}  # per layer: its floor's weights, kept whatever the global ranking says
    for name, count in (floor or {}).items():
        if name not in scores:
            raise ValueError(f"floor names layer {name!r}, which has no scores (layers: {', '.join(names)})")
        if not 0 <= count <= alive_count(name):
            raise ValueError(f"floor of layer {name!r} is {count} weights; allowed: 0 to its {alive_count(name)} "
                             "alive weights")
        if count > 0:
            reserved[name] = _top_k(ranked_keys, [name], count)[name]

    def keys_of(name: str) -> Tensor:
        keys = ranked_keys(name)
        return keys.masked_fill(reserved[name], _INT64_MAX) if name in reserved else keys

    masks = Masks()
    if scope == "global":
        total = sum(scores[n].numel() for n in names)
        k = kept_count(total, density)
        available = sum(alive_count(n) for n in names)
        if k > available:
            raise ValueError(f"density {density} keeps {k} weights but only {available} are alive")
        floored = sum(int(r.sum()) for r in reserved.values())
        if floored > k:
            raise ValueError(f"the layer floors keep {floored} weights, more than the {k} that density {density} "
                             "keeps")
        flat = _top_k(keys_of, names, k)
    else:
        flat = {}
        for name in names:
            k = kept_count(scores[name].numel(), density)
            if k > alive_count(name):
                raise ValueError(f"layer {name!r}: density {density} keeps {k} weights but fewer are alive")
            flat.update(_top_k(keys_of, [name], k))
    for name in names:
        masks[name] = flat[name].view(scores[name].shape)
    return masks


def invert_scores(scores: Mapping[str, Tensor]) -> Scores:
    """Keep the lowest scores instead (Frankle et al. 2021 inversion); negation, not 1/s, so signed scores work."""
    return {name: -s for name, s in scores.items()}
