"""A stage stops when the DVC process that launched it is gone.

DVC runs a stage as a child process. SIGTERM to ``dvc`` alone (a scheduler ending a job, ``kill <dvc pid>``) ends
DVC but not its child, which would go on training with nobody to record its outputs, holding the CPUs or GPU and
its MLflow runs RUNNING. ``watch_launcher`` finds the nearest ancestor that is a DVC process (else the parent) and,
from a daemon thread, sends this process SIGTERM once that ancestor is gone: the stage then unwinds as on Ctrl-C
(``autos.pipeline.context.run_stage``: runs ended, nothing half-written). A process is named by (pid, start time),
so a reused pid is not mistaken for the launcher (``autos.tracking.ownership.process_start``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from autos.tracking.ownership import process_start

log = logging.getLogger("autos.stage")

MAX_DEPTH = 8  # dvc -> (sh) -> stage is 2; a queue worker or make adds a few


def _parent_and_argv(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, argv) of ``pid`` from /proc (Linux); None elsewhere or when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    parent = int(stat[stat.rindex(")") + 2:].split()[1])
    return parent, [a.decode(errors="replace") for a in argv if a]


def is_dvc(argv: list[str]) -> bool:
    """``dvc ...``, ``python -m dvc ...`` or a path to a ``dvc`` script (``.venv/bin/dvc``)."""
    if not argv:
        return False
    if Path(argv[0]).name == "dvc":
        return True
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1] == "dvc":
            return True
    return len(argv) > 1 and Path(argv[1]).name == "dvc"  # `python .venv/bin/dvc ...`


def launcher_pid(pid: int | None = None) -> int | None:
    """The nearest DVC ancestor of ``pid`` (default: this process), else its parent; None when the parent is init
    (already orphaned, or started by a service manager)."""
    pid = os.getpid() if pid is None else pid
    first_parent = os.getppid() if pid == os.getpid() else None
    current = pid
    for _ in range(MAX_DEPTH):
        found = _parent_and_argv(current)
        if found is None:
            break
        parent, _ = found
        if first_parent is None:
            first_parent = parent
        if parent <= 1:
            break
        parent_info = _parent_and_argv(parent)
        if parent_info is not None and is_dvc(parent_info[1]):
            return parent
        current = parent
    return first_parent if first_parent and first_parent > 1 else None


def watch(pid: int, on_gone: Callable[[], None], interval: float = 1.0) -> threading.Event:
    """Call ``on_gone()`` once, from a daemon thread, when process ``pid`` is gone; set the returned event to stop
    watching."""
    started = process_start(pid)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            if started is None or process_start(pid) != started:
                on_gone()
                return

    threading.Thread(target=loop, name=f"launcher-watch-{pid}", daemon=True).start()
    return stop


def watch_launcher(name: str, interval: float = 1.0) -> threading.Event | None:
    """SIGTERM to this process when the DVC process (or parent) that launched the stage ``name`` is gone."""
    pid = launcher_pid()
    if pid is None:
        return None

    def stop_stage() -> None:
        log.warning("%s: the process that launched it (pid %d) is gone; stopping", name, pid)
        os.kill(os.getpid(), signal.SIGTERM)

    return watch(pid, stop_stage, interval)
