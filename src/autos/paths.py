"""Where a study's files live: ``paths.yaml`` at the repo root, the one table that dvc.yaml reads too (through
``vars``), so the stages and the pipeline never disagree about a path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autos.config import read_params
from autos.errors import ConfigError

PATHS_FILE = "paths.yaml"
SOURCE_TICKET_FILE = "source_ticket.json"  # in the scorer dir: ``scorer.metrics.ticket_diagnostics`` on the source
ROOT_ENV = "AUTOS_ROOT"


def project_root() -> Path:
    """The study's root: ``$AUTOS_ROOT`` when set (tests and benches run a stage against another folder), else
    the current directory.

    DVC runs every stage in its ``wdir`` (here the folder holding dvc.yaml), so the current directory is the
    study's own copy also for ``dvc exp run --temp`` and ``--queue``. ``$DVC_ROOT`` is deliberately not read:
    for those runs DVC points it at the parent workspace, and a stage reading it wrote its outputs and MLflow
    runs there instead of into the experiment's copy.
    """
    return Path(os.environ.get(ROOT_ENV) or Path.cwd()).resolve()


@dataclass(frozen=True)
class StudyPaths:
    """Absolute paths of a study's files (``paths.yaml`` under the repo root)."""

    prepared: Path
    irp: Path
    features: Path
    scorer: Path
    transfer: Path
    cache: Path
    metrics: Path
    reports: Path


def study_paths(root: Path) -> StudyPaths:
    table_file = root / PATHS_FILE
    raw = read_params(table_file)
    table = raw.get("paths") if isinstance(raw, dict) else None
    expected = list(StudyPaths.__dataclass_fields__)
    if not isinstance(table, dict) or sorted(table) != sorted(expected):
        raise ConfigError([f"paths: expected exactly the keys {', '.join(expected)}"], str(table_file))
    return StudyPaths(**{key: root / str(table[key]) for key in expected})
