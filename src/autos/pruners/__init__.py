"""Pruning methods, one module per method, all registered in ``PRUNERS`` (name -> class).

Where a method lives: ``docs/methods.md`` (generated from this registry) lists every name with its module,
kind and settings; the contract every method obeys is ``autos.pruners.base``.

Add a method:

1. In a new module here, write its settings as a pydantic model (``ScoreSettings`` or ``DataSettings`` for a
   score method, so it gets ``scope`` and the iterative schedule; ``NoSettings`` otherwise).
2. A score method subclasses ``ScorePruner[YourSettings]`` and implements only ``score(ctx)`` (higher = keep):
   the shared ``prune`` selects with ``select_mask`` (one-shot or iterative, ``prune_loop``). A method with its
   own loop subclasses ``Pruner[YourSettings]``, implements ``prune(ctx, density)``, ends in ``select_mask`` where
   it ranks weights (or says in its docstring why not) and sets ``PruneResult.scope``.
3. Set ``Settings = YourSettings`` (and ``needs_data``/``kind`` when they differ), decorate the class with
   ``@PRUNERS.register("name")`` (from ``autos.pruners._registry``) and import the module below.
4. Regenerate ``docs/methods.md`` (``python -m autos.api.methods_doc > docs/methods.md``; ``tests/test_docs.py``).

Which test proves it: ``tests/test_pruners_contract.py`` runs every registered name through the contract (masks
for exactly the prunable weights, kept count, finite scores, ``scope`` set, ``ctx.model`` untouched,
deterministic); add the method's known answers to ``tests/test_pruners_pai.py`` (at init) or
``tests/test_pruners_trained.py`` (methods that train).
"""

from __future__ import annotations

from autos.pruners import (  # noqa: F401  (each module registers its methods on import)
    autos_scorer,
    basic,
    erk,
    grasp,
    irp_target,
    kstarts,
    lottery_jackpots,
    prospr,
    pruning_from_scratch,
    snip,
    synflow,
)
from autos.pruners._registry import PRUNERS

__all__ = ["PRUNERS"]
