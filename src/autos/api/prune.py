"""Prune any PyTorch model: ``autos.prune`` chooses a mask, ``autos.apply`` holds it through your own training
loop, ``autos.remove`` makes it permanent.

    import autos
    masks = autos.prune(model, "snip", 0.9, data=loader)   # any registered method; the model is not modified
    autos.apply(model, masks)                              # weight = weight_orig * weight_mask in every forward
    ...                                                    # train as usual: pruned weights stay exactly zero
    autos.remove(model)                                    # plain parameters again, pruned entries zero

``prune`` runs the pipeline's own code: the method's ``Pruner`` on a ``PruneContext`` built from the model and the
data, selecting with ``autos.masking.select_mask`` (exact kept counts, deterministic ties), then the mask health
checks of ``autos.masking.health`` (layer collapse, effective sparsity). How data are read: ``autos.api.adapters``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from autos.api.adapters import NoData, as_image_data, shape_only_data
from autos.api.collapse import (
    ON_COLLAPSE,
    CollapseError,
    Health,
    LayerCollapseWarning,
    OnCollapse,
    health,
    repair,
    report,
)
from autos.api.progress import visible_progress
from autos.config import FeaturesConfig, TrainRecipe
from autos.masking import Masks, density_of, layer_densities, prunable_parameters
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext, Pruner, PruneResult
from autos.training.batches import ImageData, dataset_classes

log = logging.getLogger(__name__)

__all__ = ["CollapseError", "LayerCollapseWarning", "PrunedMasks", "apply", "prune", "remove"]


@dataclass(frozen=True, eq=False)
class PrunedMasks(Mapping[str, Tensor]):
    """What ``prune`` returns: a mapping of parameter name -> bool mask (True = kept), usable wherever masks are
    (``autos.apply``, ``autos.masking``), plus what was achieved. ``torch.save(dict(result), path)`` stores the masks
    alone (loadable with ``torch.load(path, weights_only=True)``)."""

    masks: Masks
    method: str
    settings: dict[str, Any]  # the method's settings as used, defaults filled in
    requested_sparsity: float
    sparsity: float  # achieved: exactly 1 - round-half-up((1 - requested) * N) / N for a global selection
    layer_density: dict[str, float]
    effective_sparsity: float | None  # weights on no input -> output path count as pruned; None: not computed
    collapsed: bool
    collapsed_layers: list[str]  # layers with no kept weight, or with no kept weight on an input -> output path
    cut_layer: str | None  # the layer that cut the network (the first emptied, else the first without a path)
    repair_layer_floor: float | None  # on_collapse='repair' re-ran the method with this layer_floor; None: not
    # Weights to train from, for methods that move them (K-starts, Dissipating, Pruning from Scratch, Lottery
    # Jackpots, IRP): load them into the model before ``apply`` (the pipeline does). None: train from the model's own.
    state_dict: dict[str, Tensor] | None = None
    train: bool = True  # False: the method's weights are final (Lottery Jackpots without fine-tuning)
    info: dict[str, Any] = field(default_factory=dict)  # the method's own records

    def __getitem__(self, name: str) -> Tensor:
        return self.masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.masks)

    def __len__(self) -> int:
        return len(self.masks)

    def __repr__(self) -> str:
        return (f"PrunedMasks(method={self.method!r}, sparsity={self.sparsity:.6f}, layers={len(self.masks)}, "
                f"collapsed={self.collapsed})")


# --------------------------------------------------------------------------- argument checks


def _check_sparsity(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"sparsity must be a number in (0, 1), got {sparsity!r}")
    if not (0.0 < sparsity < 1.0):  # also rejects NaN
        raise ValueError(f"sparsity must be in (0, 1) (the fraction of prunable weights removed), got {sparsity!r}")
    return float(sparsity)


def pruner_class(method: str) -> type[Pruner[Any]]:
    """The registered method ``method``; ValueError naming it and every allowed name."""
    if method not in PRUNERS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(PRUNERS.names())}")
    return PRUNERS.get(method)


def method_settings(method: str, settings: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """``settings`` validated strictly with the method's ``Settings`` (as the pipeline validates
    ``transfer.method_settings``); ValueError naming each bad key and, for unknown keys, the allowed ones."""
    model = pruner_class(method).Settings
    if isinstance(settings, model):
        return settings
    if isinstance(settings, BaseModel):
        raise TypeError(f"settings for {method!r} must be a dict or {model.__name__}, got {type(settings).__name__}")
    values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in dict(settings or {}).items()}
    try:  # paths may be given as Path objects; everything else as the pipeline's params would give it
        return model.model_validate(values, strict=True)
    except ValidationError as exc:
        raise ValueError(_settings_problems(method, model, exc)) from None


def _settings_problems(method: str, model: type[BaseModel], exc: ValidationError) -> str:
    allowed = ", ".join(model.model_fields)
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {key!r} (allowed: {allowed})")
        else:
            problems.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
    return f"invalid settings for method {method!r}: " + "; ".join(problems)


def _recipe(recipe: TrainRecipe | Mapping[str, Any] | None) -> TrainRecipe:
    if isinstance(recipe, TrainRecipe):
        return recipe
    try:
        return TrainRecipe.model_validate(dict(recipe or {}))
    except ValidationError as exc:
        raise ValueError(f"invalid recipe: {exc}") from None


def _features(features: FeaturesConfig | Mapping[str, Any] | None) -> FeaturesConfig:
    if isinstance(features, FeaturesConfig):
        return features
    try:
        return FeaturesConfig.model_validate(dict(features or {}))
    except ValidationError as exc:
        raise ValueError(f"invalid features config: {exc}") from None


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """``device`` as given; None: where the model's parameters are (CPU for a model without any)."""
    if device is not None:
        return torch.device(device)
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# --------------------------------------------------------------------------- the context and the result


def _data(method: str, data: object, input_shape: Sequence[int] | None) -> ImageData:
    cls = pruner_class(method)
    if data is not None:
        return as_image_data(data)
    if cls.needs_data:
        raise ValueError(f"method {method!r} needs data: pass data= a DataLoader of (images, labels) batches, an "
                         "(images, labels) pair, or (train, test) of either")
    return shape_only_data(input_shape) if input_shape is not None else cast(ImageData, NoData(method))


def _num_classes(model: nn.Module, data: ImageData) -> int:
    """The classes in the data (class-balanced methods read it); without images, the last Linear's outputs."""
    if isinstance(data, NoData) or data.train_y.numel() == 0:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        return linears[-1].out_features if linears else 0
    return dataset_classes(data)


def _input_shape(data: ImageData, input_shape: Sequence[int] | None) -> tuple[int, ...] | None:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    return None if isinstance(data, NoData) else tuple(int(s) for s in data.train_x.shape[1:])


def _result(method: str, settings: BaseModel, sparsity: float, pruned: PruneResult, diagnosis: Health,
            repair_floor: float | None) -> PrunedMasks:
    info = dict(pruned.info)
    if repair_floor is not None:
        info["repair_layer_floor"] = repair_floor
    return PrunedMasks(
        masks=pruned.masks, method=method, settings=settings.model_dump(mode="json"), requested_sparsity=sparsity,
        sparsity=1.0 - density_of(pruned.masks), layer_density=layer_densities(pruned.masks),
        effective_sparsity=diagnosis.effective_sparsity, collapsed=diagnosis.collapsed,
        collapsed_layers=diagnosis.dead, cut_layer=diagnosis.cut, repair_layer_floor=repair_floor,
        state_dict=pruned.state_dict, train=pruned.train, info=info,
    )


def _checked_inputs(model: nn.Module, data: ImageData) -> None:
    """Refuse what would fail later with a raw torch error: no prunable weight, images the model cannot take,
    labels outside the model's classes."""
    if not prunable_parameters(model):
        raise ValueError("the model has no prunable weight (no nn.Conv2d or nn.Linear layer): there is nothing to "
                         "prune")
    if isinstance(data, NoData) or data.train_x.numel() == 0:
        return
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels, shape = int(data.train_x.shape[1]), tuple(data.train_x.shape[1:])
    if conv is not None and channels != conv.in_channels:
        hint = ("they look channels-last (N, H, W, C): pass images.permute(0, 3, 1, 2)"
                if int(data.train_x.shape[-1]) == conv.in_channels else
                f"convert them (e.g. images.repeat(1, {conv.in_channels}, 1, 1) for grayscale)"
                if channels == 1 else "pass NCHW images with the channels the model takes")
        raise ValueError(f"data: the model's first convolution takes {conv.in_channels} channel(s) but the images "
                         f"have shape {shape} (C = {channels}); {hint}")
    outputs = _num_outputs(model)
    labels = torch.cat([data.train_y.flatten(), data.test_y.flatten()])
    if outputs is not None and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= outputs):
        raise ValueError(f"data: labels must be class indices in [0, {outputs}) for the model's {outputs} outputs; "
                         f"got labels from {int(labels.min())} to {int(labels.max())}")


def _num_outputs(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


# --------------------------------------------------------------------------- the public functions


def prune(
    model: nn.Module,
    method: str,
    sparsity: float,
    data: object = None,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    include_classifier: bool = True,
    recipe: TrainRecipe | Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    features: FeaturesConfig | Mapping[str, Any] | None = None,
    on_collapse: OnCollapse = "repair",
) -> PrunedMasks:
    """Choose which weights of ``model`` to prune with ``method``; the model itself is not modified.

    Args:
        model: any ``nn.Module``; the weights of its Conv2d and Linear layers are prunable (biases and norms never).
        method: a registered method (``autos.pruners.PRUNERS``: ``snip``, ``synflow``, ``autos``, ...).
        sparsity: the fraction of prunable weights removed, in (0, 1). Kept count: round-half-up of
            ``(1 - sparsity) * N`` (per layer for layer-wise methods), as everywhere in the pipeline.
        data: what data-driven methods read (``autos.api.adapters.as_image_data``): a DataLoader of
            ``(images, labels)`` batches or an ``(images, labels)`` pair (float images as your model takes them,
            already normalised, or uint8 mapped to [0, 1]), ``(train, test)`` of either (methods that train report
            accuracy on ``test``; otherwise the one split serves both), or ``autos.data`` prepared data.
        settings: the method's settings (a dict or its ``Settings`` model), validated strictly; e.g. AutoS's
            ``{"scorer_dir": "data/scorer"}`` (absolute, or relative to the current directory).
        seed: draws (data order, random masks); the same call gives the same mask.
        device: where the method computes; None: where the model's parameters are.
        include_classifier: whether the last Linear layer is prunable (the pipeline's default: it is).
        recipe: the training recipe (``autos.config.TrainRecipe`` or a dict) of the methods that train (K-starts,
            Dissipating, Pruning from Scratch, Lottery Jackpots, IRP); ignored by the others.
        input_shape: ``(C, H, W)`` when ``data`` is None, for data-free methods that build an input (SynFlow) and
            for the effective-sparsity check; read from the data otherwise.
        on_collapse: what to do when the mask cuts the network (a prunable layer left without any weight on an
            input -> output path): ``repair`` (default: re-run the method with a per-layer floor of ERK's counts,
            recorded in ``repair_layer_floor``), ``warn`` (keep the method's own mask, with a
            ``LayerCollapseWarning`` naming the layer that cut it) or ``error`` (raise ``CollapseError``).
        features: AutoS only (``autos.pruners.autos_scorer``): the target's features follow the config stored with the
            scorer; this one (a ``FeaturesConfig`` or dict) serves an old scorer that stored none, and its
            ``gradient_max_batches``, when set, caps the g0 pass (a compute budget).

    Returns:
        A ``PrunedMasks``: ``{parameter name: bool mask}`` plus the achieved sparsity, per-layer density,
        effective sparsity and collapse. A collapse (a prunable layer left without any weight on an input ->
        output path) also emits a ``LayerCollapseWarning`` naming the layers.

    Raises:
        ValueError: a sparsity outside (0, 1), an unknown method or setting, no data for a method that needs it.
    """
    sparsity = _check_sparsity(sparsity)
    if on_collapse not in ON_COLLAPSE:
        raise ValueError(f"on_collapse must be one of {', '.join(map(repr, ON_COLLAPSE))}, got {on_collapse!r}")
    cls = pruner_class(method)
    typed = method_settings(method, settings)
    image_data = _data(method, data, input_shape)
    _checked_inputs(model, image_data)
    ctx = PruneContext(model=model, data=image_data, recipe=_recipe(recipe), device=_device(model, device), seed=seed,
                       num_classes=_num_classes(model, image_data), include_classifier=include_classifier,
                       root=Path.cwd(), features=_features(features))
    with visible_progress():  # long selections report progress even where logging is not set up
        pruner = cls(typed)
        pruned = pruner.prune(ctx, 1.0 - sparsity)
        shape = _input_shape(image_data, input_shape)
        where = f"autos.prune({method!r}, sparsity={sparsity})"
        pruned, diagnosis, floor = _settle_collapse(pruner, ctx, 1.0 - sparsity, pruned, shape, where, on_collapse)
    return _result(method, typed, sparsity, pruned, diagnosis, floor)


def _settle_collapse(pruner: Pruner[Any], ctx: PruneContext, density: float, pruned: PruneResult,
                     shape: tuple[int, ...] | None, where: str,
                     on_collapse: OnCollapse) -> tuple[PruneResult, Health, float | None]:
    """``on_collapse`` applied to the method's own mask at ``density``: (the mask kept, its diagnosis, the repair's
    floor, None when not repaired)."""
    model, method = ctx.model, pruner.name
    diagnosis, floor = health(model, pruned.masks, shape), None
    if diagnosis.collapsed and on_collapse == "repair":
        repaired = repair(pruner, ctx, density, model, shape)
        if repaired is None:
            report(f"{where}: the mask is cut ({diagnosis.describe()}) and {method!r} has no layer_floor to repair "
                   "it with (or selects layer-wise); pass on_collapse='error' to refuse such masks, or use a method "
                   "that keeps every layer (e.g. random_erk)", "warn")
            return pruned, diagnosis, floor
        pruned, diagnosis, floor = repaired
        log.info("%s: the method's own mask cut the network; repaired with layer_floor %s", where, floor)
        if diagnosis.collapsed:
            report(f"{where}: still cut with every layer at ERK's count ({diagnosis.describe()})", "warn")
    elif diagnosis.collapsed:
        report(f"{where}: the mask is cut: {diagnosis.describe()}", on_collapse)
    return pruned, diagnosis, floor


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """'layer1.0.conv1.weight' -> (model.layer1[0].conv1, 'weight'); also under an applied mask ('weight_orig')."""
    module_name, _, param_name = name.rpartition(".")
    try:
        module = model.get_submodule(module_name)
    except AttributeError:
        raise KeyError(f"mask {name!r}: the model has no module {module_name!r}") from None
    if not isinstance(getattr(module, param_name, None), Tensor):
        raise KeyError(f"mask {name!r}: module {module_name!r} has no tensor {param_name!r}")
    return module, param_name


def apply(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Hold ``masks`` on ``model`` with ``torch.nn.utils.prune.custom_from_mask`` (in place; returns ``model``).

    Each masked parameter ``weight`` becomes ``weight_orig`` (trained) and a ``weight_mask`` buffer, and every
    forward recomputes ``weight = weight_orig * weight_mask``: pruned weights stay exactly zero through any
    training loop, optimizer, weight decay or momentum, with no change to your code. ``remove`` makes it permanent.
    Applying twice multiplies the masks (torch's pruning container).
    """
    owners = [(_owner(model, name), mask) for name, mask in masks.items()]  # every name checked before any change
    for (module, param_name), mask in owners:
        weight = getattr(module, param_name)
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"mask for {param_name!r} of {type(module).__name__} has shape {tuple(mask.shape)}, "
                             f"the weight {tuple(weight.shape)}")
    for (module, param_name), mask in owners:
        weight = getattr(module, param_name)
        torch_prune.custom_from_mask(module, param_name, mask.to(device=weight.device, dtype=torch.bool))
    return model


def remove(model: nn.Module) -> nn.Module:
    """Make every mask ``apply`` put on ``model`` permanent (``torch.nn.utils.prune.remove``; in place; returns
    ``model``): each ``weight`` is a plain parameter again, holding ``weight_orig * weight_mask`` (pruned entries
    zero); the ``_orig`` parameters, ``_mask`` buffers and forward hooks are gone."""
    for module in model.modules():
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, torch_prune.BasePruningMethod)]
        for hook in hooks:
            torch_prune.remove(module, hook._tensor_name)
    return model
