"""The dataset registry and the types a dataset module provides, in a leaf module: dataset modules import it to
register themselves, and nothing here imports them back (no import-order constraints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autos.registry import Registry


@dataclass(frozen=True)
class Splits:
    """Decoded arrays at native size: uint8 NCHW images, int64 labels, and the class names."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str]


# decode(source, max_train_per_class, max_test_per_class) -> Splits; source is a folder or archive.
Decoder = Callable[[Path, int | None, int | None], Splits]


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a dataset, and how to decode its raw files."""

    name: str
    num_classes: int
    image_size: int  # native height = width
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    folder_name: str  # extracted top-level folder of the official archive
    archive_names: tuple[str, ...]  # official archive first (the download name), then accepted variants
    url: str
    md5: str  # of the official archive at ``url``
    decode: Decoder


def first_per_class(labels: np.ndarray, cap: int | None, num_classes: int) -> np.ndarray:
    """Indices of the first ``cap`` items of each class in order of appearance (all if cap is None)."""
    if cap is None:
        return np.arange(len(labels))
    seen = np.zeros(num_classes, dtype=np.int64)
    keep = []
    for i, label in enumerate(labels.tolist()):
        if seen[label] < cap:
            seen[label] += 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


DATASETS: Registry[DatasetSpec] = Registry("dataset")
