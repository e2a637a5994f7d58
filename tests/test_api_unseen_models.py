"""AutoS through the public API on models it never saw leaves no layer empty with its defaults (the
README's `scorer_dir`-only call once emptied a custom CNN, torchvision's ResNet-18 and MobileNetV3 at 95%). The scorer
here is untrained, so its global ranking is arbitrary: what keeps every layer and every input -> output path is the
API's default (`on_collapse="repair"`: the method again with a per-layer floor of ERK's counts), which is what this
checks on four torchvision models and a CNN with depthwise convs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import autos
from autos.api.collapse import LayerCollapseWarning
from autos.config import FeaturesConfig
from autos.masking import kept_count
from autos.scorer import build_scorer, save_scorer

pytestmark = pytest.mark.slow


def depthwise_cnn() -> nn.Module:
    """MobileNet-like: depthwise 3x3 (one input channel per group) then pointwise 1x1, twice."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.Conv2d(16, 32, 1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(32, 64, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "vgg11_bn": lambda: torchvision.models.vgg11_bn(num_classes=10),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
    "depthwise_cnn": depthwise_cnn,
}


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    out = tmp_path_factory.mktemp("scorer") / "0"
    save_scorer(out, net.eval(), "mlp", settings, {"source": "untrained"}, features=FeaturesConfig())
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_autos_with_its_defaults_empties_no_layer_of_an_unseen_model(name: str, scorer_dir: Path) -> None:
    torch.manual_seed(0)
    model = MODELS[name]()
    images, labels = torch.randn(20, 3, 32, 32), torch.arange(20) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerCollapseWarning)  # a collapse left in place would fail here
        masks = autos.prune(model, "autos", 0.95, data=(images, labels), settings={"scorer_dir": str(scorer_dir)})
    assert not masks.collapsed and masks.collapsed_layers == []
    assert all(int(m.sum()) > 0 for m in masks.values()), [n for n, m in masks.items() if not m.any()]
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, 0.05)  # the budget, repaired or not
