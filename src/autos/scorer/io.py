"""Persistence of a trained scorer: ``save_scorer`` / ``load_scorer`` (state_dict + JSON, never a pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from autos.errors import DataError
from autos.files import atomic_write_text, save_torch, sha256_file
from autos.scorer.nets import SCORERS, ScorerNet, ScorerSettings, build_scorer

WEIGHTS_FILE = "scorer.pt"
META_FILE = "scorer.json"
FORMAT_VERSION = 1


def save_scorer(
    directory: str | Path,
    model: nn.Module,
    name: str,
    settings: ScorerSettings,
    extra_meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``scorer.pt`` (state_dict only: loading never unpickles code, unlike the reference's pickled module,
    docs/reference/autos.md §8.4 item 10) and then ``scorer.json`` (name, settings, inputs, metadata, the weights'
    sha256), each atomically; the JSON is written last, so a complete JSON implies matching weights."""
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
        "meta": dict(extra_meta or {}),
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
