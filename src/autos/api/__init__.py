"""Prune any PyTorch model: ``autos.prune`` chooses a mask, ``autos.apply`` holds it through your own training
loop, ``autos.remove`` makes it permanent (``prune``); data as users hold it (``adapters``); the ``autos-prune``
command (``cli``); the generated methods page (``methods_doc``). Nothing here imports the sweep."""

from __future__ import annotations

from autos.api.prune import LayerCollapseWarning, PrunedMasks, apply, method_settings, prune, pruner_class, remove

__all__ = ["LayerCollapseWarning", "PrunedMasks", "apply", "method_settings", "prune", "pruner_class", "remove"]
