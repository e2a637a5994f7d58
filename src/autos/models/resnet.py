"""CIFAR-style ResNet-18: 3x3 stride-1 stem, no max-pool, BasicBlocks [2, 2, 2, 2], global average pool, one FC.

This is the architecture of the AutoS reference code (from pytorch-cifar100), used for CIFAR-10 and, with
64x64 inputs and 200 classes, Tiny ImageNet. ``width`` is the channel count of the first stage (64 in the
paper); stages use width x (1, 2, 4, 8). Initialisation follows the reference: Kaiming-normal (fan_out, relu)
for convolutions, BN weight 1 / bias 0, PyTorch's default for the classifier (AutoS reference:
docs/reference/autos.md §4).
"""

from __future__ import annotations

from torch import Tensor, nn

from autos.models._registry import MODELS


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        layers = []
        in_channels = width
        for stage, blocks in enumerate(num_blocks):
            out_channels = width * 2**stage
            strides = [1 if stage == 0 else 2] + [1] * (blocks - 1)
            stage_blocks = []
            for stride in strides:
                stage_blocks.append(BasicBlock(in_channels, out_channels, stride))
                in_channels = out_channels
            layers.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.avgpool(out).flatten(1))


@MODELS.register("resnet18")
def resnet18(*, num_classes: int, width: int = 64, input_size: int = 32) -> nn.Module:
    del input_size  # global average pooling makes the network input-size agnostic
    return CifarResNet([2, 2, 2, 2], num_classes=num_classes, width=width)
