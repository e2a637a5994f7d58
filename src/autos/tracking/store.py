"""The tracking store: where it is (``tracking_uri``), the SQLite file created once and atomically
(``ensure_sqlite_store``), a copied or moved workspace's artifact locations (``relocate_artifacts``), and a store
that cannot be used as one sentence (``TrackingError``, ``store_errors``).

Why the SQLite file is built beside its final name: MLflow creates its ~60 tables and runs its schema migrations in
place, in many transactions (~8 s). A stage killed or interrupted meanwhile, or two processes creating the same
fresh store at once, left a half-migrated file (``table _alembic_tmp_tags already exists``) that failed every later
stage. Here the schema is built in ``<db>.creating-<pid>`` under an exclusive lock on ``<db>.lock`` (concurrent
creators wait, then find the store made) and renamed onto ``<db>`` when complete, so ``<db>`` is either absent or
whole. A half-made file left by older code or another tool is recreated when it holds no runs and refused with one
sentence otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autos.errors import AutosError
from autos.paths import project_root

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
MAX_EXPERIMENT_NAME = 500  # MLflow refuses longer experiment names
LOCK_WAIT_S = 300.0  # creating a store takes seconds; a creator holding the lock longer than this is stuck
TMP_MARK = ".creating-"
NEEDED_TABLES = frozenset({"alembic_version", "experiments", "runs"})
STORE_MODULES = frozenset({"mlflow", "sqlalchemy", "alembic", "requests", "urllib3"})


class TrackingError(AutosError):
    """The tracking store cannot be used; the message is one sentence naming the store and the fix."""


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the workspace's SQLite store ``<root>/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or project_root()) / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (a relative path is taken from the working folder, as SQLAlchemy
    does); None for every other store and for an in-memory database."""
    scheme, sep, rest = uri.partition(":///")
    if not sep or scheme.lower().split("+")[0] != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path).absolute()


def artifact_root(db: Path) -> str:
    """Where the experiments of the SQLite store ``db`` keep their artifacts: ``mlartifacts`` beside it."""
    return (db.parent / ARTIFACT_DIR).as_uri()


@dataclass(frozen=True)
class StoreState:
    tables: frozenset[str]
    versions: tuple[str, ...]  # alembic_version rows (one when the schema is complete)
    runs: int  # counted only for an incomplete store

    def problem(self) -> str | None:
        """What makes the store incomplete (None: MLflow can open it; its schema version MLflow checks itself)."""
        leftovers = sorted(t for t in self.tables if t.startswith("_alembic_tmp_"))
        if leftovers:
            return f"leftover migration table {leftovers[0]}"
        missing = sorted(NEEDED_TABLES - self.tables)
        if missing:
            return f"no table {missing[0]}"
        if len(self.versions) != 1:
            return f"{len(self.versions)} schema versions recorded"
        return None


def _connect(db: Path) -> sqlite3.Connection:
    # mode=rw: never creates the file (sqlite3.connect on a missing path would)
    return sqlite3.connect(f"{db.as_uri()}?mode=rw", uri=True, timeout=30, isolation_level=None)


def inspect_store(db: Path) -> StoreState | None:
    """The state of the SQLite file ``db``; None when it does not exist or is empty (a store yet to be made)."""
    try:
        if db.stat().st_size == 0:
            return None
    except FileNotFoundError:
        return None
    try:
        con = _connect(db)
        try:
            tables = frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            versions: tuple[str, ...] = ()
            if "alembic_version" in tables:
                versions = tuple(str(r[0]) for r in con.execute("SELECT version_num FROM alembic_version"))
            state = StoreState(tables, versions, 0)
            if state.problem() is not None and "runs" in tables:  # counted only when it decides something
                state = StoreState(tables, versions, int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]))
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):
            raise TrackingError(f"The MLflow store {db} is locked by another process: run the stage again once it "
                                "is done.") from exc
        raise TrackingError(f"The MLflow store {db} cannot be read ({exc}): move it aside to start a new store, "
                            "or point MLFLOW_TRACKING_URI at another one.") from exc
    return state


def ensure_sqlite_store(db: Path) -> None:
    """Make sure ``db`` is a complete MLflow store: create it once, atomically (module docstring); recreate a
    half-made one that holds no runs; raise TrackingError (one sentence) for one that does, or a missing folder."""
    if not db.parent.is_dir():
        raise TrackingError(f"The folder {db.parent} of the MLflow store {db} does not exist: create it, or point "
                            "MLFLOW_TRACKING_URI at a store in an existing folder.")
    state = inspect_store(db)
    if state is not None and state.problem() is None:
        return  # the usual case: no lock, one small read
    with _creation_lock(db):
        state = inspect_store(db)  # another process may have made it while this one waited
        if state is not None:
            problem = state.problem()
            if problem is None:
                return
            if state.runs:
                raise TrackingError(
                    f"The MLflow store {db} was left half-migrated ({problem}) and holds {state.runs} runs: back it "
                    f"up, drop its _alembic_tmp_* tables and run `mlflow db upgrade sqlite:///{db}`, or move it "
                    "aside to start a new store.")
            log.warning("MLflow store %s was left half-created (%s) and holds no runs: creating it again", db, problem)
        _create_store(db)


@contextmanager
def _creation_lock(db: Path) -> Iterator[None]:
    lock = db.with_name(db.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise TrackingError(f"Cannot create the MLflow store {db} ({exc.strerror}): make {db.parent} writable, or "
                            "point MLFLOW_TRACKING_URI at a writable place.") from exc
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(f"Another process has been creating the MLflow store {db} for over "
                                        f"{LOCK_WAIT_S:g} s: stop that process (it holds {lock}).") from None
                if not waited:
                    log.info("waiting for another process to finish creating MLflow store %s", db)
                    waited = True
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock; the lock file stays (removing it would race with a waiting process)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_store(db: Path) -> None:
    """Build the schema in a temp file beside ``db`` and rename it onto ``db`` (called under the creation lock:
    temp files of other creators are leftovers of killed ones)."""
    for stale in db.parent.glob(f"{db.name}{TMP_MARK}*"):
        _remove(stale)
    tmp = db.with_name(f"{db.name}{TMP_MARK}{os.getpid()}")
    log.info("creating MLflow store %s (once; takes seconds)", db)
    try:
        _build_schema(tmp, artifact_root(db))
        _fsync(tmp)
        # a journal of the file being replaced would be applied to the new one
        _remove(*(db.with_name(db.name + suffix) for suffix in ("-journal", "-wal", "-shm")))
        os.replace(tmp, db)
        _fsync(db.parent, directory=True)
        _reconnect(db)
    finally:
        _remove(tmp, tmp.with_name(tmp.name + "-journal"))


def _build_schema(path: Path, default_artifact_root: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{path}"
    store = SqlAlchemyStore(uri, default_artifact_root)  # every table, every migration, the Default experiment
    store.engine.dispose()  # no connection keeps the temp file open once it is renamed
    engines = getattr(SqlAlchemyStore, "_engine_map", None)  # MLflow's engine cache (keyed by URI)
    if isinstance(engines, dict):
        engines.pop(uri, None)


def _reconnect(db: Path) -> None:
    """Connections this process holds to a file that was replaced see the old one (SQLite then answers "attempt to
    write a readonly database"): close MLflow's pooled ones, so the next request opens the new file."""
    module = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
    engines = getattr(getattr(module, "SqlAlchemyStore", None), "_engine_map", None)
    for uri, engine in list(engines.items()) if isinstance(engines, dict) else []:
        if sqlite_path(uri) == db:
            engine.dispose()  # the engine stays usable: it opens new connections on demand


# Where MLflow keeps artifact locations, rewritten together when a workspace's store was copied or moved.
LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("logged_models", "artifact_location"), ("model_versions", "source"),
                    ("model_versions", "storage_location"))


def stale_artifact_root(location: str, expected: str) -> str | None:
    """The artifact root an experiment of a copied or moved workspace still points at (``file:.../mlartifacts``
    of its old folder), or None when ``location`` is ``expected`` or was not made by this package."""
    location = location.rstrip("/")
    if location == expected.rstrip("/") or not location.startswith("file:"):
        return None
    return location if location.rsplit("/", 1)[-1] == ARTIFACT_DIR else None


def relocate_artifacts(db: Path, old: str, new: str) -> int:
    """Point every artifact location under ``old`` (experiments, runs, logged and registered models) at the same
    place under ``new``, in one transaction; returns the number of rows changed."""
    old, new = old.rstrip("/"), new.rstrip("/")
    con = _connect(db)
    changed = 0
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            for table, column in LOCATION_COLUMNS:
                if column not in {r[1] for r in con.execute(f"PRAGMA table_info({table})")}:
                    continue
                cursor = con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 - names from the table above
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, old, len(old) + 1, old + "/"))
                changed += max(cursor.rowcount, 0)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return changed


def _is_store_failure(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, sqlite3.Error)):
        return True
    return any(cls.__module__.split(".")[0] in STORE_MODULES for cls in type(exc).__mro__)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# (text in the error or its causes, why the store cannot be used, the fix); {where}: the store's folder or URI
REASONS = (
    ("database or disk is full", "the disk is full", "free space on {where}"),
    ("no space left on device", "the disk is full", "free space on {where}"),
    ("readonly database", "it is read-only", "make {where} writable"),
    ("read-only file system", "it is read-only", "make {where} writable"),
    ("permission denied", "permission is denied", "make {where} writable"),
    ("unable to open database file", "the file cannot be opened", "make sure {where} exists and is writable"),
    ("database is locked", "another process keeps it locked", "run the stage again once that process is done"),
    ("out-of-date database schema", "another MLflow version made it",
     "back it up and run `mlflow db upgrade {uri}`"),
)


def describe_failure(uri: str, exc: BaseException) -> str:
    """One sentence: which store, why it cannot be used, what to do."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(exc)):
        text += " no space left on device"
    db = sqlite_path(uri)
    where = str(db.parent) if db is not None else uri
    for needle, why, fix in REASONS:
        if needle in text:
            return (f"MLflow store {uri} cannot be used: {why}; {fix.format(where=where, uri=uri)}, or set "
                    "tracking.enabled: false in the params file.")
    first = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"MLflow store {uri} failed ({type(exc).__name__}: {first}); fix the store, or set tracking.enabled: false."


@contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a failure of the store (MLflow, SQLite, SQLAlchemy, HTTP, file system) inside into a TrackingError with
    one sentence; everything else (and KeyboardInterrupt) passes unchanged."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        if not _is_store_failure(exc):
            raise
        raise TrackingError(describe_failure(uri, exc)) from exc
