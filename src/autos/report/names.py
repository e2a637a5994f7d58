"""Display names for figures and sentences: methods (``SynFlow``, ``SNIP + shuffle``), targets and the source
(``VGG-16 on CIFAR-10``). Tables, CSVs and JSON keep the registry names.

A method's title comes from its registry record (``autos.registry.MethodRecord.title``): the report stage passes
``{name: record}`` (``autos.pruners.PRUNERS.records()``) down, since the report imports no torch and so not the
registry. A method without a record (old results, a removed method) is shown by its name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autos.registry import MethodRecord

MethodRecords = Mapping[str, MethodRecord]  # {registry name: record}, from autos.pruners.PRUNERS.records()

MODEL_NAMES = {"vgg16_bn": "VGG-16", "vgg16": "VGG-16", "resnet18": "ResNet-18"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tiny_imagenet": "Tiny ImageNet"}
REFERENCE_WIDTH = 64  # the paper's width (ModelSpec.width's default): not spelled out in titles


def method_title(method: str, records: MethodRecords) -> str:
    """``synflow`` -> ``SynFlow`` (its record's title); a method without a record: its name."""
    record = records.get(method)
    return record.title if record is not None else method


def method_name(label: str, records: MethodRecords) -> str:
    """``synflow`` -> ``SynFlow``; ``snip+shuffle`` -> ``SNIP + shuffle``."""
    method, _, modifier = label.partition("+")
    name = method_title(method, records)
    return f"{name} + {modifier}" if modifier else name


def settings_line(settings: Mapping[str, Any]) -> str:
    """``model=vgg16_bn, width=16, dataset=cifar10``: the scalar settings that are set, in their order."""
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None and not isinstance(v, (Mapping, list)))


def model_title(model: str, width: Any, dataset: str) -> str:
    """``VGG-16 on CIFAR-10``; ``ResNet-18 (width 16) on Tiny ImageNet`` when the width is not the paper's."""
    title = MODEL_NAMES.get(model, model)
    if width is not None and width != REFERENCE_WIDTH:
        title += f" (width {width})"
    return f"{title} on {DATASET_NAMES.get(dataset, dataset)}"


def target_title(target: str, spec: Mapping[str, Any] | None) -> str:
    """``VGG-16 on CIFAR-10`` from a target's results ``spec`` (model, width, dataset); the target's name without
    one."""
    if not isinstance(spec, Mapping) or not spec.get("model") or not spec.get("dataset"):
        return target
    return model_title(str(spec["model"]), spec.get("width"), str(spec["dataset"]))


def num_classes(dataset: Mapping[str, Any] | None) -> int | None:
    """The class count the transfer stage records (results' ``dataset.num_classes``), else None."""
    value = dataset.get("num_classes") if isinstance(dataset, Mapping) else None
    try:
        return int(value) if value is not None and int(value) > 0 else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Source:
    """The study's source (``params.yaml``'s ``source``): the model and dataset IRP ran on, whose survival labels
    the AutoS scorer learned; every target's AutoS masks come from that scorer. ``irp``: the IRP settings
    (``params.yaml``'s ``irp``), stated in the summary; ``seeds`` and ``pairing``: the independent source runs
    (``params.yaml``'s ``sources``)."""

    model: str
    dataset: str
    width: int | None = None
    epochs: int | None = None  # the source's override of training.epochs, if any
    irp: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()  # the independent source runs (``sources.seeds``); () when not given
    pairing: str | None = None  # how they meet the target seeds (``sources.pairing``: crossed, paired)

    @property
    def title(self) -> str:
        """``ResNet-18 (width 4) on CIFAR-10``."""
        return model_title(self.model, self.width, self.dataset)

    @property
    def spec(self) -> dict[str, Any]:
        """model, width, dataset, epochs: as ``params.yaml`` spells the source."""
        return {"model": self.model, "width": self.width, "dataset": self.dataset, "epochs": self.epochs}


def with_source(title: str, source: Source | None) -> str:
    """A figure's title with a second line naming the source (unchanged without one)."""
    return title if source is None else f"{title}\nAutoS source: {source.title}"
