"""Name -> factory registries (models, datasets, pruners, scorers).

Usage::

    MODELS = Registry("model")

    @MODELS.register("resnet18")
    def resnet18(...): ...

    MODELS.get("resnet18")  # unknown names raise KeyError naming the allowed ones
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the allowed names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# --------------------------------------------------------------------------- the record of a pruning method

MethodKind = Literal["pai", "early", "trained"]
"""``pai``: selects at initialization; ``early``: trains a little first; ``trained``: needs a trained model."""
METHOD_KINDS: tuple[MethodKind, ...] = get_args(MethodKind)


@dataclass(frozen=True)
class MethodRecord:
    """Everything the project knows about a registered pruning method, read off its class by
    ``autos.pruners.PRUNERS.record(name)``: the one place these facts live. Torch-free, so the report and the docs
    can hold records without importing a method."""

    name: str  # the registry name: transfer.methods, results rows, metrics keys, MLflow runs
    title: str  # for people: figures, tables' captions, sentences ("SynFlow")
    kind: MethodKind
    needs_data: bool
    reads_scorer: bool  # reads the study's trained AutoS scorer: its cells re-run when the scorer changes
    settings: type[Any]  # the method's pydantic Settings model
    module: str  # where it lives (``autos.pruners.synflow``)
    variant_of: str | None = None  # a variant (``transfer.variants``): the registered method it runs
    variant_settings: dict[str, Any] | None = None  # ...and the settings it runs with (the given ones)
