"""AutoS scorer networks: per-weight features -> predicted IRP survival; fit, evaluate, predict, save/load.

A scorer is a *pointwise* regressor. It maps one weight's feature vector (columns of the Parquet table of
``autos.features``) to one score, trained with MSE on ``label = survived / P``
(docs/reference/autos.md §1, §3, §5.2).
On a transfer target, the ``autos`` pruning method scores every prunable weight with ``score_layers`` and keeps
the global top-k (docs/reference/autos.md §5.3).

Two scorers are registered in ``SCORERS``. Each is a class with a nested, strict ``Settings`` model (validated
by ``autos.study.scorer_settings``) and ``build(settings) -> ScorerNet``:

* ``paper``: the reference "resnet18" AutoS (docs/reference/autos.md §5.1). It reads raw (w0, g0), with no
  normalisation, because that is faithful (docs/reference/autos.md §4), and uses a CIFAR ResNet-18 backbone on a
  learned 3x32x32 "image".
* ``mlp``: our fast default. It reads per-layer standardised features plus layer descriptors, standardises
  them with training-row statistics kept as buffers, and feeds a small MLP.

Every net takes a float tensor [B, len(inputs)], with columns in ``settings.inputs`` order, and returns [B].

This package re-exports the public names of its modules, one job each:

- :mod:`autos.scorer.nets` - the networks, the ``SCORERS`` registry, their ``Settings`` and ``build_scorer``;
- :mod:`autos.scorer.fit` - the train/holdout split, ``input_matrix`` and ``fit_scorer``;
- :mod:`autos.scorer.predict` - ``predict``, ``score_layers`` and ``required_extra``;
- :mod:`autos.scorer.metrics` - ``evaluate_ranking``, ``trivial_baselines``, ``ticket_diagnostics`` (scipy, sklearn);
- :mod:`autos.scorer.io` - ``save_scorer`` / ``load_scorer`` and the file names.

The metrics are imported on first use: every stage looks the registry up when it validates its params, and
scipy + scikit-learn would otherwise add about a second to each start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autos.scorer.fit import EpochStats, FitResult, TrainingDiverged, fit_scorer, input_matrix, split_rows
from autos.scorer.io import FORMAT_VERSION, META_FILE, WEIGHTS_FILE, load_scorer, save_scorer
from autos.scorer.nets import (
    BASE_INPUTS,
    SCORERS,
    MLPNet,
    MLPScorer,
    PaperNet,
    PaperScorer,
    ScorerNet,
    ScorerSettings,
    ScorerSpec,
    build_scorer,
)
from autos.scorer.predict import predict, required_extra, score_layers

if TYPE_CHECKING:
    from autos.scorer.metrics import evaluate_ranking, ticket_diagnostics, trivial_baselines

_LAZY = ("evaluate_ranking", "ticket_diagnostics", "trivial_baselines")  # from autos.scorer.metrics

__all__ = [
    "BASE_INPUTS",
    "FORMAT_VERSION",
    "META_FILE",
    "SCORERS",
    "WEIGHTS_FILE",
    "EpochStats",
    "FitResult",
    "MLPNet",
    "MLPScorer",
    "PaperNet",
    "PaperScorer",
    "ScorerNet",
    "ScorerSettings",
    "ScorerSpec",
    "TrainingDiverged",
    "build_scorer",
    "evaluate_ranking",
    "fit_scorer",
    "input_matrix",
    "load_scorer",
    "predict",
    "required_extra",
    "save_scorer",
    "score_layers",
    "split_rows",
    "ticket_diagnostics",
    "trivial_baselines",
]


def __getattr__(name: str) -> Any:
    """The ``autos.scorer.metrics`` names on first access (PEP 562), then cached in this module."""
    if name in _LAZY:
        from autos.scorer import metrics

        value = getattr(metrics, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
