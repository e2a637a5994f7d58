"""Tiny ImageNet (200 classes, 64x64 JPEG), read from the extracted folder or straight from the zip.

The labelled ``val/`` split is our test split (the official ``test/`` has no labels). Training
labels are the index of the wnid in ``sorted(wnids.txt)``. Caps select file names first, so
skipped JPEGs are never decoded.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from autos.data._registry import DATASETS, DatasetSpec, Splits
from autos.data.archive import (
    ZIP_ERRORS,
    MiB,
    check_member_name,
    check_zip_names,
    read_limited_file,
    read_zip_member,
)
from autos.errors import DataError

log = logging.getLogger(__name__)

FOLDER = "tiny-imagenet-200"
NUM_CLASSES = 200
SIZE = 64
_TRAIN_RE = re.compile(r"^train/([^/]+)/images/([^/]+\.jpe?g)$", re.IGNORECASE)

# Size limits per member, so a corrupt or hostile archive is refused before it is inflated into memory;
# each is far above the official file: words.txt is 2.7 MB (82115 WordNet synsets), wnids.txt 2 KB,
# val_annotations.txt 0.35 MB, and a 64x64 JPEG a few KB (12 KB even as raw RGB; the subset's largest is 3.2 KB).
MAX_TEXT_BYTES = {"words.txt": 16 * MiB, "wnids.txt": 1 * MiB, "val/val_annotations.txt": 8 * MiB}
MAX_IMAGE_BYTES = 1 * MiB


def member_limit(name: str) -> int:
    """Byte limit for a member (relative to the dataset root): the text files' own, else an image's."""
    return MAX_TEXT_BYTES.get(name, MAX_IMAGE_BYTES)


def natural_key(name: str) -> list[object]:
    """Sort key so that ``x_2`` comes before ``x_10``: the "first N images" are images 0..N-1."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@contextmanager
def _open_source(source: Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """Yield (member names relative to the dataset root, reader) for a folder or a zip."""
    if source.is_dir():
        names = [
            Path(dirpath, f).relative_to(source).as_posix() for dirpath, _, files in os.walk(source) for f in files
        ]
        yield names, lambda n: read_limited_file(source / n, member_limit(n))
        return
    try:
        zf = zipfile.ZipFile(source)
    except ZIP_ERRORS as exc:
        raise DataError(f"cannot read {source}: {exc} (truncated or corrupt archive?)") from exc
    with zf:
        all_names = [check_member_name(n, source) for n in zf.namelist()]
        check_zip_names(zf, source)
        roots = sorted((n[: -len("wnids.txt")] for n in all_names if PurePosixPath(n).name == "wnids.txt"), key=len)
        if not roots:
            raise DataError(f"{source}: no wnids.txt inside (expected the {FOLDER}/ layout)")
        root = roots[0]
        names = [n[len(root) :] for n in all_names if n.startswith(root) and not n.endswith("/")]
        # Each member is read in full, so zipfile verifies its CRC-32: a flipped byte is an error, not a wrong image.
        yield names, lambda n: read_zip_member(zf, root + n, source, member_limit(n))


def _text(read: Callable[[str], bytes], name: str, source: Path) -> list[str]:
    try:
        return read(name).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {name} in {source}: {exc}") from exc


def _decode_image(data: bytes, name: str, source: Path) -> np.ndarray:
    """One JPEG as uint8 (64, 64, 3) RGB; the size is checked before any pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (SIZE, SIZE):
                raise DataError(f"image {name} in {source} is {img.size[0]}x{img.size[1]}, expected {SIZE}x{SIZE}")
            return np.asarray(img.convert("RGB"))
    except UnidentifiedImageError:
        # Pillow's own message names the in-memory buffer ("<_io.BytesIO object at 0x...>"), not the member.
        raise DataError(f"cannot decode image {name} in {source}: not a JPEG or other image Pillow reads") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {name} in {source}: {exc}") from exc


def _decode_images(read: Callable[[str], bytes], names: list[str], source: Path) -> np.ndarray:
    """Decode JPEGs to a uint8 (N, 3, 64, 64) array; grayscale images are converted to RGB."""
    out = np.empty((len(names), 3, SIZE, SIZE), dtype=np.uint8)
    for i, name in enumerate(names):
        out[i] = _decode_image(read(name), name, source).transpose(2, 0, 1)
    return out


def _cap(groups: dict[int, list[str]], cap: int | None) -> list[tuple[int, str]]:
    """First ``cap`` names (natural order) of each class, as (label, name) in class order."""
    return [(label, n) for label in sorted(groups) for n in sorted(groups[label], key=natural_key)[:cap]]


def decode_tiny_imagenet(source: Path, max_train_per_class: int | None, max_test_per_class: int | None) -> Splits:
    """Decode train (wnid folders) and val (annotated) images, honouring the per-class caps."""
    with _open_source(source) as (names, read):
        present = set(names)
        for required in ("wnids.txt", "val/val_annotations.txt"):
            if required not in present:
                raise DataError(f"{source}: missing {required} (expected the {FOLDER}/ layout)")
        wnids = sorted({w.strip() for w in _text(read, "wnids.txt", source) if w.strip()})
        if len(wnids) != NUM_CLASSES:
            raise DataError(f"{source}: wnids.txt lists {len(wnids)} distinct classes, expected {NUM_CLASSES}")
        label_of = {w: i for i, w in enumerate(wnids)}
        words: dict[str, str] = {}
        if "words.txt" in present:
            for line in _text(read, "words.txt", source):
                wnid, _, text = line.partition("\t")
                words[wnid] = text.split(",")[0].strip()
        class_names = [words.get(w) or w for w in wnids]

        train: dict[int, list[str]] = {i: [] for i in range(NUM_CLASSES)}
        for name in names:
            match = _TRAIN_RE.match(name)
            if match:
                if match.group(1) not in label_of:
                    raise DataError(f"{source}: train folder {match.group(1)} is not in wnids.txt")
                train[label_of[match.group(1)]].append(name)
        test: dict[int, list[str]] = {i: [] for i in range(NUM_CLASSES)}
        for lineno, line in enumerate(_text(read, "val/val_annotations.txt", source), 1):
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in label_of or f"val/images/{fields[0]}" not in present:
                raise DataError(f"{source}: val/val_annotations.txt line {lineno} is invalid: {line!r}")
            test[label_of[fields[1]]].append(f"val/images/{fields[0]}")

        train_sel = _cap(train, max_train_per_class)
        test_sel = sorted(_cap(test, max_test_per_class), key=lambda item: natural_key(item[1]))
        log.info("tiny_imagenet: decoding %d train and %d test images from %s", len(train_sel), len(test_sel), source)
        train_x = _decode_images(read, [n for _, n in train_sel], source)
        test_x = _decode_images(read, [n for _, n in test_sel], source)
    return Splits(
        train_x=train_x,
        train_y=np.array([label for label, _ in train_sel], dtype=np.int64),
        test_x=test_x,
        test_y=np.array([label for label, _ in test_sel], dtype=np.int64),
        class_names=class_names,
    )


TINY_IMAGENET = DATASETS.register("tiny_imagenet")(
    DatasetSpec(
        name="tiny_imagenet",
        num_classes=NUM_CLASSES,
        image_size=SIZE,
        mean=(0.480, 0.448, 0.397),
        std=(0.276, 0.269, 0.282),
        folder_name=FOLDER,
        archive_names=("tiny-imagenet-200.zip", "tiny-imagenet-200-subset.zip"),
        url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        md5="90528d7ca1a48142e341f4ef8d21d0de",
        decode=decode_tiny_imagenet,
    )
)
