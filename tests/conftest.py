"""Shared fixtures: tiny synthetic image data, the shared real-data folder, a one-epoch recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from autos.config import TrainRecipe

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@dataclass
class TinyData:
    """An ImageData with random uint8 images whose label is learnable (class-coloured images)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.train_y.max()) + 1


def make_tiny_data(n_train: int = 64, n_test: int = 32, num_classes: int = 4, size: int = 32,
                   seed: int = 0) -> TinyData:
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % num_classes
        x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
        x[:, 0] = (x[:, 0] // 4 + (y * 192 // max(1, num_classes - 1))[:, None, None]).clamp(max=255).to(torch.uint8)
        return x, y

    tx, ty = split(n_train)
    ex, ey = split(n_test)
    return TinyData(tx, ty, ex, ey)


@pytest.fixture
def tiny_data() -> TinyData:
    return make_tiny_data()


@pytest.fixture
def quick_recipe() -> TrainRecipe:
    return TrainRecipe(epochs=1, batch_size=16, lr=0.05)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared offline data not found at {SHARED_DATA}")
    return SHARED_DATA
