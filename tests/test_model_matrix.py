"""Methods on models that were not written for them (the fast slice of bench/model_matrix.py): GraSP and ProsPr on
torchvision's MobileNetV3 (a Hardsigmoid torch cannot differentiate twice) and on a small ViT (fused attention),
the swapped activations' forward, the refusal of an op that cannot be swapped, scores that do not depend on the
global RNG (dropout off while scoring), and the path analysis on LayerNorm, saturating activations and class
tokens."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from autos.api.adapters import as_image_data
from autos.config import TrainRecipe
from autos.errors import UnsupportedModelError
from autos.masking import kept_count, prunable_parameters
from autos.masking.health import effective_summary
from autos.model_compat import (
    DifferentiableHardsigmoid,
    _twice_differentiable,
    double_backward_copy,
    scoring_mode,
)
from autos.pruners.base import DataSettings, PruneContext
from autos.pruners.grasp import GraSP, GraSPSettings
from autos.pruners.prospr import ProsPr, ProsPrSettings
from autos.pruners.snip import SNIP
from autos.pruners.synflow import SynFlow, SynFlowSettings

DENSITY = 0.05


def _images(n: int = 20, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 10


def _ctx(model: nn.Module, n: int = 20) -> PruneContext:
    return PruneContext(model=model, data=as_image_data(_images(n)), recipe=TrainRecipe(), device=torch.device("cpu"),
                        seed=0, num_classes=10)


def _mobilenet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v3_small(num_classes=10)


def _tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
                             num_classes=10)


METHODS = {
    "grasp": lambda: GraSP(GraSPSettings(samples_per_class=2)),
    "prospr": lambda: ProsPr(ProsPrSettings(num_steps=1, batch_size=16)),
}


@pytest.mark.parametrize("model_fn", [_mobilenet, _tiny_vit], ids=["mobilenet_v3_small", "tiny_vit"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_double_backward_methods_run_on_modern_models(method: str, model_fn) -> None:  # noqa: ANN001
    model = model_fn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = METHODS[method]().prune(_ctx(model), DENSITY)
    names = list(prunable_parameters(model))
    assert list(result.masks) == names
    total = sum(p.numel() for p in prunable_parameters(model).values())
    assert sum(int(m.sum()) for m in result.masks.values()) == kept_count(total, DENSITY)
    assert result.scores is not None and all(bool(torch.isfinite(s).all()) for s in result.scores.values())
    assert any(bool(s.abs().sum() > 0) for s in result.scores.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    assert any(isinstance(m, nn.Hardsigmoid) for m in model.modules()) == (model_fn is _mobilenet)


def test_swapped_copy_computes_what_the_model_computes() -> None:
    model = _mobilenet()
    copy = double_backward_copy(model)
    assert not any(isinstance(m, nn.Hardsigmoid) for m in copy.modules())
    assert sum(isinstance(m, DifferentiableHardsigmoid) for m in copy.modules()) == sum(
        isinstance(m, nn.Hardsigmoid) for m in model.modules()) > 0
    assert [n for n, _ in copy.named_parameters()] == [n for n, _ in model.named_parameters()]
    x, _ = _images(4)
    with torch.no_grad():
        for train in (False, True):  # eval, and the scoring mode (batch statistics, dropout off)
            assert torch.equal(scoring_mode(copy, train)(x), scoring_mode(model, train)(x))
    values = torch.linspace(-8, 8, 100_001)
    assert torch.equal(DifferentiableHardsigmoid()(values), F.hardsigmoid(values))  # bit-identical on CPU


@pytest.mark.parametrize("module", [nn.Hardswish(), nn.ReLU6(), nn.GELU(), nn.SiLU(), nn.LayerNorm(8),
                                    DifferentiableHardsigmoid()], ids=lambda m: type(m).__name__)
def test_the_kept_modules_are_twice_differentiable(module: nn.Module) -> None:
    """Why only Hardsigmoid is swapped (torch 2.14): the others' backward is differentiable."""
    assert _twice_differentiable(module, (torch.randn(4, 8) * 4,), {})
    assert not _twice_differentiable(nn.Hardsigmoid(), (torch.randn(4, 8) * 4,), {})


class FunctionalGate(nn.Module):
    """A user's gate calling the functional Hardsigmoid: no module to swap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(x)


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = FunctionalGate()
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gate(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_an_op_that_cannot_be_swapped_is_refused_naming_the_module(method: str) -> None:
    torch.manual_seed(0)
    with pytest.raises(UnsupportedModelError) as caught:
        METHODS[method]().prune(_ctx(GatedNet()), 0.5)
    message = str(caught.value)
    assert f"{method} needs gradients of gradients" in message
    assert "module 'gate' (FunctionalGate)" in message and "aten::hardsigmoid_backward" in message
    assert "snip" in message and "random_erk" in message


class DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(F.relu(self.bn(self.conv(x))).mean((2, 3))))


@pytest.mark.parametrize("method", ["snip", *sorted(METHODS)])
def test_scores_do_not_depend_on_the_global_rng(method: str) -> None:
    """Dropout is off while scoring (BN keeps its batch statistics): the same call gives the same scores."""
    torch.manual_seed(0)
    model = DropoutNet()
    make = METHODS.get(method, lambda: SNIP(DataSettings(batch_size=16)))
    scores = []
    for rng in (1, 2):
        torch.manual_seed(rng)
        scores.append(make().score(_ctx(model)))
    assert all(torch.equal(scores[0][n], scores[1][n]) for n in scores[0])
    scoring_mode(model, True)
    assert model.training and model.bn.training and not model.drop.training


# --------------------------------------------------------------------------- the path analysis on modern blocks


class ChannelNorm(nn.LayerNorm):
    """torchvision's LayerNorm2d: a LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Scale(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ModernBlocks(nn.Module):
    """A LayerNorm over channels (ConvNeXt) and a squeeze-excitation gate whose Hardsigmoid input exceeds 3."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.norm = ChannelNorm(8)
        self.fc = nn.Conv2d(8, 8, 1)
        self.gate = nn.Sequential(Scale(10.0), nn.Hardsigmoid())
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm(self.stem(x)))
        x = x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))
        return self.head(x.mean((2, 3)))


def test_path_analysis_sees_through_layer_norm_and_a_saturated_gate() -> None:
    torch.manual_seed(0)
    model = ModernBlocks()
    dense = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}
    summary = effective_summary(model, dense, input_size=8)
    assert summary["layer_effective_density"] == {n: 1.0 for n in dense}  # no layer is cut by the analysis itself
    assert not summary["collapsed"] and math.isclose(summary["effective_density"], 1.0)


def test_path_analysis_counts_no_path_through_a_class_token() -> None:
    """With the patch embedding emptied, nothing reaches the output from the image: the class token and the
    positional embedding (additive constants, like biases) must not keep the encoder's layers alive."""
    model = _tiny_vit()
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}
    assert math.isclose(effective_summary(model, masks, input_size=32)["effective_density"], 1.0)
    masks["conv_proj.weight"] = torch.zeros_like(masks["conv_proj.weight"])
    summary = effective_summary(model, masks, input_size=32)
    assert summary["collapsed"] and set(summary["layer_effective_density"].values()) == {0.0}


def test_synflow_says_which_layers_carry_no_flow(caplog: pytest.LogCaptureFixture) -> None:
    """MobileNetV3's squeeze-excitation gates saturate in the linearised network: their 18 layers score exactly 0
    and empty; SynFlow says so (a warning a user sees without configuring logging) instead of emptying silently."""
    model = _mobilenet()
    se = [n for n in prunable_parameters(model) if ".fc" in n]
    with caplog.at_level(logging.WARNING, logger="autos.pruners.synflow"):
        result = SynFlow(SynFlowSettings(iterations=1)).prune(_ctx(model, 2), DENSITY)
    assert len(se) == 18 and all(not bool(result.masks[n].any()) for n in se)
    assert result.scores is not None and all(not bool(result.scores[n].any()) for n in se)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "18 prunable layer(s) carry no flow" in warned[0] and se[0] in warned[0]


def test_pruning_from_scratch_refuses_a_model_without_blocks_it_knows_naming_alternatives() -> None:
    from autos.pruners.pruning_from_scratch import gate_groups

    with pytest.raises(UnsupportedModelError, match=r"MobileNetV3 has neither.*snip, synflow or random_erk"):
        gate_groups(torchvision.models.mobilenet_v3_small(num_classes=10))
