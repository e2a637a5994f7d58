"""Which torch device a run uses (its own module: stages need it without importing the training loop)."""

from __future__ import annotations

import torch

from autos.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError naming the allowed values."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["device: 'cuda' requested but no CUDA device is available; allowed here: 'auto', 'cpu'"])
    return torch.device(name)
