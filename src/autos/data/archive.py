"""Archive helpers: checksums, safe extraction and downloads.

Archives come from the internet or from colleagues, so nothing here trusts member names:
every member is checked to stay inside its target before anything is written, and every write
goes to a temporary path that is renamed into place only once it is complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

from autos.errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _hash_file(path: Path, algorithm: str) -> str:
    """Stream a file through a hash so large archives never sit in memory at once."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (streamed): the checksum recorded in metadata."""
    return _hash_file(Path(path), "sha256")


def md5_file(path: Path) -> str:
    """Hex md5 of a file (streamed): the checksum the official dataset pages publish."""
    return _hash_file(Path(path), "md5")


def check_member_name(name: str, archive: Path) -> str:
    """Return ``name`` if it stays inside the archive root, else raise DataError naming it.

    Works on the name alone (``os.path.normpath`` against a virtual root), so it also guards
    archives that are read in place without extracting.
    """
    root = "/__root__"
    resolved = os.path.normpath(os.path.join(root, name.replace("\\", "/")))
    if os.path.isabs(name) or not (resolved == root or resolved.startswith(root + "/")):
        raise DataError(f"unsafe member {name!r} in {archive}: it would land outside the target folder")
    return name


def check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that escape the root and links (which could point anywhere)."""
    check_member_name(member.name, archive)
    if member.issym() or member.islnk():
        raise DataError(f"unsafe member {member.name!r} in {archive}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"unsafe member {member.name!r} in {archive}: not a regular file or folder")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            check_tar_member(member, archive)
            out = dest / member.name
            if member.isdir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            assert src is not None  # regular file, checked above
            with src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh, _CHUNK)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            check_member_name(info.filename, archive)
        for info in zf.infolist():
            out = dest / info.filename
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh, _CHUNK)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished ``tmp`` folder to ``target``, replacing any old one with two renames."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract a .tar.gz/.tgz/.tar or .zip into ``target`` (replaced if present), all or nothing.

    Members are written into a temporary sibling of ``target`` which is renamed into place only
    after every member passed the checks, so a refused or broken archive leaves nothing behind.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
        replace_dir(tmp, target)
    except DataError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot extract {archive}: {exc}") from exc
    log.info("extracted %s into %s", archive, target)
    return target


def download(url: str, dest: Path, expected_md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``; rename only after the md5 (if given) matches."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s to %s", url, dest)
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as fh:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                fh.write(chunk)
        if expected_md5 is not None and digest.hexdigest() != expected_md5.lower():
            raise DataError(
                f"download of {url} failed: md5 {digest.hexdigest()} does not match the expected {expected_md5}"
            )
        part.replace(dest)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: malformed URL
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}") from exc
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest
