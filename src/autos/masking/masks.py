"""Masks and the weights they cover: prunable parameters, the checked ``Masks`` type, applying masks to weights
and gradients, and what every result records about a mask (``MaskSummary``).

Vocabulary: ``density`` is the fraction of prunable weights kept, ``sparsity = 1 - density`` the fraction removed.
A mask is a bool tensor per prunable parameter, keyed by the parameter's name in ``model.named_parameters()``
(True = kept). Scores use the same keys; higher means keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

Scores = dict[str, Tensor]


class Masks(dict[str, Tensor]):
    """``{parameter name: bool tensor}`` (True = kept), checked at construction and on every assignment.

    A dict, so it goes wherever a mapping of masks goes (``torch.save`` of ``dict(masks)``, ``autos.apply``), but
    a float or 0/1-int tensor, or a non-string key, is refused where it enters rather than where it misleads
    (a float mask multiplied into weights looks right and selects nothing). The model is open_lth's ``Mask``.
    """

    def __init__(self, entries: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] = ()) -> None:
        super().__init__()
        items = entries.items() if isinstance(entries, Mapping) else entries
        for name, mask in items:
            self[name] = mask

    def __setitem__(self, name: str, mask: Tensor) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a mask is keyed by its parameter's name (a str), got {name!r}")
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = f"a {mask.dtype} tensor" if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"mask {name!r} must be a bool tensor (True = kept), got {got}")
        super().__setitem__(name, mask)

    def update(self, *args: object, **kwargs: Tensor) -> None:
        for name, mask in dict(*args, **kwargs).items():
            self[name] = mask

    def setdefault(self, name: str, mask: Tensor) -> Tensor:
        if name not in self:
            self[name] = mask
        return self[name]

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled as the class plus its items, so a copy (Ray, deepcopy) is checked again on the way in.
        return (Masks, (dict(self),))


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


def density_of(masks: Mapping[str, Tensor]) -> float:
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / total


def layer_densities(masks: Mapping[str, Tensor]) -> dict[str, float]:
    return {name: float(m.float().mean()) for name, m in masks.items()}


@dataclass(frozen=True)
class MaskSummary:
    """What every result records about a mask: achieved density and sparsity, counts, per-layer densities."""

    density: float
    sparsity: float
    kept: int
    total: int
    layer_density: dict[str, float]
    min_layer_density: float
    empty_layers: list[str]


def mask_summary(masks: Mapping[str, Tensor]) -> MaskSummary:
    densities = layer_densities(masks)
    achieved = density_of(masks)
    return MaskSummary(density=achieved, sparsity=1.0 - achieved, kept=sum(int(m.sum()) for m in masks.values()),
                       total=sum(m.numel() for m in masks.values()), layer_density=densities,
                       min_layer_density=min(densities.values()),
                       empty_layers=[name for name, d in densities.items() if d == 0.0])


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
