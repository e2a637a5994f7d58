"""Persistence of a trained scorer: ``save_scorer`` / ``load_scorer`` (state_dict + JSON, never a pickle).

A scorer is only meaningful on features built the way its training table was built (how g0 is reduced over
batches, the batch size, augmentation), so its metadata carries that ``FeaturesConfig`` under ``meta.features``
(the train_scorer stage has always written it there; ``save_scorer(features=...)`` does it for other callers), and
``stored_features`` reads it back for whoever builds a target's features (the ``autos`` method, ``autos-prune``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from autos.config import FeaturesConfig
from autos.errors import DataError
from autos.files import atomic_write_text, save_torch, sha256_file
from autos.scorer.nets import SCORERS, ScorerNet, ScorerSettings, build_scorer

WEIGHTS_FILE = "scorer.pt"
META_FILE = "scorer.json"
FORMAT_VERSION = 1
FEATURES_KEY = "features"  # in the metadata: the FeaturesConfig the training table was built with

log = logging.getLogger(__name__)


def save_scorer(
    directory: str | Path,
    model: nn.Module,
    name: str,
    settings: ScorerSettings,
    extra_meta: Mapping[str, Any] | None = None,
    features: FeaturesConfig | None = None,
) -> None:
    """Write ``scorer.pt`` (state_dict only: loading never unpickles code, unlike the reference's pickled module,
    docs/reference/autos.md §8.4 item 10) and then ``scorer.json`` (name, settings, inputs, metadata, the weights'
    sha256), each atomically; the JSON is written last, so a complete JSON implies matching weights.

    ``features``: the config the scorer's training features were built with, stored as ``meta.features`` so that
    targets are featurised the same way (``stored_features``); it may also come inside ``extra_meta``, as the
    train_scorer stage passes it, but not both ways at once.
    """
    meta_extra = dict(extra_meta or {})
    if features is not None:
        if FEATURES_KEY in meta_extra:
            raise ValueError(f"the features config is given twice: as features= and as extra_meta[{FEATURES_KEY!r}]")
        meta_extra[FEATURES_KEY] = features.model_dump(mode="json")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    save_torch(state, weights)  # byte-reproducible: same seed, same bytes, same DVC hash
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "settings": settings.model_dump(mode="json"),
        "inputs": list(settings.inputs),
        "weights_sha256": sha256_file(weights),
        "meta": meta_extra,
    }
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    atomic_write_text(directory / META_FILE, text)


def load_scorer(directory: str | Path) -> tuple[ScorerNet, str, ScorerSettings, dict[str, Any]]:
    """Load what ``save_scorer`` wrote: (model in eval mode on CPU, name, settings, metadata). DataError if missing,
    corrupt or inconsistent (each message names the file)."""
    directory = Path(directory)
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DataError(f"no trained scorer at {directory}: {meta_path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"corrupt scorer metadata {meta_path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: not a scorer file of format_version {FORMAT_VERSION}")
    name = meta.get("name")
    if name not in SCORERS:
        raise DataError(f"{meta_path}: unknown scorer {name!r}; allowed: {', '.join(SCORERS.names())}")
    assert isinstance(name, str)  # a registered name
    try:
        model, settings = build_scorer(name, meta.get("settings") or {})
    except ValidationError as exc:
        raise DataError(f"{meta_path}: invalid settings for scorer {name!r}: {exc}") from None
    if not weights_path.is_file():
        raise DataError(f"{weights_path} is missing (next to {meta_path})")
    if meta.get("weights_sha256") != sha256_file(weights_path):
        raise DataError(f"{weights_path} does not match the sha256 recorded in {meta_path} (corrupt or replaced)")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read the bytes is a data problem
        raise DataError(f"cannot load scorer weights {weights_path}: {exc}") from None
    model.eval()
    return model, name, settings, dict(meta.get("meta") or {})


def stored_features(meta: Mapping[str, Any], where: str | Path = "the scorer") -> FeaturesConfig | None:
    """The ``FeaturesConfig`` a scorer was trained with, from ``load_scorer``'s metadata; None (with a logged
    warning) for a scorer saved before it was recorded. A record that is not a valid config is a DataError: a
    scorer applied to features built differently from its training table gives meaningless scores."""
    raw = meta.get(FEATURES_KEY)
    if raw is None:
        log.warning("%s records no features config (saved by an older version): the target's features are built "
                    "with the caller's config (defaults unless given), which may differ from the training table's",
                    where)
        return None
    try:
        return FeaturesConfig.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{where}: invalid features config in its metadata: {exc}") from None
