"""Where a study's files live: ``paths.yaml`` at the repo root, the one table that dvc.yaml reads too (through
``vars``), so the stages and the pipeline never disagree about a path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autos.config import read_params
from autos.errors import ConfigError

PATHS_FILE = "paths.yaml"


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
