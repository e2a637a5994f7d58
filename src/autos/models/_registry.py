"""The model registry, in a leaf module: model files import it to register themselves, and nothing here imports
them back (no import-order constraints). ``autos.models`` imports every model file so all names are present."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from autos.registry import Registry

ModelFactory = Callable[..., nn.Module]  # (num_classes=, width=, input_size=) -> an initialised module

MODELS: Registry[ModelFactory] = Registry("model")
