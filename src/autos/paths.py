"""Where a study's files live: ``paths.yaml`` at the repo root, the one table that dvc.yaml reads too (through
``vars``), so the stages and the pipeline never disagree about a path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autos.config import read_params
from autos.config.root import ROOT_ENV, project_root
from autos.errors import ConfigError

__all__ = ["PATHS_FILE", "ROOT_ENV", "SOURCE_TICKET_FILE", "StudyPaths", "project_root", "study_paths"]

PATHS_FILE = "paths.yaml"
SOURCE_TICKET_FILE = "source_ticket.json"  # in the scorer dir: ``scorer.metrics.ticket_diagnostics`` on the source


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

    # One folder per source run (``sources.seeds``): IRP, its feature table and the scorer fitted on it.
    def source_irp(self, seed: int) -> Path:
        return self.irp / str(seed)

    def source_features(self, seed: int) -> Path:
        return self.features / str(seed) / "source.parquet"

    def source_scorer(self, seed: int) -> Path:
        return self.scorer / str(seed)


def study_paths(root: Path) -> StudyPaths:
    table_file = root / PATHS_FILE
    raw = read_params(table_file)
    table = raw.get("paths") if isinstance(raw, dict) else None
    expected = list(StudyPaths.__dataclass_fields__)
    if not isinstance(table, dict) or sorted(table) != sorted(expected):
        raise ConfigError([f"paths: expected exactly the keys {', '.join(expected)}"], str(table_file))
    # every output stays inside the study (stages delete and replace these folders)
    outside = [f"paths.{key}: {table[key]!r} is not a relative path inside the study root; allowed: e.g. data/{key}"
               for key in expected if not _inside(table[key])]
    if outside:
        raise ConfigError(outside, str(table_file))
    return StudyPaths(**{key: root / str(table[key]) for key in expected})


def _inside(value: object) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    parts = PurePosixPath(value.replace("\\", "/")).parts
    return not PurePosixPath(value).is_absolute() and ".." not in parts and parts not in ((), (".",))
