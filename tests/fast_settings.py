"""The one table of fast method settings the tests (and bench/mask_fingerprints.py) run every method with.

The methods' defaults are paper-scale; these keep each method to about a second on the tests' tiny models. A test
that needs something else passes it as an override (``make_pruner("irp", num_rounds=3)``) and says why.
"""

from __future__ import annotations

from typing import Any

import torch

from autos.config import TrainRecipe
from autos.pruners import PRUNERS
from autos.pruners.base import LoadedScorer, Pruner
from autos.scorer import build_scorer

FAST_SETTINGS: dict[str, dict[str, Any]] = {
    "snip": {"batch_size": 16},
    "grasp": {"samples_per_class": 2},
    "synflow": {"iterations": 5},
    "prospr": {"num_steps": 1, "batch_size": 16},
    "kstarts": {"k": 2},
    "dissipating": {"max_epochs": 1},
    "kstarts_dissipating": {"kstarts": {"k": 2}, "dissipating": {"max_epochs": 1}},
    "pruning_from_scratch": {"gate_epochs": 1, "batch_size": 16},
    "lottery_jackpots": {"dense_epochs": 1, "search_epochs": 1, "search_batch_size": 16},
    "irp": {"schedule": "linear", "num_rounds": 2, "epochs_per_round": 1},
}
FAST_RECIPE = TrainRecipe(epochs=1, batch_size=16)


def fast_settings(name: str, **overrides: Any) -> dict[str, Any]:
    """``name``'s fast settings with ``overrides`` on top (a nested model's settings are replaced whole)."""
    return {**FAST_SETTINGS.get(name, {}), **overrides}


def make_pruner(name: str, **overrides: Any) -> Pruner[Any]:
    """The registered method ``name`` with its fast settings (strictly validated, as the pipeline does)."""
    cls = PRUNERS.get(name)
    return cls(cls.Settings.model_validate(fast_settings(name, **overrides), strict=True))


def fixed_scorer() -> LoadedScorer:
    """An untrained but fixed AutoS scorer (seed 0): a method's contract does not depend on the scorer's quality."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net, settings = build_scorer("mlp", {"hidden": [8]})
        net.prepare(torch.randn(256, len(settings.inputs)))
    return net.eval(), "mlp", settings, {}
