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


# A params file is a few KB (the paper profile: 5 KB). 16 MiB refuses a wrong file (a dataset, /dev/zero) before it
# is read into memory, without coming near any real profile.
MAX_PARAMS_BYTES = 16 * 2**20
# The shipped profiles nest 4 levels (transfer.method_settings.<method>.<key>). Deeper params are not a study; the
# bound keeps every recursive reader after the YAML parser (pydantic, the settings walkers, json) far from Python's
# recursion limit, which the parser itself hits at about 500 levels (a RecursionError, reported below).
MAX_PARAMS_DEPTH = 32


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, at most MAX_PARAMS_BYTES), or ConfigError in one sentence naming what is wrong."""
    def fail(problem: str) -> ConfigError:
        return ConfigError([problem], str(path))

    if path.is_dir():
        raise fail(f"{path} is a folder; allowed: a params file (YAML), e.g. params.yaml or configs/smoke.yaml")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise fail(f"file not found: {path}") from None
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise fail(f"{path} is larger than {MAX_PARAMS_BYTES // 2**20} MiB; allowed: a params file (a few KB of YAML)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} (offset {exc.start}); "
                   "allowed: a UTF-8 YAML file") from None


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_params(path: str | Path) -> Any:
    """A params file as plain dicts/lists, read as YAML 1.2 (what DVC writes); ConfigError if unreadable."""
    path = Path(path)
    # typ="safe": no arbitrary Python objects, and plain dict/list rather than ruamel's Commented* containers;
    # pure=True: the same (pure-Python, YAML 1.2) resolver whether or not the C extension is installed.
    yaml = YAML(typ="safe", pure=True)
    text = _read_text(path)
    try:
        raw = yaml.load(text)
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
    except RecursionError:  # the parser recurses once per nesting level
        raise ConfigError([f"{path} nests lists or mappings too deeply for the YAML parser; allowed: at most "
                           f"{MAX_PARAMS_DEPTH} levels"], str(path)) from None
    if (depth := _depth(raw)) > MAX_PARAMS_DEPTH:
        raise ConfigError([f"{path} nests lists or mappings {depth} levels deep; allowed: at most {MAX_PARAMS_DEPTH}"],
                          str(path))
    return raw


def load_config(path: str | Path = "params.yaml", *, catalog: Catalog | None = None) -> StudyConfig:
    """Load and validate a params file; raises ConfigError listing every problem. Stages use
    ``autos.study.load_study``, which passes the registries' catalog."""
    return parse_config(read_params(path), str(path), catalog=catalog)
