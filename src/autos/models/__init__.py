"""Model registry. Every factory takes (num_classes, width, input_size) and returns an initialised nn.Module.

Add a model: write a factory in a module here, decorate it with ``@MODELS.register("name")`` and
import the module below. ``tests/test_models.py`` runs every registered name.
"""

from __future__ import annotations

import torch
from torch import nn

from autos.registry import Registry

MODELS: Registry = Registry("model")

from autos.models import resnet, vgg  # noqa: E402,F401  (registration side effects)


def build_model(name: str, *, num_classes: int, width: int, input_size: int, seed: int) -> nn.Module:
    """Build a registered model with its initialisation drawn from ``seed`` (CPU RNG, so the same on any device)."""
    factory = MODELS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(num_classes=num_classes, width=width, input_size=input_size)


__all__ = ["MODELS", "build_model"]
