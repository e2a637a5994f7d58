"""The optimizer and learning-rate schedule of the one training recipe (``autos.config.TrainRecipe``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from autos.config import TrainRecipe


def make_optimizer(params: list[nn.Parameter], recipe: TrainRecipe) -> torch.optim.Optimizer:
    """The recipe's SGD (Nesterov momentum when momentum > 0, weight decay)."""
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )


def lr_factor(recipe: TrainRecipe, epoch_progress: float) -> float:
    """Multiplier of the base lr at a fractional epoch (linear warm-up, then the schedule)."""
    if recipe.warmup_epochs and epoch_progress < recipe.warmup_epochs:
        return (epoch_progress + 1e-8) / recipe.warmup_epochs
    fraction = epoch_progress / recipe.epochs
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
    if recipe.schedule == "multistep":
        return recipe.gamma ** sum(fraction >= m for m in recipe.milestones)
    return 1.0
