"""The prepared-data folder: decode a dataset's raw files (found by ``autos.data.sources``) once into .npy arrays,
and load them back verified.

A prepared folder holds ``train_x.npy``, ``train_y.npy``, ``test_x.npy``, ``test_y.npy`` (uint8 NCHW
images, int64 labels) and ``meta.json`` recording where the data came from, the settings, and the
sha256 of every array so that training never runs on silently changed data.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from autos.data._registry import DATASETS, DatasetSpec, Splits
from autos.data.sources import Source, obtain_source
from autos.errors import ConfigError, DataError
from autos.files import atomic_dir, sha256_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ARRAY_FILES = ("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy")


def resize_nchw(x: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 NCHW images with PIL bilinear (antialiased when shrinking); no-op at the same size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = np.empty((len(x), 3, size, size), dtype=np.uint8)
    for i, img in enumerate(x):
        pil = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)))
        out[i] = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    return out


def _check_settings(**values: int | None) -> None:
    problems = [f"{k} must be a positive integer or None, got {v!r}" for k, v in values.items()
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1)]
    if problems:
        raise ConfigError(problems, source="prepare_dataset")


def prepare_dataset(
    name: str,
    *,
    search_dirs: list[Path],
    out_dir: Path,
    download: bool,
    download_dir: Path | None,
    url: str | None = None,
    md5: str | None = None,
    max_train_per_class: int | None = None,
    max_test_per_class: int | None = None,
    image_size: int | None = None,
    max_classes: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Decode a dataset into ``out_dir`` (replaced atomically) and return its metadata.

    Caps keep the first N images of each class in a fixed order, so ``seed`` does not change the
    selection; it is recorded in the metadata for provenance only. ``max_classes`` keeps the first N classes
    (labels 0..N-1 in the dataset's official order) for quick profiles: fewer classes with more images each
    learn something in a short budget where all classes with a few images each stay at chance.
    """
    spec = DATASETS.get(name)
    _check_settings(max_train_per_class=max_train_per_class, max_test_per_class=max_test_per_class,
                    image_size=image_size, max_classes=max_classes)
    if max_classes is not None and max_classes > spec.num_classes:
        raise ConfigError([f"max_classes {max_classes} exceeds {name}'s {spec.num_classes} classes"],
                          source="prepare_dataset")
    source = obtain_source(name, search_dirs=search_dirs, download=download, download_dir=download_dir,
                           url=url, md5=md5)
    start = time.perf_counter()
    splits = spec.decode(source.path, max_train_per_class, max_test_per_class)
    num_classes = max_classes or spec.num_classes
    if num_classes < spec.num_classes:
        splits = _first_classes(splits, num_classes)
    _check_splits(name, splits, num_classes, source.path)
    size = image_size or spec.image_size
    arrays = {
        "train_x.npy": resize_nchw(splits.train_x, size),
        "train_y.npy": splits.train_y.astype(np.int64),
        "test_x.npy": resize_nchw(splits.test_x, size),
        "test_y.npy": splits.test_y.astype(np.int64),
    }
    settings = {"max_train_per_class": max_train_per_class, "max_test_per_class": max_test_per_class,
                "image_size": image_size, "max_classes": max_classes, "seed": seed}
    meta = _metadata(name, spec, splits, num_classes, size, source, settings)
    _write(out_dir, arrays, meta)
    log.info("%s: wrote %d train / %d test images (%dpx) to %s in %.1fs", name, meta["counts"]["train"],
             meta["counts"]["test"], size, out_dir, time.perf_counter() - start)
    return meta


def _first_classes(splits: Splits, num_classes: int) -> Splits:
    """The images and names of labels 0..num_classes-1 only."""
    train_keep, test_keep = splits.train_y < num_classes, splits.test_y < num_classes
    return Splits(train_x=splits.train_x[train_keep], train_y=splits.train_y[train_keep],
                  test_x=splits.test_x[test_keep], test_y=splits.test_y[test_keep],
                  class_names=splits.class_names[:num_classes])


def _check_splits(name: str, splits: Splits, num_classes: int, source: Path) -> None:
    """Refuse an empty split (nothing to train on or to measure; it would divide by zero later) and warn about
    classes with no training image (the model can never predict them: chance is not 1/num_classes then)."""
    for split, labels in (("training", splits.train_y), ("test", splits.test_y)):
        if len(labels) == 0:
            raise DataError(f"{name}: the {split} split of {source} holds 0 images; allowed: at least one image "
                            "(an empty batch file, or caps that keep nothing?)")
    counts = np.bincount(splits.train_y, minlength=num_classes)
    for label in np.flatnonzero(counts == 0).tolist():
        log.warning("%s: class %d (%s) has no training image in %s; the model cannot learn it", name, label,
                    splits.class_names[label] if label < len(splits.class_names) else "unnamed", source)


def _metadata(name: str, spec: DatasetSpec, splits: Splits, num_classes: int, size: int, source: Source,
              settings: dict[str, Any]) -> dict[str, Any]:
    """``meta.json`` without the arrays' checksums (``_write`` adds them)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": name,
        "num_classes": num_classes,
        "image_size": size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "counts": {"train": len(splits.train_y), "test": len(splits.test_y)},
        "per_class_counts": {
            "train": np.bincount(splits.train_y, minlength=num_classes).tolist(),
            "test": np.bincount(splits.test_y, minlength=num_classes).tolist(),
        },
        "class_names": splits.class_names,
        "source": {
            "path": str(source.path),
            "url": source.url,
            "kind": source.kind,
            "sha256": sha256_file(source.path) if source.path.is_file() else None,
        },
        "settings": settings,
        "files": {},
    }


def _write(out_dir: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """The arrays and ``meta.json`` (with each array's sha256) into ``out_dir``, replaced atomically."""
    with atomic_dir(out_dir) as tmp:
        for file_name, array in arrays.items():
            np.save(tmp / file_name, array, allow_pickle=False)
            meta["files"][file_name] = sha256_file(tmp / file_name)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


@dataclass
class PreparedData:
    """Prepared arrays as tensors (uint8 NCHW images, int64 labels) plus their metadata."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.meta["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.meta["std"])


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        found = meta.get("schema_version") if isinstance(meta, dict) else None
        raise DataError(f"{path}: schema_version {found!r}, expected {SCHEMA_VERSION}; prepare the data again")
    missing = [k for k in ("num_classes", "image_size", "mean", "std", "counts", "files") if k not in meta]
    if missing:
        raise DataError(f"{path}: missing keys {', '.join(missing)}")
    return meta


def _load_array(path: Path, expected_sha256: object) -> np.ndarray:
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise DataError(f"{path}: sha256 {actual} does not match meta.json ({expected_sha256}); "
                        "the file was changed or corrupted, prepare the data again")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc


def load_prepared(directory: Path) -> PreparedData:
    """Load a prepared folder, verifying checksums, dtypes, shapes, counts and label ranges."""
    directory = Path(directory)
    missing = [n for n in ("meta.json", *ARRAY_FILES) if not (directory / n).is_file()]
    if missing:
        raise DataError(f"{directory}: missing {', '.join(missing)}; run the prepare stage first")
    meta = _read_meta(directory)
    size, num_classes = int(meta["image_size"]), int(meta["num_classes"])
    arrays = {n: _load_array(directory / n, meta["files"].get(n)) for n in ARRAY_FILES}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x.npy"], arrays[f"{split}_y.npy"]
        x_path, y_path = directory / f"{split}_x.npy", directory / f"{split}_y.npy"
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, size, size):
            raise DataError(f"{x_path}: expected uint8 (N, 3, {size}, {size}), got {x.dtype} {x.shape}")
        if y.dtype != np.int64 or y.shape != (len(x),):
            raise DataError(f"{y_path}: expected int64 ({len(x)},), got {y.dtype} {y.shape}")
        if len(y) != meta["counts"].get(split):
            raise DataError(f"{y_path}: {len(y)} labels but meta.json counts {meta['counts'].get(split)}")
        if not len(y):  # prepare_dataset refuses this; a folder from elsewhere would divide by zero mid-training
            raise DataError(f"{y_path}: the {split} split holds 0 images; allowed: at least one (prepare the data "
                            "again)")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{y_path}: labels {int(y.min())}..{int(y.max())} outside 0..{num_classes - 1}")
    log.info("loaded %s: %d train / %d test images", directory, len(arrays["train_y.npy"]),
             len(arrays["test_y.npy"]))
    return PreparedData(
        train_x=torch.from_numpy(arrays["train_x.npy"]),
        train_y=torch.from_numpy(arrays["train_y.npy"]),
        test_x=torch.from_numpy(arrays["test_x.npy"]),
        test_y=torch.from_numpy(arrays["test_y.npy"]),
        meta=meta,
    )
