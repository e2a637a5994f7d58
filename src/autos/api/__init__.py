"""Prune any PyTorch model: ``autos.prune`` chooses a mask, ``autos.apply`` holds it through your own training
loop, ``autos.remove`` makes it permanent (``prune``); what happens to a mask that cuts the network (``collapse``);
data as users hold it (``adapters``); the ``autos-prune`` command (``cli``); the generated methods page
(``methods_doc``). Nothing here imports the sweep."""

from __future__ import annotations

from autos.api.collapse import CollapseError, LayerCollapseWarning
from autos.api.prune import PrunedMasks, apply, method_settings, prune, pruner_class, remove

__all__ = ["CollapseError", "LayerCollapseWarning", "PrunedMasks", "apply", "method_settings", "prune",
           "pruner_class", "remove"]
