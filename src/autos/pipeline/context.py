"""What every DVC stage starts from (``StageContext``) and how it runs (``run_stage``).

The stages in ``stages/`` parse their arguments and call ``run_stage(name, autos.pipeline.<name>.run, parser)``.
Every stage: parse ``--params`` (default params.yaml), load and validate the whole config (exit status 2 and
nothing written on any config problem), run, and write outputs atomically (temp sibling + rename), so a failed
or killed stage leaves no half-written outputs behind.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from autos.config import StudyConfig
from autos.data.prepared import PreparedData, load_prepared
from autos.device import resolve_device
from autos.errors import AutosError, ConfigError
from autos.files import atomic_dir, read_json  # noqa: F401  (re-exported for the stages)
from autos.files import atomic_write_json as write_json
from autos.paths import StudyPaths, project_root, study_paths
from autos.pipeline.launcher import watch_launcher
from autos.study import load_study
from autos.tracking import Tracker, end_active_runs
from autos.watchdog import Watchdog, stall_seconds_from_env, watching

log = logging.getLogger("autos.stage")

EXIT_CONFIG = 2
EXIT_DATA = 1


def parser(description: str, *, source_seed: bool = False) -> argparse.ArgumentParser:
    """A stage's arguments: ``--params``; ``source_seed``: a source stage's ``--source-seed`` (one of
    ``sources.seeds``: its runs are independent, one DVC stage instance each)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="study params file (default: params.yaml)")
    if source_seed:
        p.add_argument("--source-seed", type=int, required=True, help="which source run (one of sources.seeds)")
    return p


class StageInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived. Unwinds like Ctrl-C, so every ``with`` block cleans up on the way out:
    ``atomic_dir`` drops its temp dir and ``Tracker.run`` ends its MLflow run as KILLED."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def _set_handlers(handler: SignalHandler) -> dict[int, SignalHandler]:
    previous: dict[int, SignalHandler] = {}
    for sig in INTERRUPT_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    return previous


def _exit_now(name: str) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # A second signal while cleaning up (e.g. a tracking server that hangs): leave at once; the next
        # stage's Tracker closes the runs left RUNNING as orphans.
        os.write(2, f"{name}: interrupted again ({signal.Signals(signum).name}); exiting without cleanup\n".encode())
        os._exit(128 + signum)
    return handler


def _interrupt(name: str) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        _set_handlers(_exit_now(name))
        raise StageInterrupted(signum)
    return handler


@dataclass
class StageContext:
    """What every stage starts from, built once by ``run_stage``: the validated config, the command-line
    arguments, the repo root and the study's paths (``paths.yaml``); device, tracker, datasets and models on
    demand."""

    name: str
    cfg: StudyConfig
    args: argparse.Namespace
    root: Path
    paths: StudyPaths

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker(self.cfg.tracking.experiment, enabled=self.cfg.tracking.enabled, root=self.root)

    @cached_property
    def source_seed(self) -> int:
        """``--source-seed``: which source run (``sources.seeds``) a source stage computes."""
        seed = int(self.args.source_seed)
        if seed not in self.cfg.sources.seeds:
            raise ConfigError([f"--source-seed {seed} is not in sources.seeds (declared: "
                               f"{', '.join(map(str, self.cfg.sources.seeds))})"], self.args.params)
        return seed

    def dataset(self, name: str) -> PreparedData:
        """The prepared dataset ``name`` (verified against its metadata on load)."""
        return load_prepared(self.paths.prepared / name)

    def write_metrics(self, name: str, metrics: Any) -> None:
        """``<metrics>/<name>.json`` for ``dvc metrics`` (no wall-clock figures: they would differ every run)."""
        write_json(self.paths.metrics / f"{name}.json", metrics)


def run_stage(name: str, main: Callable[[StageContext], None], arg_parser: argparse.ArgumentParser) -> None:
    logging.basicConfig(level=os.environ.get("AUTOS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs its own traceback of a failed SQL statement before raising; the stage says the cause in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # A segfault (torch, a C extension) cannot be caught; at least print the Python stack. Its MLflow runs stay
    # RUNNING until the next stage's Tracker closes them as orphans.
    faulthandler.enable()
    args = arg_parser.parse_args()
    # SIGTERM (DVC, a queue worker, `kill`) would end the process with no cleanup at all; make it unwind like
    # Ctrl-C instead. Signal handlers can only be set from the main thread.
    previous = _set_handlers(_interrupt(name)) if threading.current_thread() is threading.main_thread() else None
    # SIGTERM to DVC alone would leave this stage training on its own: stop with it (autos.pipeline.launcher)
    launcher = watch_launcher(name) if previous is not None else None
    try:
        try:
            cfg = load_study(args.params)
            root = project_root()
            with watching(Watchdog(stall_seconds_from_env())):  # a hung native kernel says so in the log
                main(StageContext(name=name, cfg=cfg, args=args, root=root, paths=study_paths(root)))
        except ConfigError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            sys.exit(EXIT_CONFIG)
        except AutosError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            sys.exit(EXIT_DATA)
    except KeyboardInterrupt as exc:  # also a signal that lands while an error above is being reported
        signum = exc.signum if isinstance(exc, StageInterrupted) else signal.SIGINT
        if previous is not None:
            _set_handlers(_exit_now(name))
        end_active_runs("KILLED")  # runs the unwinding did not reach (a signal inside MLflow's start_run)
        print(f"{name}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        if launcher is not None:
            launcher.set()
        if previous is not None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


RESOLVED_CONFIG = "resolved_config.json"


def write_resolved_config(out: Path, cfg: StudyConfig, sections: Sequence[str],
                          extra: Mapping[str, Any] | None = None) -> None:
    """Write the config sections a stage used, with every default filled in, next to its outputs.

    DVC sees only what params.yaml spells out; a default that lives in code (a method's setting, the recipe's
    momentum) is invisible to it. Written into the output folder, the resolved values are part of the output's
    hash and of its record: a changed default shows in ``dvc diff`` and in the files themselves."""
    resolved = {name: _plain(getattr(cfg, name)) for name in sections}
    write_json(out / RESOLVED_CONFIG, {**resolved, **dict(extra or {})})


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
