"""What config validation needs from the registries, without importing them: the ``Catalog`` protocol (the
composition root ``autos.study`` passes the real one) and the checks of registry names and per-name settings."""

from __future__ import annotations

import math
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from autos.config.errors import describe_loc, format_errors


class Catalog(Protocol):
    """What validation needs from the registries; ``autos.study.RegistryCatalog`` is the real one."""

    def names(self, kind: str) -> list[str]:
        """Registered names of a kind: model, dataset, method, scorer or feature."""

    def settings_model(self, kind: str, name: str) -> type[BaseModel]:
        """The ``Settings`` model of a registered method or scorer."""

    def base_inputs(self) -> tuple[str, ...]:
        """Feature columns every table has (w0, g0)."""

    def extra_inputs(self, scorer: str, settings: BaseModel) -> list[str]:
        """The extra feature columns a scorer with these settings reads."""


def _catalog(info: ValidationInfo) -> Catalog | None:
    context = info.context if isinstance(info.context, dict) else {}
    return context.get("catalog")


def _check_name(kind: str, name: str, info: ValidationInfo) -> str:
    catalog = _catalog(info)
    if catalog is not None and name not in catalog.names(kind):
        raise ValueError(f"unknown {kind} {name!r}; allowed: {', '.join(catalog.names(kind))}")
    return name


def _nonempty_unique(value: list[Any], what: str) -> list[Any]:
    """Refuse an empty list (a study over nothing) and repeated entries (duplicate rows or metric keys)."""
    if not value:
        raise ValueError(f"at least one {what} is required")
    repeated = sorted({v for v in value if value.count(v) > 1}, key=str)
    if repeated:
        raise ValueError(f"each {what} must be listed once; repeated: {', '.join(map(repr, repeated))}")
    return value


def _non_finite(value: Any, path: str = "") -> list[tuple[str, float]]:
    """(dotted path, value) of every NaN/inf float inside raw settings (nested dicts and lists)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, value)]
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return []
    return [hit for key, item in items for hit in _non_finite(item, f"{path}.{key}" if path else str(key))]


def _validate_settings(catalog: Catalog, kind: str, values: dict[str, Any],
                       prefix: str | None = None) -> dict[str, Any]:
    """Validate per-name settings against each registered entry's ``Settings`` model; report every problem.

    Problems are dotted paths relative to the field holding ``values``: ``<name>.<key>``, or ``<prefix>.<key>``
    when the settings sit under a fixed key (``scorer.settings``). Raised as one ``nested_problems`` error
    (a ValueError) that ``_format_errors`` expands into one line per problem.
    """
    problems: list[str] = []
    validated: dict[str, Any] = {}
    for name, raw in values.items():
        where = prefix or name
        if name not in catalog.names(kind):
            problems.append(f"{where}: unknown {kind} {name!r}; allowed: {', '.join(catalog.names(kind))}")
            continue
        settings_model = catalog.settings_model(kind, name)
        raw = {} if raw is None else raw
        reported: set[str] = set()
        try:
            # The registries' Settings models live with their code and are lax; validate them as strictly as
            # the sections here (strict types) since they come from the same params file.
            validated[name] = settings_model.model_validate(raw, strict=True)
        except ValidationError as exc:
            problems += [f"{where}.{line}" for line in format_errors(exc, settings_model)]
            reported = {describe_loc(tuple(err["loc"])) for err in exc.errors()}
        # ...and refuse NaN/inf as the sections do (a Settings model cannot be given allow_inf_nan from here)
        problems += [f"{where}.{path}: Input should be a finite number (got {value!r})"
                     for path, value in _non_finite(raw) if path not in reported]
    if problems:
        raise PydanticCustomError("nested_problems", "{summary}", {"summary": "; ".join(problems),
                                                                   "problems": problems})
    return validated
