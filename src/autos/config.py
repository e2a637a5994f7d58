"""Typed, strict study configuration (one pydantic model per ``params.yaml`` section).

Unknown keys, wrong types, out-of-range values and unknown registry names all fail at load, together, each
with its dotted path and the allowed values (``ConfigError``). Models are frozen: config is read-only.
Registries are imported lazily inside validators so that library modules can import this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autos.errors import ConfigError

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
UnitOpen = Annotated[float, Field(gt=0, lt=1)]
Sparsity = Annotated[
    float, Field(gt=0, lt=1, description="fraction of prunable weights removed; must be in (0, 1)")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _registry(kind: str):  # noqa: ANN202 - returns a Registry
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
    raise ValueError(kind)


def _check_name(kind: str, name: str) -> str:
    registry = _registry(kind)
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; allowed: {', '.join(registry.names())}")
    return name


def _validate_settings(kind: str, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Validate per-name settings against each registered entry's ``Settings`` model; report every problem."""
    registry = _registry(kind)
    problems: list[str] = []
    validated: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in registry:
            problems.append(f"{name}: unknown {kind}; allowed: {', '.join(registry.names())}")
            continue
        settings_model = registry.get(name).Settings
        try:
            validated[name] = settings_model.model_validate(raw or {})
        except ValidationError as exc:
            problems += [f"{name}.{line}" for line in _format_errors(exc, settings_model)]
    if problems:
        raise ValueError("; ".join(problems))
    return validated


# --------------------------------------------------------------------------- sections


class TrainRecipe(Strict):
    """The one training recipe shared by every method in a study (fair comparison)."""

    epochs: PositiveInt = 160
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0)] = 5e-4
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: list[UnitOpen] = Field(
        default=[0.5, 0.75], description="multistep: fractions of the epochs at which lr is multiplied by gamma"
    )
    gamma: UnitOpen = 0.1
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    augment: bool = True
    channels_last: Literal["auto", "on", "off"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    eval_batch_size: PositiveInt = 512

    def with_epochs(self, epochs: int | None) -> TrainRecipe:
        return self if epochs is None else self.model_copy(update={"epochs": epochs})


class DatasetSettings(Strict):
    max_train_per_class: PositiveInt | None = None
    max_test_per_class: PositiveInt | None = None
    max_classes: PositiveInt | None = Field(
        default=None, description="keep the first N classes (official order); null keeps all"
    )
    image_size: Annotated[int, Field(ge=16, le=256)] | None = Field(
        default=None, description="resize to this size; null keeps the native size (CIFAR 32, Tiny ImageNet 64)"
    )


class DataConfig(Strict):
    search_dirs: list[str] = Field(
        default=["../shared/data"],
        description="folders searched (relative to the repo root) after $AUTOS_DATA_DIR for archives or folders",
    )
    download: bool = True
    download_dir: str = "data/downloads"
    datasets: dict[str, DatasetSettings]

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: dict[str, DatasetSettings]) -> dict[str, DatasetSettings]:
        for name in value:
            _check_name("dataset", name)
        return value


class ModelSpec(Strict):
    model: str
    width: PositiveInt = 64
    dataset: str
    epochs: PositiveInt | None = Field(default=None, description="overrides training.epochs for this model")

    _model = field_validator("model")(classmethod(lambda cls, v: _check_name("model", v)))
    _dataset = field_validator("dataset")(classmethod(lambda cls, v: _check_name("dataset", v)))


class PruningConfig(Strict):
    include_classifier: bool = Field(default=True, description="whether the final Linear weight is prunable")


class IRPConfig(Strict):
    num_rounds: Annotated[int, Field(ge=1, le=100)] = 20
    final_density: UnitOpen = 0.01
    schedule: Literal["linear", "geometric"] = "linear"
    criterion: Literal["magnitude", "snip"] = "magnitude"
    train_dense_first: bool = Field(
        default=True,
        description="train the dense net before the first pruning round (lottery-ticket IMP); the AutoS reference "
        "code scores the untrained init in round 0 (false)",
    )
    rewind_batchnorm: bool = Field(
        default=False, description="also rewind BN/bias state; the reference rewinds only conv/linear weights"
    )
    epochs_per_round: PositiveInt | None = None
    snip_batches: PositiveInt = Field(default=4, description="criterion=snip: batches of training data scored")


class FeaturesConfig(Strict):
    gradient_reduction: Literal["sum", "mean"] = Field(
        default="sum", description="sum of per-batch mean-loss gradients over the pass, as the reference code"
    )
    gradient_batch_size: PositiveInt = 256
    gradient_max_batches: PositiveInt | None = Field(default=None, description="null = the full training set")
    gradient_augment: bool = Field(default=True, description="the reference uses the training augmentation")
    extra: list[str] = Field(default_factory=list, description="extra feature columns stored in the table")

    @field_validator("extra")
    @classmethod
    def _known_extras(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_name("feature", name)
        return value


class ScorerConfig(Strict):
    name: str = "mlp"
    settings: dict[str, Any] = Field(default_factory=dict, description="the scorer's own settings")
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 1024
    lr: PositiveFloat = 1e-2
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    holdout_fraction: UnitOpen = 0.1
    max_train_rows: PositiveInt | None = Field(default=None, description="subsample training rows (logged)")
    max_eval_rows: PositiveInt | None = Field(
        default=500_000, description="held-out rows scored for the metrics (seeded subset; the paper net is slow)"
    )
    topk_densities: list[UnitOpen] = [0.5, 0.2, 0.1, 0.05, 0.01]
    seed: int = 0

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name("scorer", v)))

    @model_validator(mode="after")
    def _settings(self) -> ScorerConfig:
        _validate_settings("scorer", {self.name: self.settings})
        return self

    def scorer_settings(self) -> BaseModel:
        return _validate_settings("scorer", {self.name: self.settings})[self.name]


class TransferConfig(Strict):
    targets: dict[str, ModelSpec]
    methods: list[str]
    method_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sparsities: list[Sparsity]
    seeds: list[int] = [0]
    dense: bool = Field(default=True, description="also train each target dense (the sparsity-0 row)")
    modifiers: list[Literal["shuffle", "reinit", "invert"]] = Field(
        default_factory=list, description="sanity checks applied to every method's mask (Frankle et al. 2021)"
    )

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        problems = []
        for name in value:
            try:
                _check_name("method", name)
            except ValueError as exc:
                problems.append(str(exc))
        if len(set(value)) != len(value):
            problems.append("methods are listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("method_settings")
    @classmethod
    def _settings(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _validate_settings("method", value)
        return value

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not value:
            raise ValueError("at least one target is required")
        return value

    def settings_for(self, method: str) -> BaseModel:
        return _validate_settings("method", {method: self.method_settings.get(method, {})})[method]


class TrackingConfig(Strict):
    enabled: bool = True
    experiment: str = "autos"


class StudyConfig(Strict):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    training: TrainRecipe
    source: ModelSpec
    irp: IRPConfig
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    transfer: TransferConfig
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _datasets_declared(self) -> StudyConfig:
        problems = []
        specs = {"source": self.source, **{f"transfer.targets.{k}": v for k, v in self.transfer.targets.items()}}
        for path, spec in specs.items():
            if spec.dataset not in self.data.datasets:
                problems.append(
                    f"{path}.dataset: {spec.dataset!r} is not prepared; declare it under data.datasets "
                    f"(declared: {', '.join(self.data.datasets) or 'none'})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --------------------------------------------------------------------------- loading


def _describe_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the model that sits at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:  # dict[str, Model] or Model | None: step into the value type
            args = [a for a in getattr(current, "__args__", ()) if a is not type(None)]
            current = args[-1] if args else None
        while hasattr(current, "__args__") and not (isinstance(current, type) and issubclass(current, BaseModel)):
            if getattr(current, "__origin__", None) is dict:
                break
            args = [a for a in current.__args__ if a is not type(None)]
            current = args[0] if args else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _format_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{_describe_loc(loc)}: unknown key{hint}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        shown = err.get("input")
        if err["type"] == "missing":
            lines.append(f"{_describe_loc(loc)}: required key is missing")
        elif isinstance(shown, (dict, list)):
            lines.append(f"{_describe_loc(loc)}: {message}")
        else:
            lines.append(f"{_describe_loc(loc)}: {message} (got {shown!r})")
    return lines


def parse_config(raw: Any, source: str = "config") -> StudyConfig:
    if not isinstance(raw, dict):
        raise ConfigError([f"<root>: expected a mapping of sections, got {type(raw).__name__}"], source)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, StudyConfig), source) from None


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Load and validate a params file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    return parse_config(raw, str(path))
