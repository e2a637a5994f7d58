"""The ``transfer`` section: targets, the methods and their variants, sparsities, seeds, sanity checks; and the
``sources`` section: how many independent source runs feed the methods that read the AutoS scorer, and how they meet
the target seeds.

**A method's name says what ran.** Under a registered name (``transfer.methods: [magnitude]``), the settings that
change *what a method selects* (marked ``selection`` in its Settings: ``scope``, ``iterations``, ``invert``,
``layer_floor``, AutoS's ``within_layer``) keep the method's own defaults; other settings (batch sizes, numbers of
batches, precision) may be tuned in ``method_settings``. A different selection is a **variant**: declared under
``transfer.variants`` with a name of its own, the registered method it runs and its settings, it is listed in
``transfer.methods`` like any method and has its own rows, metrics keys, MLflow runs and verdicts::

    variants:
      magnitude_floor: {method: magnitude, settings: {layer_floor: 0.5}}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from autos.config.catalog import Catalog, _catalog, _check_name, _nonempty_unique, _validate_settings
from autos.config.limits import Seed, Sparsity, Strict, check_path_names, problems_error
from autos.config.sections import ModelSpec

_NOT_RESOLVED = ("typed settings exist only for a config validated with the registries' catalog: load it with "
                 "autos.study.load_study (or parse_study)")


class VariantSpec(Strict):
    """A registered method run with settings of its own, under a name of its own."""

    method: str = Field(description="the registered method it runs")
    settings: dict[str, Any] = Field(default_factory=dict, description="its settings (any, selection included)")
    title: str | None = Field(default=None, description="its name for people; null: the method's title and the "
                              "settings that differ from its defaults")


class SourcesConfig(Strict):
    """Independent runs of the source pipeline (IRP, features, scorer), and how their scorers meet target seeds."""

    seeds: list[Seed] = Field(default=[0], description="one source run per seed: its model init, data order, IRP, "
                              "g0 pass and scorer fit all follow it")
    pairing: Literal["crossed", "paired"] = Field(
        default="crossed", description="crossed: every source with every target seed; paired: source i with "
        "target seed i (as many sources as target seeds): independent (source, seed) pairs at a third of the cost")

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _nonempty_unique(v, "source seed")))


def selection_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of a Settings model that change what a method selects, with their defaults."""
    return {name: field.default for name, field in model.model_fields.items()
            if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("selection")}


def _selection_problems(catalog: Catalog, settings: dict[str, Any]) -> list[str]:
    """Selection settings changed under a registered method's own name (module docstring)."""
    problems = []
    for method, raw in settings.items():
        if method not in catalog.names("method") or not isinstance(raw, dict):
            continue
        for name, default in selection_fields(catalog.settings_model("method", method)).items():
            if name in raw and raw[name] != default:
                problems.append(
                    f"{method}.{name}: {raw[name]!r} changes what {method!r} selects (its own is "
                    f"{default!r}); declare it as a variant with a name of its own, e.g. transfer.variants."
                    f"{method}_{name}: {{method: {method}, settings: {{{name}: {raw[name]!r}}}}}")
    return problems


class TransferConfig(Strict):
    targets: dict[str, ModelSpec]
    # variants before methods: pydantic validates fields in order, and ``methods`` may name variants
    variants: dict[str, VariantSpec] = Field(
        default_factory=dict, description="a registered method with settings of its own, under a name of its own")
    methods: list[str] = Field(description="registered methods and variants (``variants``), in the tables' order")
    method_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="registered methods' settings; what changes the selection is a variant")
    validation_per_class: int = Field(
        default=0, ge=0, le=100_000, description="training images per class held out of every target's training "
        "set (seeded by ``seed``): the split variants are chosen on; 0: none")
    sparsities: list[Sparsity]
    seeds: list[Seed] = [0]
    dense: bool = Field(default=True, description="also train each target dense (the sparsity-0 row)")
    modifiers: list[str] = Field(
        default_factory=list, description="sanity checks applied to every method's mask (Frankle et al. 2021; "
        "autos.sweep.modifiers: shuffle, reinit, invert)"
    )
    modifier_methods: list[str] | None = Field(
        default=None,
        description="the methods the modifiers apply to (null: every method); e.g. [autos] asks only whether "
        "AutoS's effect comes from its per-layer densities (shuffle) at a fraction of the cost",
    )

    def modifiers_for(self, method: str) -> list[str]:
        """The sanity checks run on ``method``'s mask (none for the dense row)."""
        if self.modifier_methods is not None and method not in self.modifier_methods:
            return []
        return list(self.modifiers)

    @model_validator(mode="after")
    def _modifier_methods_listed(self) -> TransferConfig:
        unknown = [m for m in self.modifier_methods or [] if m not in self.methods]
        if unknown:
            raise ValueError(f"modifier_methods: {', '.join(map(repr, unknown))} not in transfer.methods "
                             f"(allowed: {', '.join(self.methods)})")
        return self

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str], info: ValidationInfo) -> list[str]:
        problems = []
        variants = (info.data or {}).get("variants") or {}  # validated before methods: declared first
        for name in value:
            if name in variants:
                continue
            try:
                _check_name("method", name, info)
            except ValueError as exc:
                problems.append(f"{exc} (or a variant declared under transfer.variants)")
        if not value:
            problems.append("at least one method is required")
        if len(set(value)) != len(value):
            problems.append("methods are listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    _sparsities = field_validator("sparsities")(classmethod(lambda cls, v: _nonempty_unique(v, "sparsity")))
    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _nonempty_unique(v, "seed")))

    @field_validator("method_settings")
    @classmethod
    def _settings(cls, value: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        catalog = _catalog(info)
        if catalog is not None:
            _validate_settings(catalog, "method", value)
            problems = _selection_problems(catalog, value)
            if problems:
                raise problems_error(problems)
        return value

    @field_validator("variants")
    @classmethod
    def _valid_variants(cls, value: dict[str, VariantSpec], info: ValidationInfo) -> dict[str, VariantSpec]:
        check_path_names("variant", value)  # a variant's name is a method name: rows, metric keys, file names
        catalog = _catalog(info)
        if catalog is None:
            return value
        problems = []
        for name, spec in value.items():
            if name in catalog.names("method"):
                problems.append(f"{name}: a variant needs a name of its own, not the registered method {name!r}")
            elif spec.method not in catalog.names("method"):
                problems.append(f"{name}.method: unknown method {spec.method!r}; allowed: "
                                f"{', '.join(catalog.names('method'))}")
            else:
                try:
                    _validate_settings(catalog, "method", {spec.method: spec.settings}, prefix=f"{name}.settings")
                except PydanticCustomError as exc:  # the problems, each with its path under the variant
                    problems += list((exc.context or {}).get("problems") or [str(exc)])
        if problems:
            raise problems_error(problems)
        return value

    @field_validator("modifiers")
    @classmethod
    def _known_modifiers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for name in value:
            _check_name("modifier", name, info)
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:  # would train the same variant twice and give duplicate rows
            raise ValueError(f"each modifier must be listed once; repeated: {', '.join(map(repr, repeated))}")
        return value

    _typed: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve_settings(self, info: ValidationInfo) -> TransferConfig:
        catalog = _catalog(info)
        if catalog is not None:  # valid by now (the field validators reported any problem): keep the typed values
            names = [m for m in dict.fromkeys([*self.methods, *self.method_settings]) if m not in self.variants]
            typed = _validate_settings(catalog, "method", {m: self.method_settings.get(m) for m in names})
            for name, spec in self.variants.items():
                typed[name] = _validate_settings(catalog, "method", {spec.method: spec.settings})[spec.method]
            self._typed = typed
        return self

    def registered(self, method: str) -> str:
        """The registered method that ``method`` (a registered name or a variant) runs."""
        spec = self.variants.get(method)
        return spec.method if spec is not None else method

    def settings_of(self, method: str) -> BaseModel:
        """The typed Settings ``method`` (a registered name or a variant) runs with, defaults filled in: validated
        once, at load (``autos.study.load_study``); the pruner receives this object."""
        try:
            return self._typed[method]
        except KeyError:
            if not self._typed:
                raise RuntimeError(_NOT_RESOLVED) from None
            raise KeyError(f"method {method!r} is not in this study (methods: {', '.join(self.methods)})") from None

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not value:  # e.g. `dvc exp run -S 'transfer.targets={}'`: a study with nothing to transfer to
            raise ValueError("at least one target is required")
        check_path_names("target", value)
        return value


