"""Reading a params file (YAML 1.2, as DVC writes it) and validating it into a ``StudyConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from autos.config.catalog import Catalog
from autos.config.errors import format_errors
from autos.config.study_config import StudyConfig, _salvage_cross_section_problems
from autos.errors import ConfigError


def parse_config(raw: Any, source: str = "config", *, catalog: Catalog | None = None) -> StudyConfig:
    """Validate raw params; with a ``catalog``, registry names, settings and cross-section rules too."""
    if not isinstance(raw, dict):
        raise ConfigError([f"<root>: expected a mapping of sections, got {type(raw).__name__}"], source)
    try:
        return StudyConfig.model_validate(raw, context={"catalog": catalog})
    except ValidationError as exc:
        problems = format_errors(exc, StudyConfig)
        if any(err["loc"] for err in exc.errors()):  # a field failed, so StudyConfig's model validator did not run
            problems += _salvage_cross_section_problems(raw, catalog)
        raise ConfigError(problems, source) from None


def read_params(path: str | Path) -> Any:
    """A params file as plain dicts/lists, read as YAML 1.2 (what DVC writes); ConfigError if unreadable."""
    path = Path(path)
    # typ="safe": no arbitrary Python objects, and plain dict/list rather than ruamel's Commented* containers;
    # pure=True: the same (pure-Python, YAML 1.2) resolver whether or not the C extension is installed.
    yaml = YAML(typ="safe", pure=True)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], str(path)) from None
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = exc.problem or exc.context or type(exc).__name__
        if exc.problem and exc.context and exc.context_mark is not None:  # e.g. where an unclosed '[' opened
            opened = exc.context_mark
            what += f" ({exc.context} at line {opened.line + 1}, column {opened.column + 1})"
        raise ConfigError([f"not valid YAML at {where}: {what}"], str(path)) from None
    except YAMLError as exc:
        raise ConfigError([f"not valid YAML in {path}: {exc}"], str(path)) from None


def load_config(path: str | Path = "params.yaml", *, catalog: Catalog | None = None) -> StudyConfig:
    """Load and validate a params file; raises ConfigError listing every problem. Stages use
    ``autos.study.load_study``, which passes the registries' catalog."""
    return parse_config(read_params(path), str(path), catalog=catalog)
