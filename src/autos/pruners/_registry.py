"""The pruning-method registry, in a leaf module: method modules import it to register themselves, and nothing
here imports them back (no import-order constraints). ``autos.pruners`` imports every method module."""

from __future__ import annotations

from typing import Any

from autos.pruners.base import Pruner
from autos.registry import Registry

PRUNERS: Registry[type[Pruner[Any]]] = Registry("method")
