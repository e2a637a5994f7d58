"""Batches for the training loop and for scoring: what a dataset must provide, seeded order, augmentation and
normalisation.

Data live in memory as uint8 NCHW tensors (the prepared arrays); batches are shuffled with a seeded generator and
augmented on the fly (random crop with 4-pixel zero padding + horizontal flip, the CIFAR standard used by the
AutoS reference, docs/reference/autos.md §6.2), so a run is deterministic under its seed with no loader workers.

The training loop keeps the uint8 arrays on its device (``on_device``, once per run) and takes its batches from
``device_batches``: the random draws (order, crop offsets, flips) always come from a CPU ``torch.Generator``, in the
same order as ``iterate_batches`` draws them, and move to the device once per epoch; the gather, crop and flip run
on the device. So CPU and GPU runs see the same images in the same order, and a GPU step never waits on the host.
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


def draw_augmentation(b: int, generator: torch.Generator, padding: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """The random draws of ``augment_batch`` for ``b`` images: (row offsets, column offsets, flip flags)."""
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    return oy, ox, flip


def apply_augmentation(x: Tensor, oy: Tensor, ox: Tensor, flip: Tensor, padding: int = 4) -> Tensor:
    """Crop each zero-padded image at (``oy``, ``ox``) and mirror it where ``flip``; all on ``x``'s device."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    out = out.gather(3, cols)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def augment_batch(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop with zero padding + random horizontal flip, vectorised over a uint8 batch (on any device; the
    draws come from ``generator``, a CPU generator, so they are the same whatever the batch's device)."""
    oy, ox, flip = draw_augmentation(x.shape[0], generator, padding)
    return apply_augmentation(x, oy.to(x.device), ox.to(x.device), flip.to(x.device), padding)


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


@dataclass
class DeviceData:
    """An ``ImageData`` whose arrays live on one device (see ``on_device``)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: Sequence[float]
    std: Sequence[float]


def on_device(data: ImageData, device: torch.device) -> ImageData:
    """``data`` with its uint8 arrays on ``device``, copied once (on the arrays' own device, nothing is copied)."""
    arrays = (data.train_x, data.train_y, data.test_x, data.test_y)
    if all(a.device == device for a in arrays):
        return data
    train_x, train_y, test_x, test_y = (a.to(device) for a in arrays)
    return DeviceData(train_x, train_y, test_x, test_y, tuple(data.mean), tuple(data.std))


def device_batches(
    x: Tensor, y: Tensor, batch_size: int, *, generator: torch.Generator, augment: bool, padding: int = 4
) -> Iterator[tuple[Tensor, Tensor]]:
    """``iterate_batches`` with a generator, for arrays on any device: the same draws from ``generator`` (a CPU
    generator) in the same order, so the same batches, but drawn for the whole epoch up front and moved to ``x``'s
    device in one copy, so that no batch waits on the host. The uint8 batches are on ``x``'s device."""
    n = x.shape[0]
    # The draw order is iterate_batches': the permutation, then each batch's (rows, columns, flips) in turn.
    order = torch.randperm(n, generator=generator)
    plan = [order]
    if augment:
        draws = [draw_augmentation(min(batch_size, n - start), generator, padding) for start in range(0, n, batch_size)]
        plan += [torch.cat([d[k].long() for d in draws]) for k in range(3)] if draws else []
    # One host-to-device copy per epoch, not per step: a blocking copy waits for the GPU's queue to drain, so a
    # copy per step would stall every step. Non-blocking is safe from pageable memory (staged before it returns).
    on_dev = torch.stack(plan).to(x.device, non_blocking=True)
    order_d = on_dev[0]
    for start in range(0, n, batch_size):
        idx = order_d[start : start + batch_size]
        xb = x[idx]
        if augment:
            oy, ox, flip = (on_dev[k, start : start + batch_size] for k in (1, 2, 3))
            xb = apply_augmentation(xb, oy, ox, flip.bool(), padding)
        yield xb, y[idx]


def dataset_classes(data: ImageData) -> int:
    """The dataset's class count from its metadata (``PreparedData.num_classes``): the training labels alone
    undercount when the highest class has no training image (a capped or filtered split)."""
    declared = getattr(data, "num_classes", None)
    if declared is not None:
        return int(declared)
    return int(max(int(data.train_y.max()), int(data.test_y.max()))) + 1  # bare tensors: the best we can do
