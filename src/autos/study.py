"""Small glue shared by the stages: where outputs live, and building a model for a prepared dataset."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from autos.config import ModelSpec
from autos.data.prepared import PreparedData, load_prepared
from autos.models import build_model

PREPARED = Path("data/prepared")
IRP_DIR = Path("data/irp")
FEATURES_PATH = Path("data/features/source.parquet")
SCORER_DIR = Path("data/scorer")
TRANSFER_DIR = Path("data/transfer")
METRICS_DIR = Path("metrics")
REPORTS_DIR = Path("reports")
CACHE_DIR = Path("data/cache")


def load_dataset(root: Path, name: str) -> PreparedData:
    return load_prepared(root / PREPARED / name)


def model_for(spec: ModelSpec, data: PreparedData, seed: int) -> nn.Module:
    return build_model(spec.model, num_classes=data.num_classes, width=spec.width,
                       input_size=int(data.train_x.shape[-1]), seed=seed)
