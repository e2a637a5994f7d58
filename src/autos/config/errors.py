"""Turning pydantic validation errors into the lines a user reads: one per problem, with its dotted path, what
was given, and the allowed keys, values or range (read off the config models' own annotations)."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError


def describe_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def _unwrap(tp: Any, constraints: list[Any]) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` (collecting its constraints) and ``X | None`` from a type annotation."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extras = get_args(tp)
            for extra in extras:  # a pydantic FieldInfo carries its constraints in .metadata
                constraints = [*constraints, *getattr(extra, "metadata", [extra])]
            tp = base
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, constraints
            tp = args[0]
        else:
            return tp, constraints


def _node_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, list[Any]]:
    """The type at ``loc`` (an error location) inside ``model``, and the constraints on it; (None, []) if lost."""
    current: Any = model
    constraints: list[Any] = []
    for part in loc:
        current, constraints = _unwrap(current, constraints)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None, []
            current, constraints = field.annotation, list(field.metadata)
        elif get_origin(current) in (list, dict):  # a list index or a dict key: step into the item type
            current, constraints = get_args(current)[-1], []
        else:
            return None, []
    return _unwrap(current, constraints)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the model that sits at ``loc`` (for 'unknown key' messages)."""
    current, _ = _node_at(model, loc)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _allowed_range(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The interval a numeric field allows, e.g. '[1, 65536]' or '(0, inf)'; None if unbounded or unknown."""
    _, constraints = _node_at(model, loc)
    low, high = "(-inf", "inf)"
    for c in constraints:
        if isinstance(c, annotated_types.Gt):
            low = f"({c.gt}"
        elif isinstance(c, annotated_types.Ge):
            low = f"[{c.ge}"
        elif isinstance(c, annotated_types.Lt):
            high = f"{c.lt})"
        elif isinstance(c, annotated_types.Le):
            high = f"{c.le}]"
    return None if (low, high) == ("(-inf", "inf)") else f"{low}, {high}"


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
                 "int_type", "float_type"}


def format_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{describe_loc(loc)}: unknown key{hint}")
            continue
        if err["type"] == "nested_problems":  # several problems, each with a dotted path relative to loc
            lines += [f"{describe_loc(loc)}.{problem}" if loc else problem for problem in err["ctx"]["problems"]]
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] in _BOUND_ERRORS and (interval := _allowed_range(model, loc)):
            message += f"; allowed range: {interval}"
        elif err["type"] == "bool_type":  # YAML 1.2: yes/no/on/off are strings, not booleans
            message += "; allowed: true, false"
        shown = err.get("input")
        if err["type"] == "missing":
            lines.append(f"{describe_loc(loc)}: required key is missing")
        elif isinstance(shown, (dict, list)):
            lines.append(f"{describe_loc(loc)}: {message}")
        else:
            lines.append(f"{describe_loc(loc)}: {message} (got {shown!r})")
    return lines
