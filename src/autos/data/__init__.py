"""Dataset layer: find the raw data, decode it once into .npy arrays, load those back verified.

Add a dataset: write a module with a decode function, register a ``DatasetSpec`` with
``DATASETS.register("name")`` (from ``autos.data._registry``) and import the module below.
"""

from __future__ import annotations

from autos.data import cifar10, tiny_imagenet  # noqa: F401  (registration side effects)
from autos.data._registry import DATASETS, DatasetSpec, Splits, first_per_class
from autos.data.prepared import PreparedData, load_prepared, prepare_dataset
from autos.data.sources import DATA_DIR_ENV, locate_source, obtain_source

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetSpec",
    "PreparedData",
    "Splits",
    "first_per_class",
    "load_prepared",
    "locate_source",
    "obtain_source",
    "prepare_dataset",
]
