"""Lottery Jackpots (Zhang et al., arXiv 2104.08700 / TPAMI 2023; docs/reference/methods.md §4): a mask searched in a
*trained* dense model whose weights never change. Not PaI: a pruning-after-training, no-weight-tuning reference.

1. Train a copy of the target densely with the study recipe (``dense_epochs``; cached in ``ctx.cache_dir`` under
   a hash of architecture, init, seed, recipe and data).
2. Per-layer budgets from the global magnitude threshold over the prunable weights except the classifier, which
   stays dense (docs/reference/methods.md §4 step 2). When the classifier is in the prunable set
   (``ctx.include_classifier``) it still counts in the total: the other layers share
   ``kept_count(N, density) - N_classifier`` weights, so the achieved density over the prunable set equals the
   request exactly.
3. Scores s initialised 1 (kept) / ``pruned_score`` (pruned), b the magnitude mask (step 3); forward W * b,
   straight-through dL/ds := dL/db (2023 upload, step 4), implemented with a parametrization on each weight.
4. All weights frozen, BN affine included; BN running stats update in train mode (step 5). Only the scores are
   optimised, by the shared loop's SGD (``parameters=scores``; lr 0.1, momentum 0.9, wd 5e-4 on scores, cosine).
5. Short restriction after every step, per layer (step 6; a Callback): swap the ``rate`` share of the revive
   candidates A = {b = 0, s > tau} with the drop candidates B = {b = 1, s <= tau} when |A| = |B| > 0.

Result: the mask and the trained dense weights (``state_dict``) that the mask was searched on. The per-layer
counts come from the budgets' ``select_mask`` (step 2) and the swaps keep them, so the result's scope is the
budgets' scope (``global`` for ``global_magnitude``); the search itself swaps positions rather than ranking.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, PositiveFloat, PositiveInt
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autos.config import TrainRecipe
from autos.errors import DataError
from autos.files import load_torch, save_torch
from autos.masking import Masks, classifier_name, kept_count, select_mask
from autos.pruners._registry import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, Pruner, PruneResult, Scope, clone_state, flat_settings
from autos.training import Callback, TrainState, train

log = logging.getLogger(__name__)


class JackpotsSettings(NoSettings):
    dense_epochs: PositiveInt | None = Field(default=None, description="dense pre-training epochs (null: recipe's)")
    finetune: bool = Field(
        default=False,
        description="false: evaluate the searched mask on the pre-trained weights with no weight update (the paper's"
        " CIFAR protocol); true: train the masked pre-trained weights with the shared recipe",
    )
    search_epochs: PositiveInt = Field(default=2, description="score-search epochs (paper: 30 or 160 on CIFAR)")
    search_lr: PositiveFloat = Field(default=0.1, description="SGD lr of the mask scores")
    search_momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum of the mask scores")
    search_weight_decay: float = Field(default=5e-4, ge=0, description="applies to the scores, as the reference")
    search_batch_size: PositiveInt = Field(default=256, description="batch size of the mask search")
    pruned_score: float = Field(default=0.99, description="initial score of pruned positions (2021 upload: 0.95)")
    layer_budgets: Literal["global_magnitude", "uniform"] = Field(
        default="global_magnitude", description="per-layer kept counts: global |W| threshold, or the same density"
    )
    restriction: Literal["cifar", "cosine"] = Field(
        default="cifar",
        description="swap rate: cifar = ceil((1 - epoch/E)^4) = 1 (every candidate swap), cosine = "
        "0.5 (1 + cos(pi epoch / E)) as on ImageNet",
    )


# --------------------------------------------------------------------------- the trained dense model


def dense_cache_key(ctx: PruneContext, recipe: TrainRecipe) -> str:
    digest = hashlib.sha256()
    for tensor in ctx.model.state_dict().values():  # the init itself, not only the seed that drew it
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    spec = {
        "architecture": repr(ctx.model),
        "seed": ctx.seed,
        "recipe": recipe.model_dump(mode="json"),
        "data": [list(ctx.data.train_x.shape), list(ctx.data.test_x.shape), int(ctx.data.train_y.sum()),
                 list(ctx.data.mean), list(ctx.data.std)],
        "init": digest.hexdigest(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def train_dense(ctx: PruneContext, recipe: TrainRecipe) -> tuple[dict[str, Tensor], float]:
    """Train a copy of the target densely: (CPU state_dict, final test accuracy)."""
    model = ctx.copy_model()
    result = train(model, ctx.data, recipe, seed=ctx.seed, device=ctx.device, desc="jackpots dense",
                   evaluate_every_epoch=False)
    return clone_state(model), result.final_test_acc


def trained_dense_state(ctx: PruneContext, recipe: TrainRecipe) -> tuple[dict[str, Tensor], dict[str, Any]]:
    path: Path | None = None
    if ctx.cache_dir is not None:
        path = Path(ctx.cache_dir) / f"jackpots_dense_{dense_cache_key(ctx, recipe)}.pt"
        if path.is_file():
            try:
                payload = load_torch(path, what="Lottery Jackpots dense-model cache")
                state, acc = payload["state_dict"], float(payload["test_acc"])
                expected = {k: tuple(v.shape) for k, v in ctx.model.state_dict().items()}
                if {k: tuple(v.shape) for k, v in state.items()} != expected:  # another architecture: garbage too
                    raise ValueError("its tensors do not match this model's names and shapes")
            except (DataError, KeyError, TypeError, ValueError, RuntimeError) as exc:
                log.warning("discarding the unreadable cache %s and retraining the dense model: %s", path, exc)
                path.unlink(missing_ok=True)
            else:
                log.info("lottery_jackpots: trained dense model from the cache %s", path)
                return state, {"dense_cache": "hit", "dense_test_acc": acc}
    state, acc = train_dense(ctx, recipe)
    if path is not None:
        save_torch({"state_dict": state, "test_acc": acc}, path)
    return state, {"dense_cache": "miss" if path is not None else "off", "dense_test_acc": acc}


# --------------------------------------------------------------------------- budgets and the score search


def layer_budgets(weights: dict[str, Tensor], kept: int, mode: str) -> Masks:
    """Initial masks b of the searched layers: global magnitude (per-layer counts from it) or uniform density."""
    total = sum(w.numel() for w in weights.values())
    scores = {n: w.detach().abs().cpu() for n, w in weights.items()}
    return select_mask(scores, kept / total, scope="global" if mode == "global_magnitude" else "layerwise")


class StraightThroughMask(nn.Module):
    """Parametrization W -> W * b with b = mask in value and dL/ds := dL/db (straight-through)."""

    mask: Tensor  # a buffer

    def __init__(self, mask: Tensor, pruned_score: float) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.score = nn.Parameter(torch.where(mask, 1.0, pruned_score).float())

    def forward(self, weight: Tensor) -> Tensor:
        return weight * (self.mask + self.score - self.score.detach())


@torch.no_grad()
def short_restriction_(mask: Tensor, score: Tensor, rate: float) -> int:
    """Swap the top ceil(rate |A|) revive candidates with the bottom ceil(rate |B|) drop candidates; returns swaps."""
    m, s = mask.flatten().clone(), score.detach().flatten()  # logical order, also for channels-last tensors
    n_pruned = int((m == 0).sum())
    if n_pruned == 0 or n_pruned == m.numel():
        return 0
    tau = torch.kthvalue(s.cpu(), n_pruned).values.to(s.device)  # the layer's prune-count-th smallest score
    revive = (m == 0) & (s > tau)
    drop = (m == 1) & (s <= tau)
    n = int(revive.sum())
    if n == 0 or n != int(drop.sum()):
        return 0
    swaps = math.ceil(rate * n)
    up = torch.topk(torch.where(revive, s, -math.inf), swaps).indices
    down = torch.topk(torch.where(drop, -s, -math.inf), swaps).indices
    m[up], m[down] = 1.0, 0.0
    mask.copy_(m.view(mask.shape))
    return swaps


class ShortRestriction(Callback):
    def __init__(self, layers: list[StraightThroughMask], epochs: int, schedule: str) -> None:
        self.layers, self.epochs, self.schedule = layers, epochs, schedule
        self.swaps = 0

    def on_step_end(self, state: TrainState) -> None:
        progress = state.epoch / self.epochs
        rate = math.ceil((1 - progress) ** 4) if self.schedule == "cifar" else 0.5 * (1 + math.cos(math.pi * progress))
        for layer in self.layers:
            self.swaps += short_restriction_(layer.mask, layer.score, rate)


@PRUNERS.register("lottery_jackpots")
class LotteryJackpots(Pruner[JackpotsSettings]):
    """docs/reference/methods.md §4. Cost: a dense training (``dense_epochs``, cached) + ``search_epochs`` score
    epochs."""

    Settings = JackpotsSettings
    title = "Lottery Jackpots"
    needs_data = True
    kind = "trained"

    @classmethod
    def shares_work(cls, settings: BaseModel) -> bool:
        return True  # the dense training, cached in cache_dir: one cell trains it, the other densities read it

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        dense_recipe = ctx.recipe.with_epochs(s.dense_epochs)
        dense_state, info = trained_dense_state(ctx, dense_recipe)
        model = copy.deepcopy(ctx.model)
        model.load_state_dict(dense_state)
        model.to(ctx.device)
        for p in model.parameters():
            # every weight and bias frozen, BN affine included (docs/reference/methods.md §4 step 5)
            p.requires_grad_(False)

        names = ctx.prunable_names()
        params = dict(model.named_parameters())
        fc = classifier_name(model)
        searched = [n for n in names if n != fc]
        fixed = params[fc].numel() if fc in names else 0  # the classifier is kept dense but counted
        kept = kept_count(sum(params[n].numel() for n in names), density) - fixed
        if kept < 1:
            raise ValueError(f"lottery_jackpots: density {density:.4g} keeps {kept + fixed} weights, and the dense "
                             f"classifier ({fc}) alone has {fixed}: none is left to search; lower the sparsity or use "
                             "a wider model")
        init_masks = layer_budgets({n: params[n] for n in searched}, kept, s.layer_budgets)

        modules = dict(model.named_modules())
        layers = []
        for name in searched:
            layer = StraightThroughMask(init_masks[name].to(ctx.device), s.pruned_score).to(ctx.device)
            parametrize.register_parametrization(modules[name.removesuffix(".weight")], "weight", layer)
            layers.append(layer)
        recipe = ctx.recipe.model_copy(update={
            "epochs": s.search_epochs, "lr": s.search_lr, "momentum": s.search_momentum, "nesterov": False,
            "weight_decay": s.search_weight_decay, "schedule": "cosine", "warmup_epochs": 0,
            "batch_size": s.search_batch_size,
        })
        restriction = ShortRestriction(layers, s.search_epochs, s.restriction)
        result = train(model, ctx.data, recipe, seed=ctx.seed, device=ctx.device, callbacks=[restriction],
                       parameters=[layer.score for layer in layers], desc="jackpots search",
                       evaluate_every_epoch=False)

        masks = Masks()
        for name in names:
            if name in searched:
                masks[name] = layers[searched.index(name)].mask.detach().cpu().contiguous().bool()
            else:
                masks[name] = torch.ones(params[name].shape, dtype=torch.bool)
        changed = sum(int((masks[n] != init_masks[n]).sum()) for n in searched) // 2
        info.update(flat_settings(s))
        info.update(
            kind="trained", dense_epochs=dense_recipe.epochs, extra_epochs=dense_recipe.epochs + s.search_epochs,
            search_epochs=s.search_epochs, swaps=restriction.swaps, mask_changes_vs_magnitude=changed,
            classifier_dense=int(fc in names), search_test_acc=result.final_test_acc,
        )
        log.info("lottery_jackpots: %d swaps, %d positions moved from the magnitude mask", restriction.swaps, changed)
        scope: Scope = "global" if s.layer_budgets == "global_magnitude" else "layerwise"
        return PruneResult(masks=masks, info=info, state_dict=dense_state, train=s.finetune, scope=scope)
