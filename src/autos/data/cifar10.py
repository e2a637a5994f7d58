"""CIFAR-10 ("python version"): pickled batches read from the folder or straight from the tar.gz.

The batches are pickles, and unpickling runs code, so they are loaded with an unpickler that
resolves only the few globals numpy needs to rebuild an array.
"""

from __future__ import annotations

import io
import logging
import pickle
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from autos.data._registry import DATASETS, DatasetSpec, Splits, first_per_class
from autos.data.archive import MiB, check_size, read_limited, read_limited_file, walk_tar
from autos.errors import DataError

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NUM_CLASSES = 10

# Size limits, so a corrupt or hostile archive is refused before it is inflated into memory.
# An official batch is 10000 x 3072 uint8 plus labels and file names: ~31 MB as pickled by Python 2. Pickled
# again by Python 3 with protocol 2 (as the shared subset is) the pixels become latin1 text stored as UTF-8,
# up to 2 bytes per pixel: at most ~62 MB. 128 MiB is twice that worst case.
MAX_BATCH_BYTES = 128 * MiB
# batches.meta holds ten class names and two counts (~200 bytes).
MAX_META_BYTES = 1 * MiB
# The largest array a CIFAR-10 file holds: an official batch's pixels, 10000 x 3072 uint8 (the subset's batches are
# shorter). The unpickler refuses to build any array larger than this, in bytes or in elements, before numpy
# allocates it: `numpy.ndarray((300000, 3072))` in a hostile pickle would otherwise allocate ~1 GB (or terabytes).
MAX_ARRAY_BYTES = 10_000 * 3072
# Every byte of the archive is inflated to verify its checksum. The official one inflates to ~186 MB
# (at most ~380 MB re-pickled as above); anything past 1 GiB is refused as it comes out.
MAX_ARCHIVE_BYTES = 1024 * MiB


def _latin1_encode(text: object, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles store array bytes as latin1 text."""
    if not isinstance(text, str) or encoding.lower() not in ("latin1", "latin-1"):
        raise DataError(f"forbidden call _codecs.encode({type(text).__name__}, {encoding!r}) in pickle")
    return text.encode("latin1")


def _check_array(shape: object, dtype: object) -> None:
    """Refuse an array a pickle asks numpy to allocate unless it is at most an official batch's size."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise DataError(f"array shape {shape!r} in pickle is not a tuple of ints")
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise DataError(f"array dtype {dtype!r} in pickle is not a numpy dtype ({exc})") from None
    elements = 1
    for d in dims:  # stop multiplying once past the bound: a hostile shape may hold huge numbers
        if d < 0:
            raise DataError(f"array shape {shape!r} in pickle has a negative dimension")
        elements = min(elements * d, MAX_ARRAY_BYTES + 1)
    if elements > MAX_ARRAY_BYTES or elements * dt.itemsize > MAX_ARRAY_BYTES:
        raise DataError(f"the pickle asks for an array of shape {shape!r} and dtype {dt}; allowed: at "
                        f"most {MAX_ARRAY_BYTES} bytes (10000 x 3072 uint8, an official CIFAR-10 batch)")


class _Ndarray:
    """What the name ``numpy.ndarray`` resolves to: called (``ndarray(shape, dtype, ...)``), it checks the size first;
    passed to ``_reconstruct`` as the array type, it stands for ``np.ndarray``."""

    def __call__(self, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        _check_array(shape, dtype)
        return np.ndarray(shape, dtype, *args, **kwargs)


_NDARRAY = _Ndarray()


def _allowed_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray  # numpy >= 2 (pyproject); pickles name either module path

    def reconstruct(subtype: object, shape: Any, dtype: Any) -> Any:
        if subtype is not _NDARRAY:
            raise DataError(f"forbidden array type {subtype!r} in pickle; allowed: numpy.ndarray")
        _check_array(shape, dtype)  # the real size arrives with __setstate__, which checks it against its bytes
        return multiarray._reconstruct(np.ndarray, shape, dtype)

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array reconstruction; anything else is a DataError."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"forbidden global {module}.{name} in pickle; only numpy arrays are allowed") from None


def restricted_loads(raw: bytes, where: str) -> Any:
    """Unpickle untrusted bytes; any failure (forbidden global, truncation, garbage) is a DataError."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    except Exception as exc:  # untrusted input: every way of failing is a data problem
        raise DataError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc}); truncated or corrupt?") from exc


def _as_str_keys(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch into (data uint8 N x 3072, labels int64 N), checking both."""
    batch = _as_str_keys(restricted_loads(raw, where), where)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 N x 3072 array, got {got}")
    if not isinstance(labels, (list, np.ndarray)):
        raise DataError(f"{where}: 'labels' must be a list of ints, got {type(labels).__name__}")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(data) or (len(y) and y.dtype.kind not in "iu"):
        raise DataError(f"{where}: 'labels' must hold {len(data)} ints, got {len(y)} of type {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{where}: labels must be in 0..9, found {int(y.min())}..{int(y.max())}")
    return data, y.astype(np.int64)


def load_label_names(raw: bytes, where: str) -> list[str]:
    """Class names from ``batches.meta`` (``label_names``)."""
    names = _as_str_keys(restricted_loads(raw, where), where).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DataError(f"{where}: 'label_names' must be a list of {NUM_CLASSES} names")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _limit(name: str) -> int:
    return MAX_META_BYTES if name == META_FILE else MAX_BATCH_BYTES


def _read_archive(source: Path, wanted: set[str]) -> dict[str, bytes]:
    """The wanted batches from the tar in one pass; the whole archive is inflated so its CRC is checked."""
    found: dict[str, bytes] = {}

    def visit(member: tarfile.TarInfo, fh: IO[bytes] | None) -> None:
        parts = PurePosixPath(member.name).parts
        if fh is not None and len(parts) == 2 and parts[0] == FOLDER and parts[1] in wanted:
            what = f"{member.name} in {source}"
            check_size(member.size, _limit(parts[1]), what)
            found[parts[1]] = read_limited(fh, _limit(parts[1]), what)

    # Other members (the official readme.html) are skipped but still inflated: bound them like a batch.
    walk_tar(source, visit, max_member_bytes=MAX_BATCH_BYTES, max_total_bytes=MAX_ARCHIVE_BYTES)
    return found


def _read_files(source: Path) -> dict[str, bytes]:
    """Raw bytes of the batches and meta, from the extracted folder or in one pass over the tar."""
    wanted = {*TRAIN_FILES, TEST_FILE, META_FILE}
    if source.is_dir():
        found = {n: read_limited_file(source / n, _limit(n)) for n in wanted if (source / n).is_file()}
    else:
        found = _read_archive(source, wanted)
    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)} (expected the {FOLDER}/ layout)")
    return found


def decode_cifar10(source: Path, max_train_per_class: int | None, max_test_per_class: int | None) -> Splits:
    """Decode all batches; caps keep the first N images of each class in order of appearance."""
    files = _read_files(source)
    where = {n: str(source / n) if source.is_dir() else f"{FOLDER}/{n} in {source}" for n in files}
    class_names = load_label_names(files[META_FILE], where[META_FILE])
    train = [load_batch(files[n], where[n]) for n in TRAIN_FILES]
    train_data = np.concatenate([d for d, _ in train])
    train_y = np.concatenate([y for _, y in train])
    test_data, test_y = load_batch(files[TEST_FILE], where[TEST_FILE])
    keep_tr = first_per_class(train_y, max_train_per_class, NUM_CLASSES)
    keep_te = first_per_class(test_y, max_test_per_class, NUM_CLASSES)
    log.info("cifar10: %d/%d train, %d/%d test images kept", len(keep_tr), len(train_y), len(keep_te), len(test_y))
    return Splits(
        train_x=np.ascontiguousarray(train_data[keep_tr].reshape(-1, 3, 32, 32)),
        train_y=train_y[keep_tr],
        test_x=np.ascontiguousarray(test_data[keep_te].reshape(-1, 3, 32, 32)),
        test_y=test_y[keep_te],
        class_names=class_names,
    )


CIFAR10 = DATASETS.register("cifar10")(
    DatasetSpec(
        name="cifar10",
        num_classes=NUM_CLASSES,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        folder_name=FOLDER,
        archive_names=("cifar-10-python.tar.gz", "cifar-10-subset-python.tar.gz"),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        decode=decode_cifar10,
    )
)
