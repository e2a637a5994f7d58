"""A stall watchdog: a step that makes no progress for minutes says so in the log, with every thread's stack.

A hang inside a native kernel (the oneDNN channels-last backward, docs/reliability.md) is otherwise silent: the
stage just stops printing. Long-running work calls ``beat(what)``; the watchdog active in that context
(``watching``: a stage opens one, and so does a cell in a Ray worker) starts a daemon thread on the first beat, logs
one warning per stall naming the last thing that beat and dumps all Python stacks (``faulthandler``), then logs
again when progress resumes. Without an active watchdog, ``beat`` does nothing. ``AUTOS_WATCHDOG_SECONDS`` sets the
stall limit (default 300; 0 disables).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

log = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 300.0


def stall_seconds_from_env() -> float:
    raw = os.environ.get("AUTOS_WATCHDOG_SECONDS", "")
    try:
        return float(raw) if raw else DEFAULT_STALL_SECONDS
    except ValueError:
        log.warning("AUTOS_WATCHDOG_SECONDS=%r is not a number; using %.0f s", raw, DEFAULT_STALL_SECONDS)
        return DEFAULT_STALL_SECONDS


class Watchdog:
    """Warns once per stall when ``beat`` has not been called for ``stall_seconds``."""

    def __init__(self, stall_seconds: float, *, poll_seconds: float | None = None) -> None:
        self.stall_seconds = stall_seconds
        self.poll_seconds = poll_seconds if poll_seconds is not None else max(0.05, min(stall_seconds / 4, 15.0))
        self.stalls = 0  # how many stalls were reported (tests read it)
        self._last = time.monotonic()
        self._what = "start"
        self._stalled = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.stall_seconds > 0

    def beat(self, what: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if self._stalled:
                log.warning("progress resumed after %.0f s without progress (%s)", now - self._last, what)
                self._stalled = False
            self._last, self._what = now, what
        if self._thread is None:
            self._start()

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="autos-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            with self._lock:
                idle = time.monotonic() - self._last
                if self._stalled or idle < self.stall_seconds:
                    continue
                self._stalled, what = True, self._what
                self.stalls += 1
            log.warning("no progress for %.0f s since '%s': still running, possibly hung in a native kernel; "
                        "stacks of every thread follow (AUTOS_WATCHDOG_SECONDS sets this limit)", idle, what)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


_active: ContextVar[Watchdog | None] = ContextVar("autos_watchdog", default=None)


@contextlib.contextmanager
def watching(watchdog: Watchdog | None) -> Iterator[Watchdog | None]:
    """Beats inside the block go to ``watchdog`` (None: to no watchdog), which is stopped on the way out.

    The caller owns the watchdog: a stage (``autos.pipeline.context.run_stage``) and a Ray worker's cell open one;
    code that runs outside any (a test, the public API) beats into nothing and starts no thread."""
    token = _active.set(watchdog)
    try:
        yield watchdog
    finally:
        _active.reset(token)
        if watchdog is not None:
            watchdog.stop()


def active() -> Watchdog | None:
    """The watchdog beats go to here, if any."""
    return _active.get()


def beat(what: str) -> None:
    """Record progress on the active watchdog (``watching``); nothing when none is active."""
    watchdog = _active.get()
    if watchdog is not None:
        watchdog.beat(what)
