"""Corrupt data is detected: flipped bytes, cut-off trailers and oversized members are DataErrors naming the
archive (and the member when known), never silently wrong images or hundreds of MB inflated for nothing."""

from __future__ import annotations

import io
import logging
import pickle
import re
import shutil
import struct
import tarfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data import (
    CIFAR_SUBSET,
    TINY_SUBSET,
    batch_bytes,
    make_cifar_archive,
    needs_cifar,
    needs_tiny,
    prepare_cifar,
)

from autos.data import Splits, cifar10
from autos.data.archive import MiB, read_limited, read_zip_member
from autos.data.cifar10 import decode_cifar10
from autos.data.tiny_imagenet import decode_tiny_imagenet
from autos.errors import DataError

FOLDER = "cifar-10-batches-py"
GZIP_TRAILER = 8  # CRC-32 and ISIZE, little endian


# ---------------------------------------------------------------- helpers


def flip(path: Path, pos: int, out: Path, bit: int = 0x10) -> Path:
    """A copy of ``path`` with one bit flipped at byte ``pos``."""
    raw = bytearray(path.read_bytes())
    raw[pos] ^= bit
    out.write_bytes(bytes(raw))
    return out


def same_splits(a: Splits, b: Splits) -> bool:
    arrays = ("train_x", "train_y", "test_x", "test_y")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays) and a.class_names == b.class_names


def decompressed_at(gz: bytes, pos: int) -> int:
    """How many bytes the first ``pos`` bytes of a gzip stream inflate to: where a flip at ``pos`` lands."""
    return len(zlib.decompressobj(wbits=31).decompress(gz[:pos]))


def compressed_pos_for(gz: bytes, target: int) -> int:
    """The first compressed position whose prefix inflates past ``target``: a flip there damages that byte."""
    lo, hi = 0, len(gz) - GZIP_TRAILER
    while lo < hi:
        mid = (lo + hi) // 2
        if decompressed_at(gz, mid) > target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def tar_member(archive: Path, name: str) -> tarfile.TarInfo:
    with tarfile.open(archive) as tf:  # trusted: the intact archive the test just wrote
        return tf.getmember(name)


def tar_entry(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT)


def gzip_tar_with_zeros(files: dict[str, bytes], big_name: str, big_size: int) -> bytes:
    """A .tar.gz of ``files`` then ``big_name`` holding ``big_size`` zero bytes, built without inflating them.

    Deflate blocks ending in a full flush do not refer back, so one compressed MiB of zeros is repeated: a
    300 MiB member costs ~0.3 MB of archive and milliseconds, like a real decompression bomb.
    """
    head = b"".join(tar_entry(n, len(d)) + d + bytes(-len(d) % 512) for n, d in files.items())
    head += tar_entry(big_name, big_size)
    tail = bytes(-big_size % 512) + bytes(1024)  # padding, end-of-archive blocks
    one_mib = bytes(MiB)
    runs, rest = divmod(big_size, MiB)

    def deflate(data: bytes, final: bool) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)

    crc = zlib.crc32(head)
    for _ in range(runs):
        crc = zlib.crc32(one_mib, crc)
    crc = zlib.crc32(bytes(rest) + tail, crc)
    size = len(head) + big_size + len(tail)
    body = deflate(head, False) + deflate(one_mib, False) * runs + deflate(bytes(rest) + tail, True)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size & 0xFFFFFFFF)


@pytest.fixture()
def cifar_gz(tmp_path: Path) -> Path:
    """A synthetic CIFAR-10 archive in the official layout; its last member is unused by the loader."""
    readme = np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    return make_cifar_archive(tmp_path / "src" / "cifar-10-python.tar.gz", extra={f"{FOLDER}/readme.html": readme})


def decode(path: Path) -> Splits:
    return decode_cifar10(path, None, None)


# ---------------------------------------------------------------- CIFAR-10 tar.gz: flipped bytes and trailers


def test_flip_in_used_batch_is_refused(cifar_gz: Path, tmp_path: Path) -> None:
    member = tar_member(cifar_gz, f"{FOLDER}/data_batch_3")
    gz = cifar_gz.read_bytes()
    pos = compressed_pos_for(gz, member.offset_data + member.size // 2)
    assert member.offset_data < decompressed_at(gz, pos + 1) <= member.offset_data + member.size  # lands in pixels
    bad = flip(cifar_gz, pos, tmp_path / "bad.tar.gz")
    # Without the CRC check this flip only changes pixels: tarfile's random access mode loads it happily.
    with tarfile.open(bad) as damaged, tarfile.open(cifar_gz) as intact:
        assert damaged.extractfile(member.name).read() != intact.extractfile(member.name).read()
    decode(cifar_gz)  # the intact archive loads
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        decode(bad)
    assert str(bad) in str(err.value) and "CRC" in str(err.value)


def test_flip_in_unused_member_is_refused_too(cifar_gz: Path, tmp_path: Path) -> None:
    """The whole stream is verified, not only the members the loader keeps."""
    member = tar_member(cifar_gz, f"{FOLDER}/readme.html")
    gz = cifar_gz.read_bytes()
    pos = compressed_pos_for(gz, member.offset_data + member.size // 2)
    assert member.offset_data < decompressed_at(gz, pos + 1) <= member.offset_data + member.size
    with pytest.raises(DataError, match=r"CRC check failed.*truncated or corrupt"):
        decode(flip(cifar_gz, pos, tmp_path / "bad.tar.gz"))


@pytest.mark.parametrize(("case", "expected"), [
    ("crc", "CRC check failed"), ("isize", "Incorrect length"), ("cut-4", "ended before"), ("cut-1", "ended before"),
    ("cut-trailer", "ended before"), ("junk-after", "Not a gzipped file"),
])
def test_damaged_gzip_trailer_is_refused(cifar_gz: Path, tmp_path: Path, case: str, expected: str) -> None:
    raw = bytearray(cifar_gz.read_bytes())
    if case in ("crc", "isize"):
        raw[-GZIP_TRAILER if case == "crc" else -4] ^= 0x01
    elif case.startswith("cut"):
        raw = raw[: -{"cut-4": 4, "cut-1": 1, "cut-trailer": GZIP_TRAILER}[case]]
    else:
        raw += b"junk"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"{expected}.*truncated or corrupt") as err:
        decode(bad)
    assert str(bad) in str(err.value)


def test_no_single_bit_flip_gives_wrong_images(tmp_path: Path) -> None:
    """Flips all over a small archive: each is refused or (gzip header name, deflate padding) changes nothing."""
    archive = make_cifar_archive(tmp_path / "small.tar.gz", n=2)
    good, size = decode(archive), archive.stat().st_size
    positions = sorted({*range(0, 32), *range(32, size, 97), *range(size - 24, size)})
    outcomes = {"refused": 0, "identical": 0}
    for pos in positions:
        try:
            splits = decode(flip(archive, pos, tmp_path / "bad.tar.gz", bit=0x04))
        except DataError:
            outcomes["refused"] += 1
            continue
        assert same_splits(splits, good), f"flip at byte {pos} of {size} gave different data"
        outcomes["identical"] += 1
    assert outcomes["refused"] > 0.9 * len(positions)


def test_damaged_header_in_plain_tar_is_refused(tmp_path: Path) -> None:
    """An uncompressed tar has no checksum over the data, but a damaged header must not silently end the archive."""
    archive = make_cifar_archive(tmp_path / "a.tar.gz")
    plain = tmp_path / "cifar-10-python.tar"
    with tarfile.open(archive) as src, tarfile.open(plain, "w") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m))
    header = tar_member(plain, f"{FOLDER}/test_batch").offset
    decode(plain)
    with pytest.raises(DataError, match="after the end of the tar archive"):
        decode(flip(plain, header + 3, tmp_path / "bad.tar"))  # a letter of the name: the header checksum breaks


@pytest.mark.parametrize("codec", ["bz2", "xz"])
def test_other_tar_codecs_are_verified_too(tmp_path: Path, codec: str) -> None:
    """tarfile's ``r:*`` read .tar.bz2 and .tar.xz too; they keep working, and their checksums are checked."""
    archive = make_cifar_archive(tmp_path / "a.tar.gz")
    other = tmp_path / f"cifar-10-python.tar.{codec}"
    with tarfile.open(archive) as src, tarfile.open(other, f"w:{codec}") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m))
    assert same_splits(decode(other), decode(archive))
    size = other.stat().st_size
    with pytest.raises(DataError, match="truncated or corrupt"):
        decode(flip(other, size // 2, tmp_path / f"bad.tar.{codec}"))
    (tmp_path / "cut").write_bytes(other.read_bytes()[:-4])
    with pytest.raises(DataError, match="truncated or corrupt"):
        decode(tmp_path / "cut")


@needs_cifar
@pytest.mark.parametrize("case", ["middle", "trailer-crc", "cut-4"])
def test_real_cifar_subset_corruption_is_refused(tmp_path: Path, case: str) -> None:
    archive = shutil.copy(CIFAR_SUBSET, tmp_path / CIFAR_SUBSET.name)
    raw = bytearray(Path(archive).read_bytes())
    if case == "middle":
        raw[len(raw) // 2] ^= 0x01  # before the fix: accepted, and one training image came out wrong
    elif case == "trailer-crc":
        raw[-GZIP_TRAILER + 1] ^= 0x01
    else:
        raw = raw[:-4]
    Path(archive).write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        decode(Path(archive))
    assert str(archive) in str(err.value)


# ---------------------------------------------------------------- CIFAR-10: size limits


def test_oversized_batch_is_refused_from_its_header(tmp_path: Path) -> None:
    files = {f"{FOLDER}/batches.meta": pickle.dumps({"label_names": ["x"] * 10}, protocol=2)}
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip_tar_with_zeros(files, f"{FOLDER}/data_batch_1", 300 * MiB))
    assert archive.stat().st_size < 1 * MiB
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        decode(archive)
    assert time.perf_counter() - start < 2.0  # refused from the header, not after inflating 300 MiB
    msg = str(err.value)
    assert f"{FOLDER}/data_batch_1 in {archive}" in msg
    assert "314572800 bytes (300.0 MiB)" in msg and f"{cifar10.MAX_BATCH_BYTES} bytes (128.0 MiB)" in msg


def test_oversized_unused_member_is_refused(tmp_path: Path) -> None:
    """Unused members are still inflated (to check the CRC), so they are bounded too."""
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip_tar_with_zeros({}, f"{FOLDER}/readme.html", 300 * MiB))
    with pytest.raises(DataError, match=f"{FOLDER}/readme.html in .*300.0 MiB"):
        decode(archive)


def test_oversized_meta_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip_tar_with_zeros({}, f"{FOLDER}/batches.meta", 2 * MiB))
    with pytest.raises(DataError, match=rf"{FOLDER}/batches.meta in .*2097152 bytes.*limit of 1048576 bytes"):
        decode(archive)


def test_archive_inflating_past_the_total_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar10, "MAX_ARCHIVE_BYTES", 8 * MiB)
    files = {f"{FOLDER}/data_batch_{i}": batch_bytes(300, i) for i in range(1, 6)}  # ~4.6 MiB, fine alone
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(gzip_tar_with_zeros(files, f"{FOLDER}/readme.html", 6 * MiB))
    with pytest.raises(DataError, match=r"big\.tar\.gz: decompresses to more than 8388608 bytes"):
        decode(archive)


def test_read_limited_stops_at_the_limit() -> None:
    """A lying size header cannot make us read more: at most limit + 1 bytes come out of the stream."""
    stream = io.BytesIO(bytes(10 * MiB))
    with pytest.raises(DataError, match=r"member x: more than 1024 bytes"):
        read_limited(stream, 1024, "member x")
    assert stream.tell() == 1025
    assert read_limited(io.BytesIO(b"abc"), 3, "y") == b"abc"


def test_oversized_file_in_extracted_folder_is_refused(tmp_path: Path) -> None:
    with tarfile.open(make_cifar_archive(tmp_path / "a.tar.gz")) as tf:  # our own archive: plain extraction
        tf.extractall(tmp_path / "x", filter="data")
    folder = tmp_path / "x" / FOLDER
    (folder / "batches.meta").write_bytes(bytes(2 * MiB))
    with pytest.raises(DataError, match=rf"{folder / 'batches.meta'}: declares 2097152 bytes"):
        decode(folder)


# ---------------------------------------------------------------- Tiny ImageNet zip


TINY = "tiny-imagenet-200"
WNIDS = [f"n{i:08d}" for i in range(200)]


def jpeg(color: tuple[int, int, int], size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG")
    return buf.getvalue()


def make_tiny_archive(path: Path, replace: dict[str, bytes] | None = None) -> Path:
    """A small zip in the official Tiny ImageNet layout: one train and one val image per class."""
    files = {
        "wnids.txt": "".join(f"{w}\n" for w in WNIDS).encode(),
        "words.txt": "".join(f"{w}\tthing {i}, other\n" for i, w in enumerate(WNIDS)).encode(),
        "val/val_annotations.txt": "".join(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n" for i, w in enumerate(WNIDS)).encode(),
    }
    for i, w in enumerate(WNIDS):
        files[f"train/{w}/images/{w}_0.JPEG"] = jpeg((i, 255 - i, 7))
        files[f"val/images/val_{i}.JPEG"] = jpeg((7, i, 255 - i))
    files.update(replace or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{TINY}/{name}", data)
    return path


def decode_tiny(path: Path) -> Splits:
    return decode_tiny_imagenet(path, 1, 1)


def member_data_pos(archive: Path, name: str) -> tuple[int, int]:
    """(first byte, length) of a zip member's compressed data, past its local header."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    with open(archive, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def central_entry(archive: Path, member: str) -> int:
    """Offset of a member's central directory record (CRC-32 at +16, sizes at +20 and +24, then the name at +46)."""
    raw = archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        entry = raw.index(f"{TINY}/{member}".encode(), zf.start_dir) - 46
    assert raw[entry:entry + 4] == b"PK\x01\x02"
    return entry


@pytest.fixture()
def tiny_zip(tmp_path: Path) -> Path:
    return make_tiny_archive(tmp_path / "tiny-imagenet-200.zip")


@pytest.mark.parametrize("member", ["wnids.txt", "words.txt", "val/val_annotations.txt",
                                    f"train/{WNIDS[5]}/images/{WNIDS[5]}_0.JPEG", "val/images/val_9.JPEG"])
def test_tiny_flip_in_used_member_names_it(tiny_zip: Path, tmp_path: Path, member: str) -> None:
    decode_tiny(tiny_zip)  # the intact archive loads
    start, length = member_data_pos(tiny_zip, f"{TINY}/{member}")
    bad = flip(tiny_zip, start + length // 2, tmp_path / "bad.zip")
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        decode_tiny(bad)
    assert f"{TINY}/{member} in {bad}" in str(err.value)


@pytest.mark.parametrize("case", ["cut-4", "cut-end-record", "central-crc"])
def test_tiny_damaged_directory_is_refused(tiny_zip: Path, tmp_path: Path, case: str) -> None:
    raw = bytearray(tiny_zip.read_bytes())
    if case == "cut-4":
        raw = raw[:-4]
    elif case == "cut-end-record":
        raw = raw[:-22]
    else:  # the CRC-32 recorded in the central directory for wnids.txt
        raw[central_entry(tiny_zip, "wnids.txt") + 16] ^= 0x01
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        decode_tiny(bad)
    assert str(bad) in str(err.value)


def test_tiny_no_single_bit_flip_gives_wrong_images(tmp_path: Path) -> None:
    archive = make_tiny_archive(tmp_path / "small.zip")
    good, size = decode_tiny(archive), archive.stat().st_size
    positions = [*range(7, size, size // 40), *range(size - 22, size, 3)]
    refused = 0
    for pos in positions:
        try:
            splits = decode_tiny(flip(archive, pos, tmp_path / "bad.zip", bit=0x02))
        except DataError:
            refused += 1
            continue
        assert same_splits(splits, good), f"flip at byte {pos} of {size} gave different data"
    assert refused > len(positions) // 2


def test_tiny_oversized_words_is_refused(tmp_path: Path) -> None:
    words = b"n00000001\tzeros\n" * (40 * MiB // 16)  # 40 MiB that deflate to ~40 KB
    archive = make_tiny_archive(tmp_path / "t.zip", replace={"words.txt": words})
    assert archive.stat().st_size < 2 * MiB
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"{TINY}/words\.txt in .*declares 41943040 bytes.*16777216 bytes"):
        decode_tiny(archive)
    assert time.perf_counter() - start < 2.0


def test_tiny_lying_zip_size_is_refused(tmp_path: Path) -> None:
    """A central directory that understates a member's size: reading stops there and the CRC check fails."""
    archive = make_tiny_archive(tmp_path / "t.zip")
    raw = bytearray(archive.read_bytes())
    entry = central_entry(archive, "words.txt")
    (declared,) = struct.unpack("<I", raw[entry + 24:entry + 28])
    raw[entry + 24:entry + 28] = struct.pack("<I", declared // 2)
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{TINY}/words\.txt in .*(CRC|crc)"):
        decode_tiny(archive)


def test_read_zip_member_checks_declared_and_real_size(tmp_path: Path) -> None:
    archive = tmp_path / "z.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/big.txt", bytes(3 * MiB))
    with zipfile.ZipFile(archive) as zf:
        with pytest.raises(DataError, match=r"a/big\.txt in .*z\.zip: declares 3145728 bytes \(3\.0 MiB\), above "
                                            r"the limit of 1048576 bytes \(1\.0 MiB\)"):
            read_zip_member(zf, "a/big.txt", archive, 1 * MiB)
        assert len(read_zip_member(zf, "a/big.txt", archive, 3 * MiB)) == 3 * MiB


@pytest.mark.parametrize(("data", "expected"), [
    (b"not an image at all", "not a JPEG or other image"),
    (jpeg((1, 2, 3), size=128), "is 128x128, expected 64x64"),
    (jpeg((1, 2, 3))[:200], "(?i)truncated"),
])
def test_tiny_bad_image_names_the_member(tmp_path: Path, data: bytes, expected: str) -> None:
    name = f"train/{WNIDS[3]}/images/{WNIDS[3]}_0.JPEG"
    archive = make_tiny_archive(tmp_path / "t.zip", replace={name: data})
    with pytest.raises(DataError, match=expected) as err:
        decode_tiny(archive)
    assert name in str(err.value) and str(archive) in str(err.value) and "BytesIO" not in str(err.value)


@pytest.mark.parametrize("member", ["oversized-image", "oversized-annotations"])
def test_tiny_oversized_members_are_refused(tmp_path: Path, member: str) -> None:
    name, data = ((f"train/{WNIDS[0]}/images/{WNIDS[0]}_0.JPEG", jpeg((1, 2, 3)) + bytes(2 * MiB))
                  if member == "oversized-image" else ("val/val_annotations.txt", b"\n" * (9 * MiB)))
    archive = make_tiny_archive(tmp_path / "t.zip", replace={name: data})
    with pytest.raises(DataError, match=f"{name} in .*above the limit"):
        decode_tiny(archive)


@needs_tiny
def test_real_tiny_subset_flip_in_first_image_is_refused(tmp_path: Path) -> None:
    archive = Path(shutil.copy(TINY_SUBSET, tmp_path / TINY_SUBSET.name))
    with zipfile.ZipFile(archive) as zf:
        wnid = sorted(zf.read(f"{TINY}/wnids.txt").decode().split())[0]
    member = f"{TINY}/train/{wnid}/images/{wnid}_0.JPEG"
    start, length = member_data_pos(archive, member)
    raw = bytearray(archive.read_bytes())
    raw[start + length // 2] ^= 0x01
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"{member} in {archive}: Bad CRC-32"):
        decode_tiny(archive)


# ---------------------------------------------------------------- hostile sizes, duplicates, empty splits


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile batch can ask of the allowed numpy globals."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


@pytest.mark.parametrize("call", [
    _Reduce(np.ndarray, (300000, 3072), np.dtype("uint8")),  # ~0.9 GB, uninitialised
    _Reduce(np.ndarray, (10**6, 10**6), np.dtype("float64")),  # terabytes
    _Reduce(np.ndarray, (100,), np.dtype(("u1", (10**6,)))),  # small shape, huge items
    _Reduce(np.ndarray, (10001, 3072), np.dtype("uint8")),  # one row past an official batch
    _Reduce(np.core.multiarray._reconstruct, np.ndarray, (300000, 3072), b"b"),
], ids=["ndarray 300000x3072", "ndarray terabytes", "subarray dtype", "10001 rows", "_reconstruct"])
def test_array_larger_than_a_batch_is_refused_before_allocation(tmp_path: Path, call: _Reduce) -> None:
    bad = pickle.dumps({"data": call, "labels": [0]}, protocol=2)
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", replace={"data_batch_4": bad})
    with pytest.raises(DataError, match=r"data_batch_4 in .*: the pickle asks for an array of shape .* allowed: at "
                                        r"most 30720000 bytes \(10000 x 3072 uint8"):
        decode(tmp_path / "d" / "cifar-10-python.tar.gz")


def test_official_batch_size_still_loads(tmp_path: Path) -> None:
    make_cifar_archive(tmp_path / "c.tar.gz", replace={"test_batch": batch_bytes(10_000, 5)})
    assert len(decode(tmp_path / "c.tar.gz").test_y) == 10_000


def test_empty_training_set_is_refused(tmp_path: Path) -> None:
    # protocol 4: protocol 2 spells empty bytes as a call of bytes(), which the unpickler refuses anyway
    batch = pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []}, protocol=4)
    empty = {f"data_batch_{i}": batch for i in range(1, 6)}
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", replace=empty)
    with pytest.raises(DataError, match=r"cifar10: the training split of .* holds 0 images; allowed: at least one"):
        prepare_cifar(tmp_path / "d", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_class_absent_from_training_is_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def without_cats(seed: int) -> bytes:
        batch = pickle.loads(batch_bytes(30, seed))
        batch["labels"] = [4 if y == 3 else y for y in batch["labels"]]
        return pickle.dumps(batch, protocol=2)

    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz",
                       replace={f"data_batch_{i}": without_cats(i) for i in range(1, 6)})
    with caplog.at_level(logging.WARNING, logger="autos.data"):
        meta = prepare_cifar(tmp_path / "d", tmp_path / "out")
    assert meta["per_class_counts"]["train"][3] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "class 3 (cat) has no training image" in warnings[0], warnings


@pytest.mark.parametrize("second", [f"{FOLDER}/data_batch_2", f"./{FOLDER}/data_batch_2"])
def test_duplicate_tar_member_is_refused(tmp_path: Path, second: str) -> None:
    archive = make_cifar_archive(tmp_path / "src" / "cifar-10-python.tar.gz")
    with tarfile.open(archive) as tf:  # trusted: the intact archive the test just wrote
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]  # type: ignore[union-attr]
    forged = tarfile.TarInfo(second)
    members.append((forged, batch_bytes(20, 77)))  # appended later: it would silently replace the first
    with tarfile.open(archive, "w:gz") as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=re.escape(f"duplicate member {second!r} in {archive}")):
        decode(archive)


def test_duplicate_zip_member_is_refused(tmp_path: Path) -> None:
    archive = make_tiny_archive(tmp_path / "t.zip")
    name = f"{TINY}/train/{WNIDS[5]}/images/{WNIDS[5]}_0.JPEG"
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name" when writing, then reads only the last
        zf.writestr(name, jpeg((0, 0, 0)))
    with pytest.raises(DataError, match=re.escape(f"duplicate member {name!r} in {archive}")):
        decode_tiny(archive)
    with zipfile.ZipFile(archive) as zf, pytest.raises(DataError, match="duplicate member"):
        read_zip_member(zf, f"{TINY}/wnids.txt", archive, MiB)  # the reader checks by itself too
