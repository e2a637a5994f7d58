"""Dataset layer: real decoding of the shared offline subsets, and refusal of unsafe or broken inputs."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import pickle
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autos.data import DATASETS, load_prepared, locate_source, prepare_dataset
from autos.data.archive import check_member_name, download, sha256_file, walk_tar
from autos.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CIFAR_SUBSET = SHARED / "cifar-10-subset-python.tar.gz"
TINY_SUBSET = SHARED / "tiny-imagenet-200-subset.zip"
CIFAR_SUBSET_SHA256 = "10db92360dae2881db83dcc07d18f2549def90170fab8a5945751febaac5e6a0"
needs_cifar = pytest.mark.skipif(not CIFAR_SUBSET.is_file(), reason=f"shared CIFAR-10 subset absent: {CIFAR_SUBSET}")
needs_tiny = pytest.mark.skipif(not TINY_SUBSET.is_file(), reason=f"shared Tiny ImageNet subset absent: {TINY_SUBSET}")
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's AUTOS_DATA_DIR from changing which data the tests find."""
    monkeypatch.delenv("AUTOS_DATA_DIR", raising=False)


# ---------------------------------------------------------------- synthetic CIFAR-layout archives


def batch_bytes(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        "batch_label": f"synthetic {seed}",
        "labels": [int(v) for v in rng.integers(0, 10, n)],
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar_archive(path: Path, n: int = 20, replace: dict[str, bytes] | None = None,
                       extra: dict[str, bytes] | None = None) -> Path:
    """A small .tar.gz in the official CIFAR-10 layout; ``replace`` swaps a batch, ``extra`` adds members."""
    files = {f"data_batch_{i}": batch_bytes(n, i) for i in range(1, 6)}
    files["test_batch"] = batch_bytes(n, 99)
    files["batches.meta"] = pickle.dumps({"label_names": LABEL_NAMES, "num_cases_per_batch": n}, protocol=2)
    files.update(replace or {})
    members = {f"cifar-10-batches-py/{k}": v for k, v in files.items()}
    members.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def prepare_cifar(search_dir: Path, out_dir: Path, **kwargs: object) -> dict:
    return prepare_dataset("cifar10", search_dirs=[search_dir], out_dir=out_dir, download=False,
                           download_dir=None, **kwargs)


# ---------------------------------------------------------------- real data: the shared subsets


@pytest.fixture(scope="module")
def cifar_prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cifar") / "prepared"
    return out, prepare_cifar(SHARED, out, max_train_per_class=20, max_test_per_class=10)


@needs_cifar
def test_cifar_subset_prepare_and_load(cifar_prepared: tuple[Path, dict]) -> None:
    out, meta = cifar_prepared
    assert meta["schema_version"] == 1 and meta["dataset"] == "cifar10"
    assert meta["counts"] == {"train": 200, "test": 100}
    assert meta["per_class_counts"] == {"train": [20] * 10, "test": [10] * 10}
    assert meta["class_names"] == LABEL_NAMES
    assert meta["image_size"] == 32 and meta["num_classes"] == 10
    assert meta["mean"] == [0.4914, 0.4822, 0.4465] and meta["std"] == [0.2470, 0.2435, 0.2616]
    assert meta["source"] == {"path": str(CIFAR_SUBSET), "url": None, "kind": "archive",
                              "sha256": CIFAR_SUBSET_SHA256}
    assert meta["settings"] == {"max_train_per_class": 20, "max_test_per_class": 10, "image_size": None,
                                "max_classes": None, "seed": 0}
    assert sorted(os.listdir(out)) == ["meta.json", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy"]
    assert json.loads((out / "meta.json").read_text()) == meta
    for name, digest in meta["files"].items():
        assert sha256_file(out / name) == digest

    data = load_prepared(out)
    assert data.train_x.shape == (200, 3, 32, 32) and data.test_x.shape == (100, 3, 32, 32)
    assert str(data.train_x.dtype) == "torch.uint8" and str(data.train_y.dtype) == "torch.int64"
    assert int(data.train_y.min()) == 0 and int(data.train_y.max()) == 9
    assert data.num_classes == 10 and data.image_size == 32 and data.mean == (0.4914, 0.4822, 0.4465)
    assert np.array_equal(data.train_x.numpy(), np.load(out / "train_x.npy"))

    # Independent check of layout and order: the first kept image is the first image of data_batch_1.
    with tarfile.open(CIFAR_SUBSET) as tf:
        raw = pickle.load(tf.extractfile("cifar-10-batches-py/data_batch_1"), encoding="latin1")  # trusted file
    assert np.array_equal(data.train_x[0].numpy(), raw["data"][0].reshape(3, 32, 32))
    assert int(data.train_y[0]) == raw["labels"][0]


@needs_tiny
def test_tiny_imagenet_subset_capped_and_resized(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    meta = prepare_dataset("tiny_imagenet", search_dirs=[SHARED], out_dir=out, download=False, download_dir=None,
                           max_train_per_class=2, max_test_per_class=1, image_size=32)
    assert meta["counts"] == {"train": 400, "test": 200}
    assert meta["per_class_counts"] == {"train": [2] * 200, "test": [1] * 200}
    assert meta["image_size"] == 32 and meta["num_classes"] == 200 and len(meta["class_names"]) == 200
    assert meta["source"]["kind"] == "archive" and meta["settings"]["image_size"] == 32

    data = load_prepared(out)
    assert data.train_x.shape == (400, 3, 32, 32) and data.test_x.shape == (200, 3, 32, 32)
    assert np.array_equal(data.train_y.numpy(), np.repeat(np.arange(200), 2))
    assert sorted(data.test_y.tolist()) == list(range(200))

    with zipfile.ZipFile(TINY_SUBSET) as zf:
        wnids = sorted(zf.read("tiny-imagenet-200/wnids.txt").decode().split())
        first_val = zf.read("tiny-imagenet-200/val/val_annotations.txt").decode().splitlines()[0].split("\t")
        jpeg = zf.read(f"tiny-imagenet-200/train/{wnids[0]}/images/{wnids[0]}_0.JPEG")
    # Test labels come from val_annotations.txt; val_0 is the first test image.
    assert first_val[0] == "val_0.JPEG" and int(data.test_y[0]) == wnids.index(first_val[1])
    # The first train image is image 0 of the first wnid, resized with PIL bilinear.
    expected = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    assert np.array_equal(data.train_x[0].numpy(), np.asarray(expected).transpose(2, 0, 1))


# ---------------------------------------------------------------- sources: folder, env var, missing


def test_folder_source_matches_archive(tmp_path: Path) -> None:
    archive = make_cifar_archive(tmp_path / "a" / "cifar-10-python.tar.gz")
    with tarfile.open(archive) as tf:  # our own archive: plain extraction is fine in a test
        tf.extractall(tmp_path / "f", filter="data")
    assert locate_source("cifar10", [tmp_path / "f", tmp_path / "a"]) == tmp_path / "f" / "cifar-10-batches-py"
    from_archive = prepare_cifar(tmp_path / "a", tmp_path / "out_a", max_train_per_class=3)
    from_folder = prepare_cifar(tmp_path / "f", tmp_path / "out_f", max_train_per_class=3)
    assert from_folder["source"]["kind"] == "folder" and from_folder["source"]["sha256"] is None
    assert from_folder["files"] == from_archive["files"]
    assert all(c <= 3 for c in from_folder["per_class_counts"]["train"])


def test_env_data_dir_is_searched_and_out_dir_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_cifar_archive(tmp_path / "env" / "cifar-10-subset-python.tar.gz")
    monkeypatch.setenv("AUTOS_DATA_DIR", str(tmp_path / "env"))
    out = tmp_path / "out"
    prepare_cifar(tmp_path / "nothing", out)
    meta = prepare_cifar(tmp_path / "nothing", out, max_test_per_class=1)
    assert json.loads((out / "meta.json").read_text()) == meta
    assert sum(meta["per_class_counts"]["test"]) == meta["counts"]["test"] <= 10
    assert sorted(os.listdir(tmp_path)) == ["env", "out"]  # no temp or old folders left over


def test_missing_data_explains_how_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        prepare_cifar(tmp_path / "empty", tmp_path / "out")
    msg = str(err.value)
    for needle in ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar-10-subset-python.tar.gz",
                   str(tmp_path / "empty"), "AUTOS_DATA_DIR", "download"):
        assert needle in msg
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_lists_allowed_names() -> None:
    with pytest.raises(KeyError, match="cifar10, tiny_imagenet"):
        DATASETS.get("mnist")


# ---------------------------------------------------------------- download


def test_download_from_file_url(tmp_path: Path) -> None:
    archive = make_cifar_archive(tmp_path / "server" / "small.tar.gz")
    url, md5 = archive.as_uri(), hashlib.md5(archive.read_bytes()).hexdigest()
    meta = prepare_dataset("cifar10", search_dirs=[tmp_path / "empty"], out_dir=tmp_path / "out", download=True,
                           download_dir=tmp_path / "dl", url=url, md5=md5)
    assert meta["source"]["kind"] == "download" and meta["source"]["url"] == url
    assert meta["source"]["sha256"] == sha256_file(archive)
    assert meta["counts"] == {"train": 100, "test": 20}
    assert os.listdir(tmp_path / "dl") == ["cifar-10-python.tar.gz"]
    assert hashlib.md5((tmp_path / "dl" / "cifar-10-python.tar.gz").read_bytes()).hexdigest() == md5
    assert load_prepared(tmp_path / "out").train_x.shape == (100, 3, 32, 32)


def test_download_wrong_md5_leaves_nothing(tmp_path: Path) -> None:
    archive = make_cifar_archive(tmp_path / "server" / "small.tar.gz")
    with pytest.raises(DataError, match="md5") as err:
        prepare_dataset("cifar10", search_dirs=[], out_dir=tmp_path / "out", download=True,
                        download_dir=tmp_path / "dl", url=archive.as_uri(), md5="0" * 32)
    assert archive.as_uri() in str(err.value) and "AUTOS_DATA_DIR" in str(err.value)
    assert list((tmp_path / "dl").iterdir()) == [] and not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="md5"):
        download(archive.as_uri(), tmp_path / "dl" / "x.tar.gz", expected_md5="0" * 32)
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_unreachable_url(tmp_path: Path) -> None:
    url = (tmp_path / "no-such-file.tar.gz").as_uri()
    with pytest.raises(DataError, match="no-such-file.tar.gz"):
        download(url, tmp_path / "dl" / "x.tar.gz")
    assert list((tmp_path / "dl").iterdir()) == []


# ---------------------------------------------------------------- unsafe and corrupt inputs


def test_truncated_archive(tmp_path: Path) -> None:
    good = make_cifar_archive(tmp_path / "good.tar.gz").read_bytes()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cifar-10-python.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare_cifar(tmp_path / "d", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_batch_pickle(tmp_path: Path) -> None:
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", replace={"data_batch_3": batch_bytes(20, 3)[:500]})
    with pytest.raises(DataError, match="data_batch_3"):
        prepare_cifar(tmp_path / "d", tmp_path / "out")


def test_malformed_batch_names_the_problem(tmp_path: Path) -> None:
    bad = pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 10]}, protocol=2)
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", replace={"test_batch": bad})
    with pytest.raises(DataError, match=r"cifar-10-batches-py/test_batch in .*: labels must be in 0\.\.9"):
        prepare_cifar(tmp_path / "d", tmp_path / "out")


class _Payload:
    """Pickles as a call of ``func(arg)``: what a malicious batch would run on load."""

    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple:
        return self.func, (self.arg,)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused_unexecuted(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = (_Payload(os.system, f"touch {marker}") if kind == "os.system"
               else _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"))
    evil = pickle.dumps({"data": payload, "labels": [0]}, protocol=2)
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", replace={"data_batch_2": evil})
    # Protocol 2 names the global as Python 2 did: posix.system / __builtin__.eval.
    forbidden = r"(posix|nt|os)\.system" if kind == "os.system" else r"(__builtin__|builtins)\.eval"
    with pytest.raises(DataError, match="data_batch_2 in .*: forbidden global " + forbidden):
        prepare_cifar(tmp_path / "d", tmp_path / "out")
    assert not marker.exists()


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info.size = len(data) if info.isfile() else 0
        tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _symlink_info() -> tarfile.TarInfo:
    info = tarfile.TarInfo("cifar-10-batches-py/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


@pytest.mark.parametrize("case", ["tar-dotdot", "tar-absolute", "tar-symlink", "zip-dotdot"])
def test_unsafe_archive_members_are_refused(tmp_path: Path, case: str) -> None:
    # archives are read in place, never extracted; every member name is checked before its bytes are used
    if case == "zip-dotdot":
        archive, member = tmp_path / "a.zip", "../evil"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr(member, "boom")
        with pytest.raises(DataError, match=re.escape(repr(member))), zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                check_member_name(name, archive)
        return
    info = {"tar-dotdot": tarfile.TarInfo("../evil"), "tar-absolute": tarfile.TarInfo("/tmp/evil"),
            "tar-symlink": _symlink_info()}[case]
    member, archive = info.name, _tar_with(tmp_path / "a.tar.gz", info)
    visited: list[str] = []
    with pytest.raises(DataError, match=re.escape(repr(member))):
        walk_tar(archive, lambda m, f: visited.append(m.name), max_member_bytes=1 << 20, max_total_bytes=1 << 20)
    assert visited == []  # refused before the visitor saw it


def test_dotdot_member_refused_when_reading_archive_in_place(tmp_path: Path) -> None:
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz", extra={"../evil": b"boom"})
    with pytest.raises(DataError, match="'../evil'"):
        prepare_cifar(tmp_path / "d", tmp_path / "out")


# ---------------------------------------------------------------- load_prepared checks


@pytest.fixture()
def small_prepared(tmp_path: Path) -> Path:
    make_cifar_archive(tmp_path / "d" / "cifar-10-python.tar.gz")
    prepare_cifar(tmp_path / "d", tmp_path / "out")
    return tmp_path / "out"


def test_tampered_array_is_refused(small_prepared: Path) -> None:
    path = small_prepared / "train_x.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train_x.npy: sha256"):
        load_prepared(small_prepared)


def test_missing_file_and_bad_schema_are_refused(small_prepared: Path) -> None:
    meta = json.loads((small_prepared / "meta.json").read_text())
    (small_prepared / "meta.json").write_text(json.dumps({**meta, "schema_version": 2}))
    with pytest.raises(DataError, match="schema_version 2"):
        load_prepared(small_prepared)
    (small_prepared / "test_y.npy").unlink()
    with pytest.raises(DataError, match="missing test_y.npy"):
        load_prepared(small_prepared)


def test_prepared_folder_with_no_training_image_is_refused(small_prepared: Path) -> None:
    """prepare_dataset refuses an empty split; a folder made elsewhere is refused on load (no ZeroDivisionError)."""
    meta = json.loads((small_prepared / "meta.json").read_text())
    for name, array in (("train_x.npy", np.zeros((0, 3, 32, 32), np.uint8)), ("train_y.npy", np.zeros(0, np.int64))):
        np.save(small_prepared / name, array, allow_pickle=False)
        meta["files"][name] = sha256_file(small_prepared / name)
    meta["counts"]["train"] = 0
    (small_prepared / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"train_y\.npy: the train split holds 0 images; allowed: at least one"):
        load_prepared(small_prepared)


def test_max_classes_keeps_the_first_classes(tmp_path: Path) -> None:
    if not (SHARED / "tiny-imagenet-200-subset.zip").exists():
        pytest.skip("shared Tiny ImageNet subset not found")
    meta = prepare_dataset("tiny_imagenet", search_dirs=[SHARED], out_dir=tmp_path / "t", download=False,
                           download_dir=None, max_train_per_class=2, max_test_per_class=1, image_size=16,
                           max_classes=5)
    data = load_prepared(tmp_path / "t")
    assert meta["num_classes"] == 5 and data.num_classes == 5 and len(meta["class_names"]) == 5
    assert sorted(set(data.train_y.tolist())) == [0, 1, 2, 3, 4] and len(data.train_y) == 10
    assert set(data.test_y.tolist()) <= {0, 1, 2, 3, 4} and len(data.test_y) == 5
    with pytest.raises(ConfigError, match="max_classes 300"):
        prepare_dataset("tiny_imagenet", search_dirs=[SHARED], out_dir=tmp_path / "u", download=False,
                        download_dir=None, max_classes=300)


def test_validation_is_held_out_per_class_seeded_and_disjoint_from_training() -> None:
    import dataclasses

    import torch

    from autos.data.prepared import PreparedData
    from autos.data.validation import hold_out
    from autos.errors import DataError

    y = torch.arange(40) % 4
    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 2, 2).contiguous()
    data = PreparedData(train_x=x, train_y=y, test_x=x[:4], test_y=y[:4], meta={"num_classes": 4})
    train, val = hold_out(data, 3, seed=0)
    assert val is not None and sorted(val.test_y.tolist()) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    held, kept = set(val.test_x[:, 0, 0, 0].tolist()), set(train.train_x[:, 0, 0, 0].tolist())
    assert not held & kept and len(held | kept) == 40 and torch.equal(train.test_x, data.test_x)
    again, _ = hold_out(data, 3, seed=0)
    assert torch.equal(again.train_x, train.train_x)  # seeded: every cell holds out the same images
    assert not torch.equal(hold_out(data, 3, seed=1)[0].train_x, train.train_x)
    assert hold_out(data, 0, seed=0) == (data, None)
    with pytest.raises(DataError, match="holds out every training image of class 0"):
        hold_out(dataclasses.replace(data, train_y=torch.tensor([0] * 3 + [1] * 37)), 3, seed=0)
