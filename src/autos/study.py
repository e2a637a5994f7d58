"""The composition root of a study: the one place that knows every registry.

- ``load_study(path)``: a params file validated completely (structure, registry names, per-name settings and the
  rules that read two sections together), by passing ``RegistryCatalog`` to ``autos.config``, which itself imports
  no registry.
- ``method_settings`` / ``scorer_settings``: a method's or the scorer's typed settings, defaults filled in.

Registries are imported inside functions: this module is imported by every stage, and a stage's import closure is
what DVC re-runs it for (tests/test_dvc_deps.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autos.config import ScorerConfig, StudyConfig, load_config, parse_config
from autos.registry import Registry


class RegistryCatalog:
    """``autos.config.Catalog`` over the real registries, imported when first asked (they pull in torch)."""

    def _registry(self, kind: str) -> Registry[Any]:
        if kind == "model":
            from autos.models import MODELS

            return MODELS
        if kind == "dataset":
            from autos.data import DATASETS

            return DATASETS
        if kind == "method":
            from autos.pruners import PRUNERS

            return PRUNERS
        if kind == "scorer":
            from autos.scorer import SCORERS

            return SCORERS
        if kind == "feature":
            from autos.features import EXTRA_FEATURES

            return EXTRA_FEATURES
        if kind == "modifier":
            from autos.sweep.modifiers import MODIFIERS

            return MODIFIERS
        raise ValueError(f"unknown registry kind {kind!r}")

    def names(self, kind: str) -> list[str]:
        return self._registry(kind).names()

    def settings_model(self, kind: str, name: str) -> type[BaseModel]:
        settings: type[BaseModel] = self._registry(kind).get(name).Settings
        return settings

    def base_inputs(self) -> tuple[str, ...]:
        from autos.scorer import BASE_INPUTS

        return tuple(BASE_INPUTS)

    def extra_inputs(self, scorer: str, settings: BaseModel) -> list[str]:
        from autos.scorer import ScorerSettings, required_extra

        if not isinstance(settings, ScorerSettings):
            raise TypeError(f"scorer {scorer!r} settings are {type(settings).__name__}, not ScorerSettings")
        return list(required_extra(settings))


def load_study(path: str | Path = "params.yaml") -> StudyConfig:
    """Load a params file and validate all of it; ConfigError lists every problem with its dotted path."""
    return load_config(path, catalog=RegistryCatalog())


def parse_study(raw: Any, source: str = "config") -> StudyConfig:
    """``load_study`` for params already read into a dict (tests, generated studies)."""
    return parse_config(raw, source, catalog=RegistryCatalog())


def method_settings(cfg: StudyConfig, method: str) -> BaseModel:
    """``transfer.method_settings.<method>`` as the method's typed Settings, validated once at load."""
    return cfg.transfer.settings_of(method)


def scorer_settings(scorer: ScorerConfig) -> BaseModel:
    """``scorer.settings`` as the scorer's typed Settings, validated once at load."""
    return scorer.typed_settings


def scorer_config(**values: Any) -> ScorerConfig:
    """A ``scorer`` section built in code (tests, benchmarks), validated as ``load_study`` validates it."""
    return ScorerConfig.model_validate(values, context={"catalog": RegistryCatalog()})
