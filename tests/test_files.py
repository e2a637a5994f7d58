"""Atomic, byte-reproducible writes and the checked torch.load (autos.files)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autos.errors import DataError
from autos.files import atomic_write_bytes, load_torch, npz_bytes, save_torch


def test_save_torch_gives_the_same_bytes_whatever_the_file_name(tmp_path: Path) -> None:
    state = {"w": torch.arange(12.0).view(3, 4), "b": torch.zeros(3)}
    a, b = save_torch(state, tmp_path / "a.pt"), save_torch(state, tmp_path / "sub" / "scorer.pt")
    assert a.read_bytes() == b.read_bytes()
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)  # what the stages used to do: the inner folder is named after the file
    assert plain.read_bytes() != a.read_bytes()
    loaded = load_torch(b)
    assert torch.equal(loaded["w"], state["w"])
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temp files left behind


def test_npz_bytes_are_stable_over_time_and_readable(tmp_path: Path) -> None:
    arrays = {"train_idx": np.arange(10), "holdout_idx": np.array([3, 1, 2])}
    first = npz_bytes(**arrays)
    time.sleep(2.1)  # zip timestamps have a 2-second resolution: np.savez would differ now
    assert npz_bytes(**arrays) == first
    atomic_write_bytes(tmp_path / "split.npz", first)
    with np.load(tmp_path / "split.npz") as loaded:
        assert loaded["holdout_idx"].tolist() == [3, 1, 2]


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run a command when loaded unsafely
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", [b"", b"garbage bytes, not a zip", "truncated", "evil"])
def test_load_torch_refuses_bad_files_with_one_clear_error(tmp_path: Path, content: object) -> None:
    path = tmp_path / "init.pt"
    if content == "truncated":
        save_torch({"w": torch.randn(100, 100)}, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "evil":
        with open(path, "wb") as handle:
            pickle.dump({"x": _Evil()}, handle)
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(DataError) as info:
        load_torch(path, what="IRP init state")
    message = str(info.value)
    assert "IRP init state" in message and str(path) in message and "\n" not in message
    assert "weights_only=False" not in message  # never advise loading an untrusted file unsafely
    if content == "evil":
        assert "refused without running it" in message


def test_load_torch_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        load_torch(tmp_path / "nope.pt")
