"""The composition root of a study: the one place that knows every registry.

- ``load_study(path)``: a params file validated completely (structure, registry names, per-name settings and the
  rules that read two sections together), by passing ``RegistryCatalog`` to ``autos.config``, which itself imports
  no registry.
- ``method_settings`` / ``scorer_settings``: a method's or the scorer's typed settings, defaults filled in.

Registries are imported inside functions: this module is imported by every stage, and a stage's import closure is
what DVC re-runs it for (tests/test_dvc_deps.py).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autos.config import ScorerConfig, StudyConfig, parse_config, read_params
from autos.errors import ConfigError
from autos.registry import MethodRecord, Registry


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


def load_plugins(names: Any, source: str = "config") -> None:
    """Import the modules ``plugins`` names (out-of-tree methods, models, datasets register themselves on import),
    so that validation and the stages know them. ConfigError naming each that does not import."""
    if not isinstance(names, list):
        return  # not a list: the config's own validation reports it
    problems = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure to import a user's module is a config problem
            problems.append(f"plugins.{i}: cannot import {name!r} ({type(exc).__name__}: {exc}); it must be a "
                            "module on the Python path, e.g. my_package.my_methods")
    if problems:
        raise ConfigError(problems, source)


def load_study(path: str | Path = "params.yaml") -> StudyConfig:
    """Load a params file and validate all of it; ConfigError lists every problem with its dotted path. The modules
    under ``plugins`` are imported first, so the methods they register are known to validation."""
    return parse_study(read_params(path), str(path))


def parse_study(raw: Any, source: str = "config") -> StudyConfig:
    """``load_study`` for params already read into a dict (tests, generated studies)."""
    if isinstance(raw, dict):
        load_plugins(raw.get("plugins", []), source)
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


def method_records(cfg: StudyConfig) -> dict[str, MethodRecord]:
    """The record of every method of the study, variants included (``transfer.variants``): a variant has its base
    method's kind, data needs and code, its own name, and a title that says what differs (its own, or the base's
    title with the settings it sets)."""
    from autos.pruners import PRUNERS

    records = {}
    for name in cfg.transfer.methods:
        base = PRUNERS.record(cfg.transfer.registered(name))
        spec = cfg.transfer.variants.get(name)
        if spec is None:
            records[name] = base
            continue
        title = spec.title or f"{base.title} ({', '.join(f'{k} {v}' for k, v in spec.settings.items())})"
        records[name] = dataclasses.replace(base, name=name, title=title, variant_of=spec.method,
                                            variant_settings=dict(spec.settings))
    return records
