"""Typed, strict study configuration: one pydantic model per ``params.yaml`` section (``sections``), the whole file
(``study_config.StudyConfig``), reading it (``loading``) and what validation asks of the registries (``catalog``);
the bounds and their reasons (``limits``), ``execution`` (``execution``), ``transfer`` and ``sources``
(``transfer``: methods, variants, seeds), the study root (``root``).

Unknown keys, wrong types, out-of-range values, unknown registry names and sections that contradict each other all
fail at load, together, each with its dotted path and the allowed values or range (``ConfigError``). This package
imports no registry and no torch: ``autos.study.load_study`` passes the registries' catalog.
"""

from __future__ import annotations

from autos.config.catalog import Catalog
from autos.config.execution import ExecutionConfig
from autos.config.limits import MAX_BATCH_SIZE, MAX_SCORER_BATCH_SIZE, MAX_SEED, Strict
from autos.config.loading import load_config, parse_config, read_params
from autos.config.report import ReportConfig
from autos.config.sections import (
    DataConfig,
    DatasetSettings,
    FeaturesConfig,
    IRPConfig,
    ModelSpec,
    PruningConfig,
    ScorerConfig,
    TrackingConfig,
    TrainRecipe,
)
from autos.config.study_config import StudyConfig
from autos.config.transfer import SourcesConfig, TransferConfig, VariantSpec, selection_fields

__all__ = [
    "MAX_BATCH_SIZE", "MAX_SCORER_BATCH_SIZE", "MAX_SEED", "Catalog", "DataConfig", "DatasetSettings",
    "ExecutionConfig", "FeaturesConfig", "IRPConfig", "ModelSpec", "PruningConfig", "ReportConfig", "ScorerConfig",
    "SourcesConfig", "Strict", "StudyConfig", "TrackingConfig", "TrainRecipe", "TransferConfig", "VariantSpec",
    "load_config", "parse_config", "read_params", "selection_fields",
]
