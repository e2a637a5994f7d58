"""Archive helpers: checksums, verified and bounded reading, safe extraction and downloads.

Archives come from the internet or from colleagues, so nothing here trusts them: every member is
checked to stay inside its target before anything is written, every write goes to a temporary path
that is renamed into place only once it is complete, every byte of a compressed tar is decompressed
so that the codec's own checksum (the gzip CRC-32 and length) is verified, zip members are read in
full so that zipfile checks their CRC-32, and sizes are bounded both as declared and as decompressed.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import logging
import lzma
import os
import struct
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from autos.errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
MiB = 1 << 20

# What a broken compressed stream or container raises while being read: BadGzipFile and bz2's "Invalid data
# stream" are OSErrors, a truncated stream is an EOFError, damaged deflate data is a zlib.error.
STREAM_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
# Reading a zip member can also fail with RuntimeError (a flipped flag bit makes it "encrypted"),
# NotImplementedError (a flipped compression method) or KeyError (a flipped name).
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, RuntimeError, NotImplementedError, ValueError,
)


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


def _size_text(n: int) -> str:
    return f"{n} bytes ({n / MiB:.1f} MiB)"


def check_size(size: int, limit: int, what: str) -> None:
    """Refuse a member whose declared size exceeds ``limit`` before a single byte of it is inflated."""
    if size > limit:
        raise DataError(f"{what}: declares {_size_text(size)}, above the limit of {_size_text(limit)} for "
                        "this member; refusing to decompress it (corrupt archive or not the expected dataset?)")


def read_limited(fh: IO[bytes], limit: int, what: str) -> bytes:
    """Read ``fh`` to its end, refusing it as soon as more than ``limit`` bytes came out.

    Declared sizes can lie, so the bound is also enforced on what the decompressor actually produces:
    at most ``limit + 1`` bytes are ever inflated.
    """
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise DataError(f"{what}: more than {_size_text(limit)} (the limit for this member) came out of "
                        "the decompressor; refusing it (corrupt archive or not the expected dataset?)")
    return data


def read_limited_file(path: Path, limit: int) -> bytes:
    """A plain file's bytes with the same bound as an archive member (an extracted folder is no safer)."""
    what = str(path)
    try:
        check_size(path.stat().st_size, limit, what)
        with open(path, "rb") as fh:
            return read_limited(fh, limit, what)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _open_decompressed(archive: Path) -> io.BufferedIOBase:
    """The archive's decompressed byte stream; the codec is picked from the magic bytes, as ``r:*`` does."""
    with open(archive, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(archive, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(archive, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(archive, "rb")
    return open(archive, "rb")


class _CappedStream:
    """Read/seek/tell over a decompressed stream that refuses to go past ``limit`` bytes.

    tarfile reads headers, pax records and skipped members through this, so no header, however large it
    claims a member to be, makes us inflate more than ``limit`` bytes.
    """

    def __init__(self, stream: io.BufferedIOBase, limit: int, archive: Path) -> None:
        self._stream, self._limit, self._archive = stream, limit, archive

    def too_large(self, end: int) -> DataError:
        return DataError(f"{self._archive}: decompresses to more than {_size_text(self._limit)} (needs at least "
                         f"{_size_text(end)}); refusing it (corrupt archive or not the expected dataset?)")

    def read(self, size: int = -1) -> bytes:
        position = self._stream.tell()
        if size is None or size < 0:
            size = self._limit + 1 - position
        if position + size > self._limit:
            # Read only up to the limit: a short stream is fine, one that goes on is refused.
            data = self._stream.read(self._limit - position)
            if len(data) == self._limit - position and self._stream.read(1):
                raise self.too_large(position + size)
            return data
        return self._stream.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # tarfile only seeks to absolute or relative positions; a forward seek inflates everything on the way.
        target = offset if whence == os.SEEK_SET else self._stream.tell() + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < 0:
            raise ValueError(f"unsupported seek({offset}, {whence}) in {self._archive}")
        if target > self._limit:
            raise self.too_large(target)
        return self._stream.seek(target)

    def tell(self) -> int:
        return self._stream.tell()


def _drain_after_tar(stream: _CappedStream, archive: Path) -> None:
    """Inflate the rest of the stream, so the codec checks its CRC and length, and refuse non-zero bytes.

    After the end-of-archive block a tar holds only zero padding; anything else means tarfile stopped
    early at a damaged header (which it treats as the end) and members were silently dropped.
    """
    while chunk := stream.read(_CHUNK):
        if chunk.strip(b"\0"):
            raise DataError(f"{archive}: unexpected data after the end of the tar archive "
                            "(a damaged member header?); truncated or corrupt archive?")


TarVisitor = Callable[[tarfile.TarInfo, IO[bytes] | None], None]


def walk_tar(archive: Path, visit: TarVisitor, *, max_member_bytes: int, max_total_bytes: int) -> None:
    """Call ``visit(member, file or None)`` for each member in order, then verify the whole stream.

    Every member is checked (safe name, no links, declared size at most ``max_member_bytes``) before
    ``visit`` sees it; ``visit`` may read the member's file object (directories get None). After the last
    member the rest of the stream is inflated so that the gzip/bz2/xz checksum of the whole archive is
    verified: a flipped byte or a cut-off trailer anywhere is a DataError, never a silently wrong image.
    Never more than ``max_total_bytes`` are inflated.
    """
    where = str(archive)  # what was being read, for the message: the member when known
    seen: set[str] = set()  # file members by normalised name: a second one would silently replace the first
    try:
        with _open_decompressed(archive) as raw:
            stream = _CappedStream(raw, max_total_bytes, archive)
            # "r:" on our own stream: tarfile must not pick a codec itself, its stream reader skips the CRC check.
            with tarfile.open(fileobj=stream, mode="r:") as tf:  # type: ignore[call-overload]
                for member in tf:
                    where = f"{member.name} in {archive}"
                    check_tar_member(member, archive)
                    if member.isfile():
                        _check_first(member.name, seen, archive)
                    check_size(member.size, max_member_bytes, where)
                    if member.offset_data + member.size > max_total_bytes:  # refused now, not after inflating
                        raise stream.too_large(member.offset_data + member.size)
                    visit(member, tf.extractfile(member) if member.isfile() else None)
                    where = f"{archive} (after member {member.name})"
                where = f"{archive} (end-of-stream check over all members)"
                _drain_after_tar(stream, archive)
    except DataError:
        raise
    except STREAM_ERRORS as exc:
        raise DataError(f"cannot read {where}: {exc} (truncated or corrupt archive?)") from exc


def _member_key(name: str) -> str:
    """A member name as the readers see it: ``./a//b`` and ``a/b`` are the same file."""
    return os.path.normpath(name.replace("\\", "/")).lstrip("/")


def _check_first(name: str, seen: set[str], archive: Path) -> None:
    key = _member_key(name)
    if key in seen:
        raise DataError(f"duplicate member {name!r} in {archive}: a second copy would silently replace the first; "
                        "allowed: each file once (a tampered or wrongly appended archive?)")
    seen.add(key)


def check_zip_unique(zf: zipfile.ZipFile, archive: Path) -> None:
    """Refuse a zip holding a name twice (zipfile reads the last copy and hides the first); O(1) when there is none."""
    if len(zf.NameToInfo) == len(zf.filelist):  # zipfile's name table keeps one entry per distinct name
        return
    seen: set[str] = set()
    for info in zf.filelist:
        _check_first(info.filename, seen, archive)


def check_zip_names(zf: zipfile.ZipFile, archive: Path) -> None:
    """Check every central-directory name against its member's local header (zipfile does it only on open).

    A zip stores each name twice. A damaged name in the directory would rename a member out of the
    dataset layout, so it would silently go missing rather than fail its CRC check; comparing all names
    costs one small read per member (~0.05 s for 30000 members). A name stored twice is refused too.
    """
    check_zip_unique(zf, archive)
    try:
        with open(archive, "rb") as fh:
            for info in zf.infolist():
                fh.seek(info.header_offset)
                header = fh.read(30)
                if len(header) < 30 or header[:4] != b"PK\x03\x04":
                    raise DataError(f"{info.filename} in {archive}: no local header at offset {info.header_offset} "
                                    "(truncated or corrupt archive?)")
                flags, name_len = struct.unpack_from("<6xH18xH", header)  # general purpose flags, name length
                local = fh.read(name_len).decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
                if local != info.orig_filename:
                    raise DataError(f"{info.filename!r} in {archive}: its local header names it {local!r} "
                                    "(truncated or corrupt archive?)")
    except OSError as exc:
        raise DataError(f"cannot read {archive}: {exc}") from exc


def read_zip_member(zf: zipfile.ZipFile, name: str, archive: Path, limit: int) -> bytes:
    """One zip member read in full (so zipfile verifies its CRC-32), at most ``limit`` bytes declared or inflated."""
    what = f"{name} in {archive}"
    check_zip_unique(zf, archive)
    try:
        info = zf.getinfo(name)
        check_size(info.file_size, limit, what)
        with zf.open(info) as fh:
            return read_limited(fh, limit, what)
    except DataError:
        raise
    except ZIP_ERRORS as exc:
        raise DataError(f"cannot read {what}: {exc} (truncated or corrupt archive?)") from exc


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
