"""Pruning methods, one module per method, all registered in ``PRUNERS``.

Add a method: subclass ``ScorePruner`` (implement ``score``) or ``Pruner`` (implement ``prune``) in a new
module, decorate the class with ``@PRUNERS.register("name")``, give it a pydantic ``Settings`` model, and
import the module below. ``tests/test_pruners.py`` checks every registered method against the contract.
"""

from __future__ import annotations

from autos.registry import Registry

PRUNERS: Registry = Registry("method")

from autos.pruners import autos, basic, snip  # noqa: E402,F401  (registration side effects)
from autos.pruners import erk, grasp, prospr, synflow  # noqa: E402,F401  (registration side effects)
from autos.pruners import kstarts, pfs, jackpots, irp_target  # noqa: E402,F401  (registration side effects)

__all__ = ["PRUNERS"]
