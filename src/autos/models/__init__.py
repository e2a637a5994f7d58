"""Model registry. Every factory takes (num_classes, width, input_size) and returns an initialised nn.Module.

Add a model: write a factory in a module here, decorate it with ``@MODELS.register("name")`` (from
``autos.models._registry``) and import the module below. ``tests/test_models.py`` runs every registered name.
"""

from __future__ import annotations

import torch
from torch import nn

from autos.config import ModelSpec
from autos.models import resnet, vgg  # noqa: F401  (registration side effects)
from autos.models._registry import MODELS


def build_model(name: str, *, num_classes: int, width: int, input_size: int, seed: int) -> nn.Module:
    """Build a registered model with its initialisation drawn from ``seed`` (CPU RNG, so the same on any device)."""
    factory = MODELS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(num_classes=num_classes, width=width, input_size=input_size)


def model_for(spec: ModelSpec, *, num_classes: int, input_size: int, seed: int) -> nn.Module:
    """The model a params section (``source`` or a transfer target) describes, sized for its dataset."""
    return build_model(spec.model, num_classes=num_classes, width=spec.width, input_size=input_size, seed=seed)


__all__ = ["MODELS", "build_model", "model_for"]
