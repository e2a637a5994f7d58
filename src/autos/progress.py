"""Progress a person can read in a log file: plain lines, no bars, no escape codes.

DVC captures a stage's stdout and stderr into logs (``dvc exp run --queue``), where a progress bar is a stream of
carriage returns and ANSI codes. Long work here reports itself in plain, rate-limited lines instead:

* ``SweepProgress``: the transfer sweep's counter with an ETA, one line per finished cell, e.g.
  ``transfer vgg16_cifar10: cell 7/45 done (snip s=98% seed 0, 41 s), 3 cached, ~12 min left``. The ETA is the
  mean duration of the cells computed by this process times the cells left, divided by how many ran at once
  (1 locally, up to the Ray cluster's slots); cells restored from the cache count as done but not in the rate.
* ``Heartbeat``: a line at most every ``every_s`` seconds from a loop that may run for minutes without finishing
  anything (SynFlow's 100 scoring rounds on a ResNet); silent when the loop is quick.

Everything takes a ``clock`` (seconds, monotonic) so the arithmetic is tested with a fake one. (Bars: the training
loop's tqdm bar draws on a terminal only, ``disable=None``; its per-epoch log lines are the record in a log.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Clock = Callable[[], float]

HEARTBEAT_SECONDS = 30.0


def percent(fraction: float) -> str:
    """0.98 -> '98%', 0.995 -> '99.5%' (at most 4 significant digits: no float noise)."""
    return f"{fraction * 100:.4g}%"


def duration(seconds: float) -> str:
    """A rounded, readable duration: '41 s', '12 min', '2 h 05 min'."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class SweepProgress:
    """Counts the cells of a sweep and estimates the time left.

    ``started(cid)`` when a cell starts (locally) or is handed to a free Ray slot; ``finished`` / ``failed`` return
    the line to log. ``total`` counts every cell, ``cached`` those restored from the cache before the run.
    """

    def __init__(self, name: str, total: int, cached: int = 0, *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.total = total
        self.cached = cached
        self.clock = clock
        self.computed = 0  # finished by this process
        self.failures = 0
        self.seconds = 0.0  # summed durations of the computed cells
        self.parallel = 1  # the most cells that ran at once
        self._running: dict[str, float] = {}

    @property
    def done(self) -> int:
        """Cells with an outcome: cached, computed or failed."""
        return self.cached + self.computed + self.failures

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def mean_seconds(self) -> float | None:
        return self.seconds / self.computed if self.computed else None

    def eta_seconds(self) -> float | None:
        """Seconds until the last cell is done, or None before any cell was computed here."""
        mean = self.mean_seconds
        if mean is None:
            return None
        if not self.remaining:
            return 0.0
        now = self.clock()
        running = sorted(now - t for t in self._running.values())
        queued = max(0, self.remaining - len(running))
        # running cells need what is left of a mean cell; the queued ones share the slots
        left_running = max([mean - elapsed for elapsed in running if elapsed < mean], default=0.0)
        return left_running + queued * mean / max(1, self.parallel)

    def started(self, cid: str) -> None:
        self._running[cid] = self.clock()
        self.parallel = max(self.parallel, len(self._running))

    def index(self) -> int:
        """1-based number of the most recently started cell among all cells (cached ones first)."""
        return self.done + len(self._running)

    def _took(self, cid: str) -> float:
        start = self._running.pop(cid, None)
        return 0.0 if start is None else max(0.0, self.clock() - start)

    def finished(self, cid: str, what: str) -> str:
        took = self._took(cid)
        self.computed += 1
        self.seconds += took
        return f"{self.name}: cell {self.done}/{self.total} done ({what}, {duration(took)}){self._tail()}"

    def failed(self, cid: str, what: str) -> str:
        took = self._took(cid)
        self.failures += 1
        return f"{self.name}: cell {self.done}/{self.total} FAILED ({what}, after {duration(took)}){self._tail()}"

    def _tail(self) -> str:
        parts = []
        if self.cached:
            parts.append(f"{self.cached} cached")
        if self.failures:
            parts.append(f"{self.failures} failed")
        eta = self.eta_seconds()
        if not self.remaining:
            parts.append("all done")
        elif eta is not None:
            parts.append(f"~{duration(eta)} left")
        return "".join(f", {p}" for p in parts)


class Heartbeat:
    """Logs a line at most every ``every_s`` seconds (the first one ``every_s`` after creation).

    ``beat(msg, *args)`` is cheap (one clock read) when it stays silent; ``fired`` tells whether anything was
    logged (then a closing line is worth writing: the reader saw the work start)."""

    def __init__(self, every_s: float = HEARTBEAT_SECONDS, *, clock: Clock = time.monotonic,
                 logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.every_s = every_s
        self.clock = clock
        self.logger = logger or log
        self.level = level
        self.start = self._last = clock()
        self.fired = 0

    def elapsed(self) -> float:
        return self.clock() - self.start

    def beat(self, msg: str, *args: object) -> bool:
        now = self.clock()
        if now - self._last < self.every_s:
            return False
        self._last = now
        self.fired += 1
        self.logger.log(self.level, msg, *args)
        return True
