"""Pruning from Scratch (Wang et al., AAAI 2020; docs/reference/methods.md §2), expressed as an unstructured mask.

Step 1 (docs/reference/methods.md §2, "learn the gates"): channel gates alpha (init 1) scale the output of every
gated BN: every conv's BN in VGG, only ``bn1`` inside each ResNet BasicBlock (residual channels are never pruned).
The weights and BN affine parameters stay at their random init (not optimised, ``requires_grad`` off); BN runs in
train mode. The loss is CE + lambda * (mean |alpha| - r)^2; the gates are updated by Adam (lr 0.01) and clamped
to [0, 1] after every step. The shared loop steps that Adam (``train(optimizer_factory=...)``, the recipe's lr set
to the gate lr with a constant schedule); ``GatePenalty`` (a Callback) adds the penalty gradient before the step,
clamps the gates after it and snapshots them every epoch. The snapshot kept is the one with the best held-out
accuracy among epochs whose non-zero-gate fraction is <= r (held-out = ``holdout_fraction`` of the training
images, never the test set), else the final one.

Step 2 ("derive the architecture"): keep the globally top-K gates. The paper searches K for a MACs target; our
transfer grid is parameter sparsity, so by default (``target='params'``) K is searched (binary search over the
integer K, monotone) for the requested density over the prunable weights; ``target='macs'`` reads ``density``
as the remaining-MACs fraction instead. Achieved density, MACs and parameter counts are reported. A pruned
channel zeroes its conv's output-channel weights and the consumer's input-channel weights (the next conv, or
the classifier after VGG's last conv; ResNet: block conv1 out / conv2 in). Its conv bias / BN shift still make a
constant activation, which the zeroed consumer weights cancel (not when the classifier is outside the prunable
set: then the classifier sees a constant from that channel).

Not applied, logged in ``info``: the width expansion of the gate-learning network (the mask must fit the
target) and Scratch-B's longer budget (every method trains with the study's shared recipe, for fairness). The
pruned network trains from the target's own init (``state_dict`` None), i.e. "from scratch".

The mask is structured (whole channels), so it is not a ``select_mask`` ranking of weights; the channels are the
globally top-K gates, hence the result's scope ``global``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor, nn

from autos.config import TrainRecipe
from autos.errors import UnsupportedModelError
from autos.masking import Masks, kept_count
from autos.models.vgg import CifarVGG
from autos.pruners._registry import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, Pruner, PruneResult, flat_settings
from autos.training import Callback, TrainState, train

log = logging.getLogger(__name__)


class PfSSettings(NoSettings):
    gate_epochs: PositiveInt = Field(
        default=10, description="epochs of gate learning (docs/reference/methods.md §2: 10)"
    )
    gate_lr: PositiveFloat = Field(default=0.01, description="Adam lr of the gates")
    penalty: float = Field(default=0.5, ge=0, description="lambda of lambda * (mean|alpha| - r)^2 (CIFAR 0.5)")
    gate_target: float = Field(default=0.2, gt=0, le=1, description="r: target mean gate and snapshot criterion")
    batch_size: PositiveInt = Field(default=128, description="gate-learning batch size")
    holdout_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="training images held out for snapshot selection (0: final snapshot)"
    )
    target: Literal["params", "macs"] = Field(
        default="params", description="what the requested density fixes: prunable-parameter or MACs fraction kept"
    )
    min_channels: PositiveInt = Field(default=1, description="channels kept in every gated layer at least")


@dataclass(frozen=True)
class GateGroup:
    bn: str  # gated BN module
    producer: str  # weight whose dim 0 are the gated channels
    consumer: str  # weight whose dim 1 are the gated channels
    channels: int


def gate_groups(model: nn.Module) -> list[GateGroup]:
    """ResNet: ``bn1`` of every block (conv1 -> bn1 -> conv2); VGG: every conv's BN, consumed by the next layer."""
    modules = dict(model.named_modules())
    blocks = [n for n, m in modules.items() if n and all(hasattr(m, a) for a in ("conv1", "bn1", "conv2"))]
    if blocks:
        return [GateGroup(f"{b}.bn1", f"{b}.conv1.weight", f"{b}.conv2.weight", modules[b].bn1.num_features)
                for b in blocks]
    if not isinstance(model, CifarVGG):
        raise UnsupportedModelError(
            f"pruning_from_scratch gates channels of blocks it knows (a conv1 -> bn1 -> conv2 block, as in ResNet's "
            f"BasicBlock, or this project's VGG, autos.models.vgg.CifarVGG); {type(model).__name__} has neither. "
            "For a channel-level method on it there is none here yet; for unstructured masks use snip, synflow or "
            "random_erk")
    layers = [(n, m) for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    groups = []
    for i, (name, module) in enumerate(layers):
        if isinstance(module, nn.Conv2d):
            bn_name, bn = layers[i + 1]
            consumer = next(n for n, m in layers[i + 2:] if isinstance(m, (nn.Conv2d, nn.Linear)))
            if not isinstance(bn, nn.BatchNorm2d):
                raise ValueError(f"{name} is not followed by a BatchNorm2d")
            groups.append(GateGroup(bn_name, f"{name}.weight", f"{consumer}.weight", module.out_channels))
    return groups


# --------------------------------------------------------------------------- step 1: gates


@dataclass
class _Split:
    """Training images split into gate-training and held-out images (the held-out part poses as ``test``)."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]


def gate_adam(gates: list[nn.Parameter], recipe: TrainRecipe) -> torch.optim.Optimizer:
    """The gates' optimizer (``train``'s ``optimizer_factory``): Adam at the recipe's lr (the gate lr)."""
    return torch.optim.Adam(gates, lr=recipe.lr)


class GatePenalty(Callback):
    """The sparsity penalty's gradient before every Adam step, the clamp to [0, 1] after it; gate snapshots."""

    def __init__(self, gates: list[nn.Parameter], settings: PfSSettings) -> None:
        self.gates, self.s = gates, settings
        self.snapshots: list[tuple[list[Tensor], float, float]] = []  # (gates, non-zero fraction, held-out acc)

    def on_after_backward(self, state: TrainState) -> None:
        alpha = torch.cat(tuple(self.gates))
        (self.s.penalty * (alpha.abs().mean() - self.s.gate_target) ** 2).backward()

    def on_step_end(self, state: TrainState) -> None:
        with torch.no_grad():
            for gate in self.gates:
                gate.clamp_(0.0, 1.0)

    def on_epoch_end(self, state: TrainState) -> None:
        alpha = torch.cat([g.detach() for g in self.gates])
        acc = state.history[-1].get("test_acc", float("nan"))
        self.snapshots.append(([g.detach().cpu().clone() for g in self.gates], float((alpha > 0).float().mean()), acc))


def learn_gates(ctx: PruneContext, groups: list[GateGroup], s: PfSSettings) -> tuple[list[Tensor], dict[str, Any]]:
    model = ctx.copy_model()
    for p in model.parameters():
        # frozen weights and BN affine (docs/reference/methods.md §2 pitfall: else network slimming)
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    gates = [nn.Parameter(torch.ones(g.channels, device=ctx.device)) for g in groups]
    for group, gate in zip(groups, gates, strict=True):
        modules[group.bn].register_forward_hook(lambda m, i, out, gate=gate: out * gate.view(1, -1, 1, 1))
    data = ctx.data
    n = data.train_x.shape[0]
    n_hold = int(round(s.holdout_fraction * n))
    if 0 < n_hold < n:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(ctx.seed + 6007))
        hold, rest = order[:n_hold], order[n_hold:]
        data = _Split(data.train_x[rest], data.train_y[rest], data.train_x[hold], data.train_y[hold],
                      tuple(data.mean), tuple(data.std))
    recipe = ctx.recipe.model_copy(update={  # the loop sets Adam's lr to recipe.lr (constant: the gate lr)
        "epochs": s.gate_epochs, "batch_size": s.batch_size, "lr": s.gate_lr, "schedule": "constant",
        "warmup_epochs": 0,
    })
    callback = GatePenalty(gates, s)
    train(model, data, recipe, seed=ctx.seed, device=ctx.device, callbacks=[callback], parameters=list(gates),
          optimizer_factory=gate_adam, desc="pfs gates", evaluate_every_epoch=n_hold > 0)
    qualifying = [i for i, (_, nz, _) in enumerate(callback.snapshots) if nz <= s.gate_target]
    if n_hold > 0 and qualifying:
        chosen = max(qualifying, key=lambda i: (callback.snapshots[i][2], -i))
    else:
        chosen = len(callback.snapshots) - 1
    snapshot, nonzero, acc = callback.snapshots[chosen]
    return snapshot, {"gate_snapshot_epoch": chosen + 1, "gate_nonzero_fraction": nonzero,
                      "gate_holdout_acc": acc, "gate_holdout_images": n_hold}


# --------------------------------------------------------------------------- step 2: channels -> mask


class ChannelCounter:
    """Kept prunable parameters and MACs of a channel selection (conv/linear weights only; BN and biases ignored)."""

    def __init__(self, ctx: PruneContext, groups: list[GateGroup]) -> None:
        model = ctx.copy_model().eval()
        self.groups = groups
        self.prunable = ctx.prunable_names()
        self.shapes: dict[str, torch.Size] = {}
        self.spatial: dict[str, int] = {}  # output positions per output channel (1 for Linear)

        def record(key: str):  # noqa: ANN202
            def hook(module: nn.Module, inputs: Any, out: Tensor) -> None:
                self.spatial[key] = out[0, 0].numel() if out.dim() == 4 else 1
            return hook

        hooks = []
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                self.shapes[f"{name}.weight"] = module.weight.shape
                hooks.append(module.register_forward_hook(record(f"{name}.weight")))
        size = int(ctx.data.train_x.shape[-1])
        with torch.no_grad():
            model(torch.zeros(1, int(ctx.data.train_x.shape[1]), size, size, device=ctx.device))
        for h in hooks:
            h.remove()
        self.out_group = {g.producer: i for i, g in enumerate(groups)}
        self.in_group = {g.consumer: i for i, g in enumerate(groups)}

    def kept_entries(self, name: str, keeps: list[Tensor]) -> int:
        shape = self.shapes[name]
        outs = int(keeps[self.out_group[name]].sum()) if name in self.out_group else shape[0]
        ins = int(keeps[self.in_group[name]].sum()) if name in self.in_group else shape[1]
        return shape.numel() // (shape[0] * shape[1]) * outs * ins

    def count(self, keeps: list[Tensor]) -> tuple[int, int]:
        """(kept prunable parameters, MACs of all conv/linear layers)."""
        kept = {name: self.kept_entries(name, keeps) for name in self.shapes}
        return sum(kept[n] for n in self.prunable), sum(kept[n] * self.spatial[n] for n in self.shapes)

    def masks(self, keeps: list[Tensor]) -> Masks:
        masks = Masks()
        for name in self.prunable:
            mask = torch.ones(self.shapes[name], dtype=torch.bool)
            if name in self.out_group:
                mask[~keeps[self.out_group[name]]] = False
            if name in self.in_group:
                mask[:, ~keeps[self.in_group[name]]] = False
            masks[name] = mask
        return masks


def top_channels(gates: list[Tensor], k: int, min_channels: int) -> list[Tensor]:
    """The globally top-k gates (ties by lower index) plus each layer's top ``min_channels``."""
    flat = torch.cat(gates)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    keeps = list(keep.split([g.numel() for g in gates]))
    for gate, layer_keep in zip(gates, keeps, strict=True):
        layer_keep[torch.sort(gate, descending=True, stable=True).indices[:min_channels]] = True
    return keeps


@PRUNERS.register("pruning_from_scratch")
class PruningFromScratch(Pruner[PfSSettings]):
    """docs/reference/methods.md §2. Cost: ``gate_epochs`` epochs of gate learning (forward + activation backward
    only)."""

    Settings = PfSSettings
    title = "Pruning from Scratch"
    needs_data = True

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        groups = gate_groups(ctx.model)
        gates, info = learn_gates(ctx, groups, s)
        counter = ChannelCounter(ctx, groups)
        total_channels = sum(g.channels for g in groups)
        params_dense, macs_dense = counter.count(top_channels(gates, total_channels, s.min_channels))

        def metric(k: int) -> int:
            return counter.count(top_channels(gates, k, s.min_channels))[0 if s.target == "params" else 1]

        goal = kept_count(params_dense, density) if s.target == "params" else density * macs_dense
        lo, hi = 0, total_channels  # smallest k with metric(k) >= goal (metric is non-decreasing in k)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if metric(mid) < goal else (lo, mid)
        k = lo - 1 if lo > 0 and goal - metric(lo - 1) < metric(lo) - goal else lo
        keeps = top_channels(gates, k, s.min_channels)
        params_kept, macs_kept = counter.count(keeps)
        floor_params, _ = counter.count(top_channels(gates, 0, s.min_channels))
        if s.target == "params" and floor_params > goal:
            log.warning("pruning_from_scratch: density %.4g unreachable; the channel floor keeps %.4g",
                        density, floor_params / params_dense)
        info.update(flat_settings(s))
        info.update(
            requested_density=density, achieved_density=params_kept / params_dense,
            min_density=floor_params / params_dense,
            params_dense=params_dense, params_pruned=params_kept, macs_dense=macs_dense, macs_pruned=macs_kept,
            macs_reduction=1.0 - macs_kept / macs_dense, kept_channels=sum(int(k_.sum()) for k_ in keeps),
            total_channels=total_channels, gated_layers=len(groups), extra_epochs=s.gate_epochs, dense_epochs=0,
            width_expansion="not applied (the mask must fit the target)",
            scratch_b_budget="not applied (shared training recipe for fairness)",
        )
        log.info("pruning_from_scratch: density %.4f (requested %.4f), MACs reduction %.3f, %d/%d channels",
                 info["achieved_density"], density, info["macs_reduction"], info["kept_channels"], total_channels)
        return PruneResult(masks=counter.masks(keeps), info=info, scope="global")
