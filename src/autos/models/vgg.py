"""CIFAR-style VGG-16 with batch norm (the open_lth / Synaptic-Flow "lottery" VGG).

Thirteen 3x3 convolutions with bias, each followed by BN and ReLU, max-pools after stages 1-4, then a global
average pool and a single Linear(8 x width, num_classes). ``width`` is the first stage's channel count (64 in
the paper). Kaiming-normal (fan_in) initialisation for convs and the classifier, as open_lth; this differs from
the ResNet's fan_out, which is exactly the covariate shift AutoS must cope with at transfer
(docs/reference/autos.md §4).
The reference uses AvgPool2d(2) at 32x32; the adaptive pool is identical there and also accepts 64x64.
"""

from __future__ import annotations

from torch import Tensor, nn

from autos.models._registry import MODELS

VGG16_PLAN: list[int | str] = [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8]


class CifarVGG(nn.Module):
    def __init__(self, plan: list[int | str], num_classes: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for entry in plan:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out_channels = width * int(entry)
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))


@MODELS.register("vgg16_bn")
def vgg16_bn(*, num_classes: int, width: int = 64, input_size: int = 32) -> nn.Module:
    del input_size
    return CifarVGG(VGG16_PLAN, num_classes=num_classes, width=width)
