"""The pruning-method registry, in a leaf module: method modules import it to register themselves, and nothing
here imports them back (no import-order constraints). ``autos.pruners`` imports every method module.

``PRUNERS.register(name)`` names the class (``cls.name``) and checks it states its facts: ``Settings``, ``title``,
``kind``, ``needs_data``. ``PRUNERS.record(name)`` is the method's one record (``autos.registry.MethodRecord``):
config validation, the transfer stage, the report, the docs generator and the CLI all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from autos.pruners.base import Pruner
from autos.registry import METHOD_KINDS, MethodRecord, Registry

PrunerClass = type[Pruner[Any]]


class MethodRegistry(Registry[PrunerClass]):
    def register(self, name: str) -> Callable[[PrunerClass], PrunerClass]:
        add = super().register(name)

        def decorator(cls: PrunerClass) -> PrunerClass:
            if "name" in cls.__dict__:
                raise ValueError(f"method class {cls.__name__} is registered as {cls.name!r} already; subclass it to "
                                 f"register it as {name!r} too")
            settings = getattr(cls, "Settings", None)
            if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
                raise TypeError(f"method {name!r}: {cls.__name__}.Settings must be a pydantic model")
            if not cls.__dict__.get("title"):
                raise TypeError(f"method {name!r}: {cls.__name__} must set title (its name for people, e.g. 'SNIP')")
            if cls.kind not in METHOD_KINDS:
                raise ValueError(f"method {name!r}: kind {cls.kind!r}; allowed: {', '.join(METHOD_KINDS)}")
            cls.name = name
            return add(cls)

        return decorator

    def record(self, name: str) -> MethodRecord:
        cls = self.get(name)
        return MethodRecord(name=name, title=cls.title, kind=cls.kind, needs_data=cls.needs_data,
                            reads_scorer=cls.reads_scorer, settings=cls.Settings, module=cls.__module__)

    def records(self) -> dict[str, MethodRecord]:
        return {name: self.record(name) for name in self.names()}


PRUNERS = MethodRegistry("method")
