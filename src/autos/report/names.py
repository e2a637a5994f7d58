"""Display names for figures and sentences: methods (``SynFlow``, ``SNIP + shuffle``) and targets (``VGG-16 on
CIFAR-10``). Tables, CSVs and JSON keep the registry names; an unknown name is shown as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

METHOD_NAMES = {
    "autos": "AutoS", "dense": "dense", "dissipating": "Dissipating", "grasp": "GraSP", "irp": "IRP",
    "kstarts": "K-starts", "kstarts_dissipating": "K-starts + Dissipating", "lottery_jackpots": "Lottery Jackpots",
    "magnitude": "Magnitude", "prospr": "ProsPr", "pruning_from_scratch": "Pruning from Scratch",
    "random": "Random", "random_erk": "Random (ERK)", "snip": "SNIP", "synflow": "SynFlow",
}
MODEL_NAMES = {"vgg16_bn": "VGG-16", "vgg16": "VGG-16", "resnet18": "ResNet-18"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tiny_imagenet": "Tiny ImageNet"}
REFERENCE_WIDTH = 64  # the paper's width (ModelSpec.width's default): not spelled out in titles


def method_name(label: str) -> str:
    """``synflow`` -> ``SynFlow``; ``snip+shuffle`` -> ``SNIP + shuffle``."""
    method, _, modifier = label.partition("+")
    name = METHOD_NAMES.get(method, method)
    return f"{name} + {modifier}" if modifier else name


def target_title(target: str, payload: Mapping[str, Any]) -> str:
    """``VGG-16 on CIFAR-10`` from the results' ``spec`` (model, width, dataset); the target's name without one."""
    spec = payload.get("spec")
    if not isinstance(spec, Mapping) or not spec.get("model") or not spec.get("dataset"):
        return target
    model = MODEL_NAMES.get(str(spec["model"]), str(spec["model"]))
    width = spec.get("width")
    if width is not None and width != REFERENCE_WIDTH:
        model += f" (width {width})"
    return f"{model} on {DATASET_NAMES.get(str(spec['dataset']), str(spec['dataset']))}"


def num_classes(payload: Mapping[str, Any]) -> int | None:
    """The dataset's class count the transfer stage records (``payload["dataset"]["num_classes"]``), else None."""
    data = payload.get("dataset")
    value = data.get("num_classes") if isinstance(data, Mapping) else None
    try:
        return int(value) if value is not None and int(value) > 0 else None
    except (TypeError, ValueError):
        return None
