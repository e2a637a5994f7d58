"""The scorer networks and their registry: ``SCORERS``, each entry's strict ``Settings`` and ``build_scorer``.

Kept free of fitting, metrics and file I/O, so that looking a scorer up (``autos.study`` validating params)
imports only what the networks need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from autos.features import EXTRA_FEATURES
from autos.models.resnet import CifarResNet
from autos.registry import Registry

BASE_INPUTS = ("w0", "g0")  # always present in a feature table (features.BASE_SCHEMA)


class ScorerNet(nn.Module):
    """Base class of scorer networks: knows its input columns and how to prepare itself from training rows."""

    #: rows per forward pass in ``predict`` when the caller gives none (bounded activation memory)
    predict_batch_size: int = 65536

    def __init__(self, inputs: Sequence[str]) -> None:
        super().__init__()
        self.inputs: tuple[str, ...] = tuple(inputs)

    def prepare(self, x: Tensor) -> None:
        """Called once by ``fit_scorer`` with the training inputs [N, F] before the first step."""
        del x


class ScorerSettings(BaseModel):
    """What every scorer's Settings has: the feature columns it reads, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[str]

    @field_validator("inputs")
    @classmethod
    def _known_columns(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one input column is required")
        if len(set(value)) != len(value):
            raise ValueError(f"input columns are listed twice: {value}")
        allowed = [*BASE_INPUTS, *EXTRA_FEATURES.names()]
        unknown = [c for c in value if c not in allowed]
        if unknown:
            raise ValueError(f"unknown feature column(s) {unknown}; allowed: {', '.join(allowed)}")
        return value


class ScorerSpec:
    """What a ``SCORERS`` entry provides: its typed ``Settings`` and ``build(settings) -> ScorerNet``."""

    Settings: ClassVar[type[ScorerSettings]] = ScorerSettings

    @staticmethod
    def build(settings: Any) -> ScorerNet:
        raise NotImplementedError


SCORERS: Registry[type[ScorerSpec]] = Registry("scorer")


class PaperNet(ScorerNet):
    """docs/reference/autos.md §5.1 "resnet18".

    Linear(F->64)-BN-ReLU-Linear(64->3*32*32)-BN-ReLU, reshaped to a 3x32x32 "image", CIFAR ResNet-18 -> 1 output.
    """

    def __init__(self, inputs: Sequence[str], width: int, stem_hidden: int) -> None:
        super().__init__(inputs)
        self.stem = nn.Sequential(
            nn.Linear(len(self.inputs), stem_hidden),
            nn.BatchNorm1d(stem_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(stem_hidden, 3 * 32 * 32),
            nn.BatchNorm1d(3 * 32 * 32),
            nn.ReLU(inplace=True),
        )
        self.backbone = CifarResNet([2, 2, 2, 2], num_classes=1, width=width)
        # One ResNet forward per weight: the activations of a batch are ~ rows * width * 32 * 32 * 4 bytes per
        # tensor, so keep a chunk near 256 MiB per tensor (the reference scored in chunks of 8192 at width 64 on
        # a GPU, docs/reference/autos.md §5.3).
        self.predict_batch_size = max(256, (1 << 28) // (width * 32 * 32 * 4))

    def forward(self, x: Tensor) -> Tensor:
        image = self.stem(x).view(-1, 3, 32, 32)
        # plain regression output, no activation (docs/reference/autos.md §5.1)
        return self.backbone(image).squeeze(-1)


@SCORERS.register("paper")
class PaperScorer(ScorerSpec):
    """The reference AutoS (docs/reference/autos.md §5.1), faithful: raw (w0, g0), no normalisation (§4)."""

    class Settings(ScorerSettings):
        inputs: list[str] = Field(default_factory=lambda: ["w0", "g0"])
        width: int = Field(default=64, gt=0, description="ResNet-18 first-stage channels; 64 = paper")
        stem_hidden: int = Field(default=64, gt=0, description="hidden units of the MLP stem; 64 = paper")

    @staticmethod
    def build(settings: PaperScorer.Settings) -> ScorerNet:
        return PaperNet(settings.inputs, width=settings.width, stem_hidden=settings.stem_hidden)


class MLPNet(ScorerNet):
    """Standardise (training-row mean/std kept as buffers, so saved in the state_dict) -> MLP -> 1."""

    mean: Tensor  # buffers, registered in __init__ (annotated for the type checker)
    std: Tensor

    def __init__(self, inputs: Sequence[str], hidden: Sequence[int], activation: str) -> None:
        super().__init__(inputs)
        n_in = len(self.inputs)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        act = {"silu": nn.SiLU, "relu": nn.ReLU}[activation]
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def prepare(self, x: Tensor) -> None:
        # float64 statistics: 10M-row float32 sums lose digits. A constant column (e.g. log_fan_in on a
        # one-layer table) gets std 1 instead of 0, so it maps to 0 rather than to inf.
        x64 = x.detach().to(torch.float64)
        mean = x64.mean(0)
        std = x64.std(0) if x.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


@SCORERS.register("mlp")
class MLPScorer(ScorerSpec):
    """Our fast default: a small MLP on scale-free features (not in the paper; a labelled deviation).

    Why these default inputs: the raw w0 of a layer is drawn at the scale of its init (Kaiming fan-out for the
    ResNet source, fan-in for VGG, PyTorch's default for the classifier; docs/reference/autos.md §4 and §6.1), so a
    scorer keyed on raw values allocates per-layer density badly on a target whose layers have other scales (in an
    early probe, an MLP on globally standardised (w0, g0) moved from a ResNet-18 source to VGG-16-bn / CIFAR-10 at
    95% sparsity left one layer at 0.8% density and reached 16% accuracy, random pruning 43%). Per-layer
    standardised values (``w0_layer_z``, ``g0_layer_z``) are invariant to each layer's init scale and to g0's
    dependence on the dataset size (a sum over batches), so they transfer across init schemes and datasets. The
    layer descriptors (``log_fan_in``, ``log_fan_out``) let the scorer learn the per-layer density allocation that
    global IRP produced (wide layers are pruned harder), in a form that exists for any conv/linear layer of any
    architecture.
    """

    class Settings(ScorerSettings):
        inputs: list[str] = Field(default_factory=lambda: ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out"])
        hidden: list[int] = Field(default_factory=lambda: [64, 64], description="hidden layer widths")
        activation: Literal["silu", "relu"] = "silu"

        @field_validator("hidden")
        @classmethod
        def _positive(cls, value: list[int]) -> list[int]:
            if any(h <= 0 for h in value):
                raise ValueError(f"hidden widths must be positive, got {value}")
            return value

    @staticmethod
    def build(settings: MLPScorer.Settings) -> ScorerNet:
        return MLPNet(settings.inputs, settings.hidden, settings.activation)


def build_scorer(name: str, settings: BaseModel | Mapping[str, Any] | None = None
                 ) -> tuple[ScorerNet, ScorerSettings]:
    """Build a registered scorer from validated or raw settings; returns (net, validated settings)."""
    spec = SCORERS.get(name)
    if isinstance(settings, spec.Settings):
        validated: ScorerSettings = settings
    else:
        raw = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})
        validated = spec.Settings.model_validate(raw)
    return spec.build(validated), validated
