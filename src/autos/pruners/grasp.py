"""GraSP (Wang, Zhang & Grosse, ICLR 2020; official ``alecwangcq/GraSP``, ``pruner/GraSP.py``):
docs/reference/methods.md §6.

SIGN CONVENTION (the method's most common bug). The paper scores S(-theta) = -theta * (H g) and REMOVES the
weights with the LARGEST S, i.e. it keeps the smallest -theta * Hg. Our contract is "higher score = keep", so
``score`` returns ``theta * Hg`` (= -S): keeping the top of theta * Hg is exactly GraSP. Synaptic-Flow computes the
same theta * Hg and masks its lowest values (docs/reference/methods.md §6). Scores are signed: invert them by negation.

H g is a double backward: the scoring copy has its modules without a differentiable backward swapped and runs
attention on the math backend (``autos.model_compat``); a model that still needs an op torch cannot differentiate
twice is refused (``UnsupportedModelError``). Dropout and stochastic depth are off while scoring (``scoring_mode``).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from autos.masking import Scores, prunable_parameters
from autos.model_compat import double_backward, forward_probe, prepare_double_backward_, scoring_mode
from autos.progress import Heartbeat
from autos.pruners._registry import PRUNERS
from autos.pruners.base import PruneContext, ScorePruner, ScoreSettings
from autos.saliency import summed_gradients
from autos.training.batches import Normalizer

log = logging.getLogger(__name__)


class GraSPSettings(ScoreSettings):
    # docs/reference/methods.md §6, step 2: 10 images per class on CIFAR-10/100 (official configs), split in two
    # halves.
    samples_per_class: int = Field(default=10, ge=2, description="class-balanced images per class, split in two halves")
    # The official CIFAR-100 ResNet-32 config uses 5 per class x 2 draws, Tiny-ImageNet 1 per class x 10 draws;
    # with 1 per class a half cannot be balanced.
    num_draws: int = Field(default=1, ge=1, description="independent class-balanced draws, each split in two halves")
    # Step 3: without the temperature the signal is flat (section 6 pitfalls).
    temperature: float = Field(default=200.0, gt=0, description="logits are divided by T (T = 200 in the paper)")
    # Step 1 (official ``reinit=True``); the lineage initialises the classifier N(0, 0.01).
    reinit_linear: bool = Field(
        default=True, description="re-initialise Linear weights Xavier-normal in the scoring copy"
    )
    # docs/reference/methods.md §0.6.
    train_mode: bool = Field(default=True, description="score with batch statistics (train-mode BN)")


def grasp_hessian_gradient(
    model: nn.Module,
    halves: list[tuple[Tensor, Tensor]],
    names: list[str],
    temperature: float = 200.0,
    train_mode: bool = True,
) -> Scores:
    """The core computation: ``theta * (H g)`` for every weight in ``names`` (higher = keep; see module doc).

    L_h = CE(f(x_h) / T, y_h) per half h; g = sum_h grad L_h (a constant: no graph); H g = grad of
    z = sum_h g . grad L_h (one double backward per half), i.e. the Hessian of sum_h L_h times g.
    g and H are taken w.r.t. every Conv2d/Linear weight (the official ``weights`` list), even when ``names``
    excludes the classifier; BN and bias parameters are held fixed (their Hessian blocks are not included).
    ``theta`` is the scored model's weights, so the re-initialised Linear weights when ``reinit_linear`` is set,
    as in the official code. ``model`` is used as is (modifies its BN running stats, swaps modules that torch
    cannot differentiate twice: ``autos.model_compat``): pass a copy.
    """
    scoring_mode(prepare_double_backward_(model), train_mode)
    weights = list(prunable_parameters(model, include_classifier=True).items())
    tensors = [w for _, w in weights]
    summed, _ = summed_gradients(model, halves, [name for name, _ in weights], temperature=temperature)
    g = [summed[name] for name, _ in weights]  # step 4: g, no graph
    hg = [torch.zeros_like(w) for w in tensors]
    heartbeat = Heartbeat(logger=log)  # a line every 30 s on a large model (nothing when it is quick)
    with double_backward("grasp", model, forward_probe(halves[0][0])):
        for i, (x, y) in enumerate(halves):  # step 5: H g by double backward, one half at a time (memory)
            heartbeat.beat("grasp: Hessian-gradient product, half %d/%d (%.0f s so far)", i + 1, len(halves),
                           heartbeat.elapsed())
            loss = F.cross_entropy(model(x) / temperature, y)
            grads = torch.autograd.grad(loss, tensors, create_graph=True)
            z = (g[0] * grads[0]).sum()  # g . grad L_h, summed left to right
            for gi, fi in zip(g[1:], grads[1:], strict=True):
                z = z + (gi * fi).sum()
            for acc, h in zip(hg, torch.autograd.grad(z, tensors), strict=True):
                acc.add_(h)
    by_name = {name: (w.detach() * h).cpu() for (name, w), h in zip(weights, hg, strict=True)}
    return {n: by_name[n] for n in names}


def class_balanced_halves(
    ctx: PruneContext, samples_per_class: int, num_draws: int
) -> list[tuple[Tensor, Tensor]]:
    """``num_draws`` class-balanced samples, each split into two halves, normalised on ``ctx.device``.

    Each half holds ~samples_per_class/2 images of every class. The official ``GraSP_fetch_data`` concatenates
    class by class and cuts at N//2, so its halves hold disjoint classes; balanced halves are our choice (with
    train-mode BN the per-half batch statistics then cover every class).
    """
    generator = torch.Generator().manual_seed(ctx.seed + 104729)
    labels = ctx.data.train_y.cpu()
    norm = Normalizer.of(ctx.data, ctx.device)
    halves = []
    for _ in range(num_draws):
        first, second = [], []
        for c in range(ctx.num_classes):
            idx = (labels == c).nonzero().flatten()
            if idx.numel() == 0:
                continue
            pick = idx[torch.randperm(idx.numel(), generator=generator)[:samples_per_class]]
            first.append(pick[: (pick.numel() + 1) // 2])
            second.append(pick[(pick.numel() + 1) // 2 :])
        for part in (torch.cat(first), torch.cat(second)):
            if part.numel() == 0:
                raise ValueError("GraSP needs at least 2 training images per class to fill both halves")
            x = norm(ctx.data.train_x[part].to(ctx.device), channels_last=False)
            halves.append((x, ctx.data.train_y[part].to(ctx.device)))
    return halves


@PRUNERS.register("grasp")
class GraSP(ScorePruner[GraSPSettings]):
    Settings = GraSPSettings
    title = "GraSP"
    needs_data = True

    def score(self, ctx: PruneContext) -> Scores:
        s = self.settings
        model = ctx.copy_model()
        if s.reinit_linear:
            generator = torch.Generator().manual_seed(ctx.seed)
            with torch.no_grad():
                for module in model.modules():
                    if isinstance(module, nn.Linear):
                        w = torch.empty(module.weight.shape)
                        nn.init.xavier_normal_(w, generator=generator)  # CPU draw: the same on every device
                        module.weight.copy_(w)
        halves = class_balanced_halves(ctx, s.samples_per_class, s.num_draws)
        return grasp_hessian_gradient(model, halves, ctx.prunable_names(model), s.temperature, s.train_mode)
