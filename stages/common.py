"""Shared plumbing for the thin DVC stage entry points.

Every stage: parse ``--params`` (default params.yaml), load and validate the whole config (exit status 2 and
nothing written on any config problem), run, and write outputs atomically (temp sibling + rename), so a failed
or killed stage leaves no half-written outputs behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autos.config import StudyConfig, load_config
from autos.errors import AutosError, ConfigError

log = logging.getLogger("autos.stage")

EXIT_CONFIG = 2
EXIT_DATA = 1


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="study params file (default: params.yaml)")
    return p


def run_stage(name: str, main: Callable[[StudyConfig, argparse.Namespace], None],
              arg_parser: argparse.ArgumentParser) -> None:
    logging.basicConfig(level=os.environ.get("AUTOS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = arg_parser.parse_args()
    try:
        cfg = load_config(args.params)
        main(cfg, args)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except AutosError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_DATA)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp dir that replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=float) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
