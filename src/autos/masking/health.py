"""Mask health: layer collapse and effective sparsity (docs/reference/methods.md §0.5 and §11, S5).

A kept weight is *effective* only if it lies on some input -> output path; kept weights cut off from the input
or from the output change nothing and count as pruned in the effective sparsity. Computed generically with
SynFlow-style path counting (Tanaka et al. 2020): in a copy of the model, every Conv/Linear weight becomes its
0/1 mask (scaled by 1/fan_in so float64 cannot overflow), biases become 0, BN becomes a positive scaling and
max-pools become average pools; then every activation is a non-negative sum over paths, and for R = sum of the
outputs of an all-ones input, dR/dw != 0 exactly when w lies on an input -> output path.

Modern models need three more rules to keep that true (checked on torchvision's ResNet, MobileNetV3, EfficientNet,
ConvNeXt and ViT in tests/test_model_matrix.py): norms that subtract a mean over channels (LayerNorm, GroupNorm,
instance norm) become the identity, since on the constant all-ones input they output zero and so hide every path
(ConvNeXt had none left); activations that saturate on non-negative inputs (Hardsigmoid above 3, ReLU6 above 6,
Hardtanh above its max) become strictly increasing ones with the same connectivity; and additive constants besides
biases (class tokens, positional embeddings, attention's in_proj_bias) are zeroed like biases, being paths from no
input. A 3x3 weight whose input is only zero padding (a late layer at 1x1 resolution) is on no path: that is true.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from autos.masking import density_of

# norms over channels: zero output on a constant input (module types; subclasses such as torchvision's LayerNorm2d
# included)
_MEAN_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)
# activations with a zero slope somewhere on [0, inf): replaced by strictly increasing ones
_SATURATING = (nn.Hardsigmoid, nn.Hardtanh, nn.ReLU6)  # ReLU6 is a Hardtanh; listed for the reader
# additive constants that are not called bias (exact names; anything with "bias" in its name is zeroed too)
_CONSTANTS = {"class_token", "cls_token", "dist_token", "pos_embedding", "pos_embed", "position_embeddings"}


def _path_module(child: nn.Module) -> nn.Module | None:
    """The path network's replacement for ``child``, or None to keep it."""
    # Max-pool routes the gradient to one element of a tie (all-ones inputs tie everywhere), which would hide
    # real paths; average pooling is a positive linear map with the same connectivity.
    if isinstance(child, nn.MaxPool2d):
        return nn.AvgPool2d(child.kernel_size, child.stride, child.padding)
    if isinstance(child, nn.AdaptiveMaxPool2d):
        return nn.AdaptiveAvgPool2d(child.output_size)
    if isinstance(child, _MEAN_NORMS):
        return nn.Identity()
    if isinstance(child, nn.Hardsigmoid):
        return nn.Sigmoid()
    if isinstance(child, _SATURATING):
        return nn.ReLU()  # the identity on non-negative inputs
    return None


def _path_network(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """The 0/1 "path" copy of ``model`` on CPU in float64 (``model`` itself is untouched)."""
    net = copy.deepcopy(model).to("cpu", torch.float64).eval()
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            replacement = _path_module(child)
            if replacement is not None:
                setattr(parent, child_name, replacement)
    with torch.no_grad():
        for module_name, module in net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # BN as the identity up to 1/sqrt(1 + eps): only the mask's connectivity matters here.
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
                if module.running_mean is not None:
                    module.running_mean.zero_()
                if module.running_var is not None:
                    module.running_var.fill_(1.0)
                continue
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                name = f"{module_name}.weight"
                w = module.weight
                mask = masks[name].to(torch.float64) if name in masks else torch.ones_like(w)
                w.copy_(mask / (w[0].numel() or 1))  # 1/fan_in keeps path sums O(1) in deep, wide nets
            for p_name, p in module.named_parameters(recurse=False):
                if "bias" in p_name or p_name in _CONSTANTS:  # a path from no input: must not connect units
                    p.zero_()
                elif not (isinstance(module, (nn.Conv2d, nn.Linear)) and p_name == "weight"):
                    p.abs_()  # any other parameter: SynFlow's |.| (non-negative, so no path cancels)
    return net


def effective_masks(
    model: nn.Module, masks: Mapping[str, Tensor], input_size: int, in_channels: int = 3
) -> tuple[dict[str, Tensor], float]:
    """(effective masks on CPU, R): kept weights lying on at least one input -> output path."""
    net = _path_network(model, masks)
    params = dict(net.named_parameters())
    x = torch.ones(1, in_channels, input_size, input_size, dtype=torch.float64)
    r = net(x).sum()
    grads = torch.autograd.grad(r, [params[n] for n in masks], allow_unused=True)
    effective = {}
    for (name, mask), g in zip(masks.items(), grads, strict=True):
        reach = torch.zeros_like(mask, dtype=torch.bool, device="cpu") if g is None else g != 0
        effective[name] = mask.detach().cpu().bool() & reach
    return effective, float(r.detach())


def effective_summary(
    model: nn.Module, masks: Mapping[str, Tensor], input_size: int, in_channels: int = 3
) -> dict[str, Any]:
    """Nominal vs effective density, per-layer effective density, empty layers, and whether the mask collapsed.

    ``collapsed`` is True when a prunable layer keeps no weight or when no input -> output path is left (R == 0).
    """
    effective, r = effective_masks(model, masks, input_size, in_channels)
    if not torch.isfinite(torch.tensor(r)):
        raise FloatingPointError(f"path count R = {r} is not finite")
    total = sum(m.numel() for m in masks.values())
    effective_kept = sum(int(m.sum()) for m in effective.values())
    empty = [name for name, m in masks.items() if not bool(m.any())]
    effective_density = effective_kept / total
    return {
        "nominal_density": density_of(masks),
        "effective_density": effective_density,
        "effective_sparsity": 1.0 - effective_density,
        "kept": sum(int(m.sum()) for m in masks.values()),
        "effective_kept": effective_kept,
        "total": total,
        "layer_effective_density": {name: float(m.double().mean()) for name, m in effective.items()},
        "empty_layers": empty,
        "collapsed": bool(empty) or r == 0.0,
    }
