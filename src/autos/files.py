"""Writing and reading files safely: atomic, durable, byte-reproducible writes and a checked ``torch.load``.

Why each piece exists:
- atomic: a stage killed mid-write must leave either the old file or the new one, never half of one, so every
  write goes to a temp sibling that is renamed into place (``os.replace`` is atomic on POSIX);
- durable: a ``kill -9`` or power loss right after the rename must not leave a renamed but empty file, so the temp
  file is fsync'ed before the rename and the folder after it;
- byte-reproducible: DVC hashes outputs, so the same seed on the same machine must write the same bytes or every
  downstream stage re-runs for nothing. ``torch.save`` to a *path* names the zip's inner folder after the file,
  and a random temp name makes the bytes differ on every run; saving to a buffer names it ``archive`` always.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autos.errors import DataError

TMP_SUFFIX = ".tmp"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp file path beside ``path``; when the block succeeds it is fsync'ed and renamed onto ``path``
    (for writers that want a file name, e.g. Parquet); on failure it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside ``path`` that replaces ``path`` only if the block succeeds.

    The old folder is renamed aside, the new one renamed in, then the old one removed: at every moment ``path`` is
    either the complete old folder or the complete new one (a kill between the renames leaves the old one aside,
    named ``.<name>.old-*``, and no ``path``; DVC then re-runs the stage)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent))
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            path.rename(old)
        tmp.rename(path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (temp sibling, fsync, rename, fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """JSON with a trailing newline; key order as given (callers sort where order carries no meaning)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory: the same object gives the same bytes whatever file they end up in.

    Dict subclasses (``autos.masking.Masks``) are saved as plain dicts: ``torch.load(weights_only=True)`` reads
    builtin containers and tensors only, and must never need a class of ours."""
    buffer = io.BytesIO()
    torch.save(_plain_containers(obj), buffer)
    return buffer.getvalue()


def _plain_containers(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain_containers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain_containers(v) for v in obj]
    return obj


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An ``.npz`` (readable by ``np.load``) with fixed member timestamps: ``np.savez`` stamps each member with the
    current time, so the same arrays would give different bytes (and a different DVC hash) on every run."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that is atomic, durable and byte-reproducible (see the module docstring)."""
    return atomic_write_bytes(path, torch_bytes(obj))


def _load_failure_reason(exc: Exception) -> str:
    """One short line for why torch refused a file. torch's own text for a refused pickle advises retrying with
    ``weights_only=False``, the wrong advice for an untrusted file, so only its diagnosis is kept."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0].strip()
        return f"refused without running it: {detail or 'not a weights-only torch file'}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def load_torch(path: str | Path, *, what: str = "file") -> Any:
    """``torch.load(weights_only=True)`` on CPU; a missing, truncated, garbage or code-carrying file is a DataError
    naming the file (never a traceback, never code run: weights_only refuses every global but tensors)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} is missing")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: every way of failing is a data problem
        raise DataError(f"{what} {path} is not a readable torch file ({_load_failure_reason(exc)})") from None


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def without_keys(record: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


# Wall-clock figures differ on every run, so they never go into an output DVC hashes (they would make identical
# results look changed and re-run every downstream stage); they go to MLflow and the logs instead.
TIMING_KEYS = frozenset({
    "train_seconds", "train_images_per_second", "select_seconds", "fit_seconds", "feature_seconds",
    "write_seconds", "rows_per_second_write", "seconds",
})
