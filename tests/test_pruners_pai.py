"""PaI baselines (random ERK, GraSP, SynFlow, ProsPr), the Frankle sanity-check modifiers and mask health.

CPU only and fast: a width-4 ResNet-18 and a tiny synthetic dataset, each method with its fast settings
(tests/fast_settings.py); the formulas are checked against independent computations (closed-form ERK, explicit path
sums, torch.autograd.functional.hvp, torch.func). The contract every method meets is in test_pruners_contract.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyData  # noqa: E402  (the shared synthetic ImageData)
from fast_settings import make_pruner  # the one table of fast method settings
from torch import Tensor, nn

from autos.config import TrainRecipe
from autos.masking import kept_count, prunable_parameters, select_mask
from autos.masking.health import effective_masks, effective_summary
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.pruners.erk import erk_counts, erk_densities
from autos.pruners.grasp import class_balanced_halves, grasp_hessian_gradient
from autos.pruners.prospr import prospr_scores
from autos.pruners.snip import snip_scores
from autos.pruners.synflow import linearize_, synflow_scores
from autos.sweep.modifiers import invert, reinit_weights, shuffle_within_layers

NUM_CLASSES = 10


def tiny_data(per_class: int = 8, size: int = 16) -> TinyData:
    g = torch.Generator().manual_seed(123)
    n = per_class * NUM_CLASSES
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(NUM_CLASSES).repeat(per_class)
    return TinyData(x, y, x[:20].clone(), y[:20].clone())


def make_ctx(arch: str = "resnet18", seed: int = 0) -> PruneContext:
    def factory(s: int) -> nn.Module:
        return build_model(arch, num_classes=NUM_CLASSES, width=4, input_size=32, seed=s)

    return PruneContext(
        model=factory(0),
        data=tiny_data(),
        recipe=TrainRecipe(),
        device=torch.device("cpu"),
        seed=seed,
        num_classes=NUM_CLASSES,
        build_model=factory,
    )


def clone_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- settings and seeds


@pytest.mark.parametrize("method", ["random_erk", "grasp", "prospr"])
def test_seed_changes_data_driven_or_random_masks(method: str) -> None:
    a = make_pruner(method).prune(make_ctx(seed=0), 0.2).masks
    b = make_pruner(method).prune(make_ctx(seed=1), 0.2).masks
    assert any(not torch.equal(a[n], b[n]) for n in a)


def test_settings_are_strict() -> None:
    for name in ("random_erk", "grasp", "synflow", "prospr"):
        with pytest.raises(ValueError):
            PRUNERS.get(name).Settings(not_a_setting=1)
    assert PRUNERS.get("synflow").Settings().iterations == 100
    assert PRUNERS.get("grasp").Settings().temperature == 200.0
    s = PRUNERS.get("prospr").Settings()
    assert (s.num_steps, s.inner_lr, s.inner_momentum, s.batch_size, s.first_order) == (3, 0.1, 0.0, 128, False)


# --------------------------------------------------------------------------- ERK


SHAPES = {"conv1": torch.Size([16, 3, 3, 3]), "conv2": torch.Size([32, 16, 3, 3]), "fc": torch.Size([10, 32])}


def test_erk_closed_form_without_dense_layers() -> None:
    numel = {n: math.prod(s) for n, s in SHAPES.items()}
    density = 0.05
    eps = density * sum(numel.values()) / sum(sum(s) for s in SHAPES.values())  # raw_l * N_l = sum(shape)
    expected = {n: eps * sum(s) / numel[n] for n, s in SHAPES.items()}
    got = erk_densities(SHAPES, density)
    assert all(math.isclose(got[n], expected[n], rel_tol=1e-12) for n in SHAPES)
    assert all(d < 1 for d in got.values())


def test_erk_redistributes_layers_above_one() -> None:
    numel = {n: math.prod(s) for n, s in SHAPES.items()}
    density = 0.3  # the ER density of fc, (10 + 32) / 320 * eps, exceeds 1 here
    got = erk_densities(SHAPES, density)
    assert got["fc"] == 1.0
    eps = (density * sum(numel.values()) - numel["fc"]) / (sum(SHAPES["conv1"]) + sum(SHAPES["conv2"]))
    for n in ("conv1", "conv2"):
        assert math.isclose(got[n], eps * sum(SHAPES[n]) / numel[n], rel_tol=1e-12)
    for d in (0.01, 0.3, 0.7, 0.95, 1.0):
        dens = erk_densities(SHAPES, d)
        assert all(0 < x <= 1 for x in dens.values())
        assert math.isclose(sum(dens[n] * numel[n] for n in SHAPES), d * sum(numel.values()), rel_tol=1e-9)
        counts = erk_counts(SHAPES, d)
        assert sum(counts.values()) == kept_count(sum(numel.values()), d)
        assert all(abs(counts[n] - dens[n] * numel[n]) < 1.0 for n in SHAPES)


def test_random_erk_layer_densities_on_a_model() -> None:
    ctx = make_ctx()
    masks = make_pruner("random_erk").prune(ctx, 0.1).masks
    params = dict(ctx.model.named_parameters())
    dens = erk_densities({n: params[n].shape for n in masks}, 0.1)
    for n, m in masks.items():
        assert abs(int(m.sum()) - dens[n] * m.numel()) < 1.0


# --------------------------------------------------------------------------- ProsPr


def test_prospr_zero_steps_equals_snip() -> None:
    ctx = make_ctx()
    bs = 16
    names = ctx.prunable_names()
    snip = snip_scores(ctx.copy_model(), ctx.batches(1, bs), names)
    prospr = make_pruner("prospr", num_steps=0, batch_size=bs).score(ctx)
    assert all(torch.allclose(prospr[n], snip[n], rtol=1e-6, atol=0) for n in names)
    unrolled = make_pruner("prospr", num_steps=1, batch_size=bs).score(ctx)
    assert any(not torch.allclose(unrolled[n], snip[n]) for n in names)


def _mlp(seed: int = 0, bias: bool = True) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7, bias=bias), nn.Tanh(), nn.Linear(7, 3, bias=bias)).double()


@pytest.mark.parametrize("first_order", [False, True])
def test_prospr_matches_torch_func_reference(first_order: bool) -> None:
    """Independent reference: differentiate L(theta_M(c)) w.r.t. c with torch.func (momentum SGD unrolled)."""
    model = _mlp()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g))]
    steps, lr, mu = 2, 0.3, 0.5
    names = ["0.weight", "2.weight"]
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = batches[0]

    def loss_at(params: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    def meta_loss(c: dict[str, Tensor]) -> Tensor:
        theta = {n: c[n] * v if n in c else v for n, v in init.items()}
        buf = None
        for _ in range(steps):
            grads = torch.func.grad(loss_at)(theta)
            if first_order:
                grads = {n: v.detach() for n, v in grads.items()}
            buf = grads if buf is None else {n: mu * buf[n] + grads[n] for n in grads}
            theta = {n: theta[n] - lr * buf[n] for n in theta}
        return loss_at(theta)

    ones = {n: torch.ones_like(init[n]) for n in names}
    expected = torch.func.grad(meta_loss)(ones)
    got = prospr_scores(model, batches, names, steps, lr, mu, first_order)
    for n in names:
        assert torch.allclose(got[n], expected[n].abs(), rtol=1e-9, atol=1e-12)
    if first_order:  # first order = |theta_init * grad L(theta_M)|
        assert not torch.allclose(got["0.weight"], prospr_scores(model, batches, names, steps, lr, mu)["0.weight"])


# --------------------------------------------------------------------------- GraSP


def test_grasp_equals_direct_hessian_vector_product() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    ).double()
    g = torch.Generator().manual_seed(2)
    halves = [(torch.randn(6, 3, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g))
              for _ in range(2)]
    names = ["0.weight", "5.weight"]
    temperature = 200.0
    w0 = tuple(dict(model.named_parameters())[n].detach().clone() for n in names)

    def total_loss(*ws: Tensor) -> Tensor:
        params = dict(zip(names, ws, strict=True))
        return sum(F.cross_entropy(torch.func.functional_call(model, params, (x,)) / temperature, y)
                   for x, y in halves)

    model.train()
    grad = torch.autograd.grad(total_loss(*[w.requires_grad_() for w in w0]), w0)
    _, hvp = torch.autograd.functional.hvp(total_loss, tuple(w.detach() for w in w0), grad)
    got = grasp_hessian_gradient(model, halves, names, temperature)
    for n, w, h in zip(names, w0, hvp, strict=True):
        assert torch.allclose(got[n], w.detach() * h, rtol=1e-8, atol=1e-20)  # theta * Hg, higher = keep
        assert got[n].abs().sum() > 0


def test_grasp_halves_are_class_balanced() -> None:
    ctx = make_ctx()
    halves = class_balanced_halves(ctx, samples_per_class=6, num_draws=2)
    assert len(halves) == 4
    for x, y in halves:
        assert x.dtype == torch.float32 and x.shape[1:] == ctx.data.train_x.shape[1:]
        assert torch.equal(torch.bincount(y, minlength=NUM_CLASSES), torch.full((NUM_CLASSES,), 3))


# --------------------------------------------------------------------------- SynFlow


def test_synflow_scores_equal_explicit_path_sums() -> None:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)).double()
    w1 = net[0].weight.detach().clone()
    w2 = net[2].weight.detach().clone()
    scores = synflow_scores(linearize_(net), ["0.weight", "2.weight"], (3,))
    # score(w) = |w| * (sum over input->output paths through w of the product of the other |weights|), input 1s
    exp1 = torch.zeros(4, 3, dtype=torch.float64)
    for j in range(4):
        for i in range(3):
            exp1[j, i] = abs(float(w1[j, i])) * sum(abs(float(w2[k, j])) for k in range(2))
    exp2 = torch.zeros(2, 4, dtype=torch.float64)
    for k in range(2):
        for j in range(4):
            exp2[k, j] = abs(float(w2[k, j])) * sum(abs(float(w1[j, i])) for i in range(3))
    assert torch.allclose(scores["0.weight"], exp1, rtol=1e-12)
    assert torch.allclose(scores["2.weight"], exp2, rtol=1e-12)


def test_synflow_conservation_per_layer() -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 6, bias=False), nn.ReLU(),
                        nn.Linear(6, 3, bias=False))
    names = ["0.weight", "2.weight", "4.weight"]
    scores = synflow_scores(linearize_(net), names, (5,))
    sums = [float(scores[n].sum()) for n in names]
    r = float(net(torch.ones(1, 5, dtype=torch.float64)).sum().detach())
    assert all(math.isclose(s, r, rel_tol=1e-10) for s in sums)


def test_synflow_single_iteration_is_single_shot_and_pruned_stay_pruned() -> None:
    ctx = make_ctx()
    names = ctx.prunable_names()
    one = make_pruner("synflow", iterations=1).prune(ctx, 0.2).masks
    scores = synflow_scores(linearize_(ctx.copy_model()), names, (3, 16, 16))
    assert all(torch.equal(one[n], select_mask(scores, 0.2)[n]) for n in names)
    coarse = make_pruner("synflow", iterations=1).prune(ctx, 0.5).masks
    fine = make_pruner("synflow", iterations=5).prune(ctx, 0.05).masks
    assert sum(int(fine[n].sum()) for n in names) == kept_count(sum(m.numel() for m in fine.values()), 0.05)
    inverted = make_pruner("synflow", iterations=1, invert=True).prune(ctx, 0.5).masks
    assert not any(bool((inverted[n] & coarse[n]).any()) for n in names)


# --------------------------------------------------------------------------- modifiers (Frankle et al. 2021)


def _half_mask(ctx: PruneContext) -> dict[str, Tensor]:
    params = dict(ctx.model.named_parameters())
    return select_mask({n: params[n].detach().abs() for n in ctx.prunable_names()}, 0.5, scope="layerwise")


def test_shuffle_keeps_layer_counts_and_moves_positions() -> None:
    ctx = make_ctx()
    masks = _half_mask(ctx)
    original = {n: m.clone() for n, m in masks.items()}
    shuffled = shuffle_within_layers(masks, seed=5)
    assert all(torch.equal(masks[n], original[n]) for n in masks), "input mask modified"
    for n in masks:
        assert shuffled[n].shape == masks[n].shape and int(shuffled[n].sum()) == int(masks[n].sum())
    assert all(not torch.equal(shuffled[n], masks[n]) for n in masks if masks[n].numel() > 20)
    again = shuffle_within_layers(masks, seed=5)
    assert all(torch.equal(again[n], shuffled[n]) for n in masks)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_invert_is_disjoint_at_half_density(scope: str) -> None:
    g = torch.Generator().manual_seed(6)
    scores = {"a": torch.randn(10, 6, generator=g), "b": torch.randn(4, 4, 3, 3, generator=g)}  # signed
    kept = select_mask(scores, 0.5, scope=scope)
    inverted = invert(scores, 0.5, scope=scope)
    total = sum(s.numel() for s in scores.values())
    assert sum(int(m.sum()) for m in inverted.values()) == kept_count(total, 0.5)
    assert not any(bool((kept[n] & inverted[n]).any()) for n in scores)


def test_reinit_changes_weights_not_mask() -> None:
    ctx = make_ctx()
    masks = _half_mask(ctx)
    original = {n: m.clone() for n, m in masks.items()}
    before = clone_state(ctx.model)
    state = reinit_weights(ctx, masks, seed=11)
    assert all(torch.equal(masks[n], original[n]) for n in masks)
    assert all(torch.equal(before[k], v) for k, v in ctx.model.state_dict().items())
    for n, m in masks.items():
        assert state[n].shape == m.shape
        assert not torch.equal(state[n][m], before[n][m]), f"{n} kept weights not re-drawn"
        assert bool((state[n][~m] == 0).all())
    ctx.model.load_state_dict(state)  # a complete state_dict of the same architecture
    with pytest.raises(ValueError):
        reinit_weights(make_ctx(), masks, seed=0)  # the original init seed: a silent no-op otherwise


# --------------------------------------------------------------------------- health


def _health_mlp() -> nn.Sequential:
    torch.manual_seed(7)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def test_health_full_mask_is_fully_effective() -> None:
    for arch in ("resnet18", "vgg16_bn"):
        ctx = make_ctx(arch)
        before = clone_state(ctx.model)
        params = prunable_parameters(ctx.model)
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
        summary = effective_summary(ctx.model, masks, input_size=32)
        assert summary["effective_density"] == 1.0 and summary["nominal_density"] == 1.0
        assert not summary["collapsed"] and summary["empty_layers"] == []
        assert all(d == 1.0 for d in summary["layer_effective_density"].values())
        assert all(torch.equal(before[k], v) for k, v in ctx.model.state_dict().items())


def test_health_empty_layer_collapses() -> None:
    model = _health_mlp()
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}
    masks["3.weight"][:] = False
    summary = effective_summary(model, masks, input_size=2, in_channels=3)
    assert summary["collapsed"] and summary["empty_layers"] == ["3.weight"]
    assert summary["effective_density"] == 0.0 and summary["effective_sparsity"] == 1.0
    assert summary["nominal_density"] > 0.5


def test_health_dead_unit_makes_its_weights_ineffective() -> None:
    model = _health_mlp()
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}
    masks["3.weight"][:, 2] = False  # hidden unit 2 of the first layer has no outgoing weight
    masks["1.weight"][5, :] = False  # hidden unit 5 of the first layer has no incoming weight
    effective, r = effective_masks(model, masks, input_size=2, in_channels=3)
    assert r > 0
    expected_in = masks["1.weight"].clone()
    expected_in[2, :] = False  # incoming weights of a unit that reaches no output
    expected_mid = masks["3.weight"].clone()
    expected_mid[:, 5] = False  # outgoing weights of a unit that no input reaches
    assert torch.equal(effective["1.weight"], expected_in)
    assert torch.equal(effective["3.weight"], expected_mid)
    assert torch.equal(effective["5.weight"], masks["5.weight"])
    summary = effective_summary(model, masks, input_size=2, in_channels=3)
    assert not summary["collapsed"]
    assert summary["effective_kept"] == summary["kept"] - 12 - 6
