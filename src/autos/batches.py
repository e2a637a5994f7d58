"""Batches for the training loop and for scoring: what a dataset must provide, seeded order, augmentation and
normalisation.

Data live in memory as uint8 NCHW tensors (the prepared arrays); batches are shuffled with a seeded generator and
augmented on the fly (random crop with 4-pixel zero padding + horizontal flip, the CIFAR standard used by the
AutoS reference, docs/reference/autos.md §6.2), so a run is deterministic under its seed with no loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class ImageData(Protocol):
    """What the loop needs from a prepared dataset (``autos.data.PreparedData`` satisfies it)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor

    @property
    def mean(self) -> Sequence[float]: ...

    @property
    def std(self) -> Sequence[float]: ...


def augment_batch(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop with zero padding + random horizontal flip, vectorised over a uint8 batch."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class Normalizer:
    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, data: ImageData, device: torch.device) -> Normalizer:
        mean = torch.tensor(list(data.mean), dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        std = torch.tensor(list(data.std), dtype=torch.float32, device=device).view(1, -1, 1, 1) * 255
        return cls(mean, std)

    def __call__(self, x: Tensor, channels_last: bool) -> Tensor:
        out = (x.float() - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None,
    augment: bool,
) -> Iterator[tuple[Tensor, Tensor]]:
    """uint8 batches in a seeded random order (``generator``) or in order (``None``)."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx]
        if augment:
            xb = augment_batch(xb, generator if generator is not None else torch.Generator().manual_seed(0))
        yield xb, y[idx]


def scoring_batches(
    data: ImageData, num_batches: int, batch_size: int, *, seed: int, device: torch.device, augment: bool = False
) -> list[tuple[Tensor, Tensor]]:
    """The first ``num_batches`` normalised training batches in a seeded order (for saliency scores)."""
    generator = torch.Generator().manual_seed(seed)
    norm = Normalizer.of(data, device)
    out = []
    for i, (xb, yb) in enumerate(iterate_batches(data.train_x, data.train_y, batch_size, generator=generator,
                                                 augment=augment)):
        if i >= num_batches:
            break
        out.append((norm(xb.to(device), channels_last=False), yb.to(device)))
    return out
