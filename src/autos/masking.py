"""Prunable parameters, the one score -> mask selection, and mask enforcement.

Vocabulary: ``density`` is the fraction of prunable weights kept, ``sparsity = 1 - density`` the fraction
removed. A mask is a bool tensor per prunable parameter, keyed by the parameter's name in
``model.named_parameters()`` (True = kept). Scores use the same keys; higher means keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

Masks = dict[str, Tensor]
Scores = dict[str, Tensor]

SCOPES = ("global", "layerwise")


def classifier_name(model: nn.Module) -> str:
    """Name of the classifier weight: the last Linear layer's weight."""
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = f"{module_name}.weight"
    if name is None:
        raise ValueError("model has no nn.Linear layer to call its classifier")
    return name


def prunable_parameters(model: nn.Module, include_classifier: bool = True) -> dict[str, nn.Parameter]:
    """Weights of every Conv2d and Linear layer, in module order (biases and BN are never pruned).

    Whether the classifier is prunable differs between lineages (docs/reference/methods.md §0.1): the AutoS
    reference prunes it, open_lth's VGG and Lottery Jackpots do not. It is a study parameter.
    """
    skip = None if include_classifier else classifier_name(model)
    params: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            name = f"{module_name}.weight"
            if name != skip:
                params[name] = cast(nn.Parameter, module.weight)  # a Tensor under parametrizations
    return params


def check_density(density: float) -> None:
    if not (0.0 < density <= 1.0) or density != density:
        raise ValueError(f"density must be in (0, 1], got {density!r}")


def kept_count(numel: int, density: float) -> int:
    """Exact number of weights kept at ``density``: round-half-up, at least 1."""
    return max(1, min(numel, int(density * numel + 0.5)))


def _top_k(flat_scores: Tensor, k: int) -> Tensor:
    """Bool vector keeping the k highest scores; ties broken by lower index (stable sort, deterministic)."""
    order = torch.sort(flat_scores, descending=True, stable=True).indices
    keep = torch.zeros(flat_scores.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    return keep


def select_mask(
    scores: Mapping[str, Tensor],
    density: float,
    scope: str = "global",
    alive: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Keep the top ``density`` fraction of weights by score: the one mask-selection function.

    ``scope='global'`` ranks all weights together and keeps exactly ``kept_count(N, density)``;
    ``'layerwise'`` keeps ``kept_count(N_l, density)`` in every layer. Weights already pruned (``alive`` False)
    stay pruned; density is always relative to the full prunable count, so an IRP round asks for a lower
    density than the current one. Scores must be finite where alive.
    """
    check_density(density)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}")
    names = list(scores)
    flat: dict[str, Tensor] = {}
    for name in names:
        s = scores[name].detach().to("cpu", torch.float64).flatten()
        alive_flat = None if alive is None else alive[name].detach().to("cpu").flatten().bool()
        check = s if alive_flat is None else s[alive_flat]
        if not torch.isfinite(check).all():
            raise ValueError(f"scores for {name!r} contain NaN or infinite values")
        if alive_flat is not None:
            s = s.masked_fill(~alive_flat, float("-inf"))
        flat[name] = s

    def alive_count(name: str) -> int:
        return flat[name].numel() if alive is None else int(alive[name].sum())

    masks: Masks = {}
    if scope == "global":
        total = sum(v.numel() for v in flat.values())
        k = kept_count(total, density)
        available = sum(alive_count(n) for n in names)
        if k > available:
            raise ValueError(f"density {density} keeps {k} weights but only {available} are alive")
        keep = _top_k(torch.cat([flat[n] for n in names]), k)
        offset = 0
        for name in names:
            n = flat[name].numel()
            masks[name] = keep[offset : offset + n].view(scores[name].shape)
            offset += n
    else:
        for name in names:
            k = kept_count(flat[name].numel(), density)
            if k > alive_count(name):
                raise ValueError(f"layer {name!r}: density {density} keeps {k} weights but fewer are alive")
            masks[name] = _top_k(flat[name], k).view(scores[name].shape)
    return masks


def density_of(masks: Mapping[str, Tensor]) -> float:
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / total


def layer_densities(masks: Mapping[str, Tensor]) -> dict[str, float]:
    return {name: float(m.float().mean()) for name, m in masks.items()}


def mask_summary(masks: Mapping[str, Tensor]) -> dict[str, object]:
    """What every result records: achieved density/sparsity, per-layer densities, empty layers."""
    densities = layer_densities(masks)
    achieved = density_of(masks)
    return {
        "density": achieved,
        "sparsity": 1.0 - achieved,
        "kept": sum(int(m.sum()) for m in masks.values()),
        "total": sum(m.numel() for m in masks.values()),
        "layer_density": densities,
        "min_layer_density": min(densities.values()),
        "empty_layers": [name for name, d in densities.items() if d == 0.0],
    }


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


@torch.no_grad()
def mask_gradients_(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the gradients of pruned weights so that momentum and weight decay never revive them."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        grad = params[name].grad
        if grad is not None:
            grad.mul_(mask.to(device=grad.device, dtype=grad.dtype))


def nonzero_counts(model: nn.Module, names: list[str]) -> dict[str, int]:
    params = dict(model.named_parameters())
    return {name: int(torch.count_nonzero(params[name])) for name in names}


def invert_scores(scores: Mapping[str, Tensor]) -> Scores:
    """Keep the lowest scores instead (Frankle et al. 2021 inversion); negation, not 1/s, so signed scores work."""
    return {name: -s for name, s in scores.items()}
