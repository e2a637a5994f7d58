"""The one gradient-accumulation helper (``autos.saliency.summed_gradients``, used by features' g0, SNIP and GraSP)
and ``train``'s optimizer factory (Pruning from Scratch's Adam over the gates, stepped by the shared loop): both
checked bit for bit against the loops they replaced."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import make_tiny_data  # noqa: E402  (the shared synthetic ImageData)
from torch import Tensor, nn

from autos.config import FeaturesConfig, TrainRecipe
from autos.features import initial_gradients
from autos.masking import prunable_parameters
from autos.models import build_model
from autos.pruners.base import PruneContext
from autos.pruners.pruning_from_scratch import PfSSettings, _Split, gate_groups, learn_gates
from autos.saliency import summed_gradients
from autos.training import Callback, TrainState, make_optimizer, train
from autos.training.batches import Normalizer, iterate_batches

DATA = make_tiny_data()


def _model(arch: str = "vgg16_bn") -> nn.Module:
    return build_model(arch, num_classes=4, width=4, input_size=32, seed=0)


def _batches(n: int) -> list[tuple[Tensor, Tensor]]:
    norm = Normalizer.of(DATA, torch.device("cpu"))
    out = []
    for i in range(n):
        x, y = DATA.train_x[16 * i: 16 * (i + 1)], DATA.train_y[16 * i: 16 * (i + 1)]
        out.append((norm(x, False), y))
    return out


def test_summed_gradients_is_the_backward_accumulation() -> None:
    model = _model()
    names = list(prunable_parameters(model))
    batches = _batches(3)
    reference = _model()
    for x, y in batches:  # the loop SNIP and the features had: one backward per batch into .grad
        F.cross_entropy(reference(x) / 2.0, y).backward()
    grads, count = summed_gradients(model, batches, names, temperature=2.0)
    ref_params = dict(reference.named_parameters())
    assert count == 3 and list(grads) == names
    assert all(torch.equal(grads[n], ref_params[n].grad) for n in names)
    assert all(p.grad is None for p in model.parameters()), "the model's .grad must be cleared"


def test_initial_gradients_unchanged() -> None:
    """features' g0 equals the pre-helper loop (max batches, mean reduction)."""
    cfg = FeaturesConfig(gradient_batch_size=16, gradient_max_batches=2, gradient_reduction="mean")
    model = _model("resnet18")
    names = list(prunable_parameters(model))
    g0 = initial_gradients(model, DATA, names, cfg, device=torch.device("cpu"), seed=5)
    reference = _model("resnet18").eval()
    norm = Normalizer.of(DATA, torch.device("cpu"))
    generator = torch.Generator().manual_seed(5)
    count = 0
    for xb, yb in iterate_batches(DATA.train_x, DATA.train_y, 16, generator=generator, augment=cfg.gradient_augment):
        if count >= 2:
            break
        F.cross_entropy(reference(norm(xb, False)), yb).backward()
        count += 1
    params = dict(reference.named_parameters())
    assert all(torch.equal(g0[n], params[n].grad * (1.0 / count)) for n in names)
    assert model.training, "initial_gradients restores the model's mode"


# --------------------------------------------------------------------------- the optimizer factory


def test_train_uses_the_optimizer_factory_and_sets_its_lr() -> None:
    model = _model()
    built: list[torch.optim.Optimizer] = []

    def adam(params: list[nn.Parameter], recipe: TrainRecipe) -> torch.optim.Optimizer:
        built.append(torch.optim.Adam(params, lr=recipe.lr))
        return built[-1]

    recipe = TrainRecipe(epochs=1, batch_size=32, lr=0.003, schedule="constant", warmup_epochs=0)
    train(model, DATA, recipe, seed=0, device=torch.device("cpu"), optimizer_factory=adam,
          evaluate_every_epoch=False)
    assert len(built) == 1 and isinstance(built[0], torch.optim.Adam)
    assert built[0].param_groups[0]["lr"] == 0.003 and built[0].state  # stepped by the loop
    assert make_optimizer([nn.Parameter(torch.zeros(1))], recipe).__class__ is torch.optim.SGD  # the default


class _AdamInCallback(Callback):
    """The pre-redesign gate optimizer: Adam stepped inside ``on_after_backward`` (reference only)."""

    def __init__(self, gates: list[nn.Parameter], s: PfSSettings) -> None:
        self.gates, self.s = gates, s
        self.adam = torch.optim.Adam(gates, lr=s.gate_lr)
        self.snapshots: list[list[Tensor]] = []

    def on_after_backward(self, state: TrainState) -> None:
        alpha = torch.cat(tuple(self.gates))
        (self.s.penalty * (alpha.abs().mean() - self.s.gate_target) ** 2).backward()
        self.adam.step()
        self.adam.zero_grad(set_to_none=True)
        with torch.no_grad():
            for gate in self.gates:
                gate.clamp_(0.0, 1.0)

    def on_epoch_end(self, state: TrainState) -> None:
        self.snapshots.append([g.detach().cpu().clone() for g in self.gates])


def test_pfs_gates_equal_adam_stepped_inside_a_callback() -> None:
    s = PfSSettings(gate_epochs=2, batch_size=16, holdout_fraction=0.0)
    ctx = PruneContext(model=_model(), data=DATA, recipe=TrainRecipe(epochs=1, batch_size=16, lr=0.1),
                       device=torch.device("cpu"), seed=0, num_classes=4)
    groups = gate_groups(ctx.model)
    gates, info = learn_gates(ctx, groups, s)
    assert info["gate_snapshot_epoch"] == 2

    model = ctx.copy_model()
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    ref_gates = [nn.Parameter(torch.ones(g.channels)) for g in groups]
    for group, gate in zip(groups, ref_gates, strict=True):
        modules[group.bn].register_forward_hook(lambda m, i, out, gate=gate: out * gate.view(1, -1, 1, 1))
    data = _Split(DATA.train_x, DATA.train_y, DATA.test_x, DATA.test_y, tuple(DATA.mean), tuple(DATA.std))
    recipe = ctx.recipe.model_copy(update={"epochs": 2, "batch_size": 16, "schedule": "constant", "warmup_epochs": 0})
    callback = _AdamInCallback(ref_gates, s)
    train(model, data, recipe, seed=0, device=torch.device("cpu"), callbacks=[callback], parameters=list(ref_gates),
          evaluate_every_epoch=False)
    assert all(torch.equal(a, b) for a, b in zip(gates, callback.snapshots[-1], strict=True))
