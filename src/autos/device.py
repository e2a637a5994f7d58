"""Which torch device a run uses, and how many CPU threads it computes with (its own module: stages need it
without importing the training loop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from autos.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError naming the allowed values."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["device: 'cuda' requested but no CUDA device is available; allowed here: 'auto', 'cpu'"])
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Compute with ``count`` CPU threads inside the block (None: leave the count as it is), then restore it.

    CPU results depend on the thread count (the order of floating-point sums), so a sweep cell fixes it; the
    count is process-wide in torch, so it is set for the cell and given back, never left behind."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"torch thread count must be >= 1, got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
