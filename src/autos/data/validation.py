"""A validation split held out of a prepared dataset's training images: what variants are chosen on, so that no
choice is made on the test set (``transfer.validation_per_class``)."""

from __future__ import annotations

import dataclasses

import torch

from autos.data.prepared import PreparedData
from autos.errors import DataError


def hold_out(data: PreparedData, per_class: int, seed: int) -> tuple[PreparedData, PreparedData | None]:
    """(training images without the held-out ones, the held-out ones as a dataset whose *test* split they are).

    ``per_class`` images of every class are drawn at random (seeded by ``seed``, the same for every cell of a
    study); 0 holds nothing out (None). A class with no more than ``per_class`` training images is refused: it
    would be left out of training altogether."""
    if per_class == 0:
        return data, None
    labels = data.train_y
    generator = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for cls in range(data.num_classes):
        members = (labels == cls).nonzero().flatten()
        if members.numel() <= per_class:
            raise DataError(f"transfer.validation_per_class {per_class} holds out every training image of class "
                            f"{cls} ({members.numel()} in all); allowed: fewer than the smallest class's count")
        held.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    val_idx = torch.cat(held).sort().values
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[val_idx] = False
    train = dataclasses.replace(data, train_x=data.train_x[keep], train_y=labels[keep])
    validation = dataclasses.replace(data, test_x=data.train_x[val_idx], test_y=labels[val_idx])
    return train, validation
