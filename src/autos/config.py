"""Typed, strict study configuration (one pydantic model per ``params.yaml`` section).

Unknown keys, wrong types, out-of-range values, unknown registry names and sections that contradict each other
all fail at load, together, each with its dotted path and the allowed values or range (``ConfigError``). Types
are strict: ``epochs: true`` or ``epochs: "3"`` is refused rather than coerced, and floats must be finite.
Models are frozen: config is read-only. Registries are imported lazily inside validators so that library
modules can import this one.

Params files are read as YAML 1.2 (ruamel.yaml), the dialect ``dvc exp run -S`` writes them back in: there,
``off``/``on``/``yes``/``no`` are strings and ``1e-3`` is a float, whereas YAML 1.1 (PyYAML) would read a
rewritten ``channels_last: off`` as False.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from autos.errors import ConfigError

MAX_BATCH_SIZE = 65536  # images per step: far beyond any GPU's memory for these models, so surely a typo
MAX_SCORER_BATCH_SIZE = 2**22  # rows of the feature table per step (a row is a few floats)
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (and many libraries) accept [0, 2**32)

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
UnitOpen = Annotated[float, Field(gt=0, lt=1)]
Sparsity = Annotated[
    float, Field(gt=0, lt=1, description="fraction of prunable weights removed; must be in (0, 1)")
]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]  # np.random.default_rng refuses negative seeds mid-stage


class Strict(BaseModel):
    # strict: no coercion, so a YAML boolean or quoted number where a number belongs is an error rather than 1
    # or 3 (ints are still accepted for floats); allow_inf_nan=False: a NaN/inf lr would only show up as a
    # diverged run hours later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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


def _validate_settings(kind: str, values: dict[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """Validate per-name settings against each registered entry's ``Settings`` model; report every problem.

    Problems are dotted paths relative to the field holding ``values``: ``<name>.<key>``, or ``<prefix>.<key>``
    when the settings sit under a fixed key (``scorer.settings``). Raised as one ``nested_problems`` error
    (a ValueError) that ``_format_errors`` expands into one line per problem.
    """
    registry = _registry(kind)
    problems: list[str] = []
    validated: dict[str, Any] = {}
    for name, raw in values.items():
        where = prefix or name
        if name not in registry:
            problems.append(f"{where}: unknown {kind} {name!r}; allowed: {', '.join(registry.names())}")
            continue
        settings_model = registry.get(name).Settings
        raw = {} if raw is None else raw
        reported: set[str] = set()
        try:
            # The registries' Settings models live with their code and are lax; validate them as strictly as
            # the sections here (strict types) since they come from the same params file.
            validated[name] = settings_model.model_validate(raw, strict=True)
        except ValidationError as exc:
            problems += [f"{where}.{line}" for line in _format_errors(exc, settings_model)]
            reported = {_describe_loc(tuple(err["loc"])) for err in exc.errors()}
        # ...and refuse NaN/inf as the sections do (a Settings model cannot be given allow_inf_nan from here)
        problems += [f"{where}.{path}: Input should be a finite number (got {value!r})"
                     for path, value in _non_finite(raw) if path not in reported]
    if problems:
        raise PydanticCustomError("nested_problems", "{summary}", {"summary": "; ".join(problems),
                                                                   "problems": problems})
    return validated


# --------------------------------------------------------------------------- sections


class TrainRecipe(Strict):
    """The one training recipe shared by every method in a study (fair comparison)."""

    epochs: PositiveInt = 160
    batch_size: BatchSize = 128
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
    eval_batch_size: BatchSize = 512

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
    gradient_batch_size: BatchSize = 256
    gradient_max_batches: PositiveInt | None = Field(default=None, description="null = the full training set")
    gradient_augment: bool = Field(default=True, description="the reference uses the training augmentation")
    extra: list[str] = Field(default_factory=list, description="extra feature columns stored in the table")

    @field_validator("extra")
    @classmethod
    def _known_extras(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_name("feature", name)
        if len(set(value)) != len(value):  # would be two columns of one name in the Parquet table
            raise ValueError(f"extra feature columns are listed twice: {value}")
        return value


class ScorerConfig(Strict):
    name: str = "mlp"
    settings: dict[str, Any] = Field(default_factory=dict, description="the scorer's own settings")
    epochs: PositiveInt = 10
    batch_size: Annotated[int, Field(ge=1, le=MAX_SCORER_BATCH_SIZE)] = 1024
    lr: PositiveFloat = 1e-2
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    holdout_fraction: UnitOpen = 0.1
    max_train_rows: PositiveInt | None = Field(default=None, description="subsample training rows (logged)")
    max_eval_rows: PositiveInt | None = Field(
        default=500_000, description="held-out rows scored for the metrics (seeded subset; the paper net is slow)"
    )
    topk_densities: list[UnitOpen] = [0.5, 0.2, 0.1, 0.05, 0.01]
    seed: Seed = 0

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name("scorer", v)))
    _topk = field_validator("topk_densities")(classmethod(lambda cls, v: _nonempty_unique(v, "top-k density")))

    @model_validator(mode="after")
    def _settings(self) -> ScorerConfig:
        _validate_settings("scorer", {self.name: self.settings}, prefix="settings")
        return self

    def scorer_settings(self) -> BaseModel:
        return _validate_settings("scorer", {self.name: self.settings}, prefix="settings")[self.name]


class TransferConfig(Strict):
    targets: dict[str, ModelSpec]
    methods: list[str]
    method_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sparsities: list[Sparsity]
    seeds: list[Seed] = [0]
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

    @field_validator("experiment")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():  # MLflow would file the runs under an unnamed experiment, or fail mid-stage
            raise ValueError("the MLflow experiment name must not be empty")
        return value


class StudyConfig(Strict):
    seed: Seed = 0
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

    @field_validator("device")
    @classmethod
    def _device_present(cls, value: str) -> str:
        if value == "cuda":
            import torch  # only here: loading a config asks nothing of torch otherwise

            if not torch.cuda.is_available():
                raise ValueError("CUDA is not available on this machine; allowed here: 'auto', 'cpu'")
        return value

    @model_validator(mode="after")
    def _sections_agree(self) -> StudyConfig:
        problems = _cross_section_problems(self.data, _model_specs(self.source, self.transfer.targets),
                                           self.features, self.scorer)
        if problems:
            # one error carrying every problem (full dotted paths), expanded into lines by _format_errors
            raise PydanticCustomError("nested_problems", "{summary}", {"summary": "; ".join(problems),
                                                                       "problems": problems})
        return self


def _model_specs(source: ModelSpec | None, targets: Mapping[str, ModelSpec | None]) -> dict[str, ModelSpec | None]:
    return {"source": source, **{f"transfer.targets.{k}": v for k, v in targets.items()}}


def _cross_section_problems(data: DataConfig | None, specs: dict[str, ModelSpec | None],
                            features: FeaturesConfig | None, scorer: ScorerConfig | None) -> list[str]:
    """Problems that only show when two sections are read together (None: that section is itself invalid)."""
    problems = []
    if data is not None:
        for path, spec in specs.items():
            if spec is not None and spec.dataset not in data.datasets:
                problems.append(
                    f"{path}.dataset: {spec.dataset!r} is not prepared; declare it under data.datasets "
                    f"(declared: {', '.join(data.datasets) or 'none'})"
                )
    if features is not None and scorer is not None:
        # The scorer is trained on the source's feature table, which holds w0, g0 and features.extra only; a
        # missing column would otherwise fail in train_scorer, after the (long) IRP and features stages.
        from autos.scorer import BASE_INPUTS, required_extra

        missing = [c for c in required_extra(scorer.scorer_settings()) if c not in features.extra]
        if missing:
            where = "" if "inputs" in scorer.settings else f" (the {scorer.name!r} scorer's default inputs)"
            problems.append(
                f"scorer.settings.inputs: column(s) {', '.join(missing)}{where} are not in the feature table; add "
                f"them to features.extra (the table has: {', '.join([*BASE_INPUTS, *features.extra])})"
            )
    return problems


def _salvage_cross_section_problems(raw: dict[str, Any]) -> list[str]:
    """Cross-section problems of a config that has other errors too, from the keys each check reads.

    Pydantic skips ``StudyConfig``'s model validator when any field fails, so without this a user would meet
    e.g. a scorer/features mismatch only after fixing an unrelated typo. Each check is given a section built
    from only the keys it reads (the rest defaulted), so that e.g. a bad ``scorer.lr`` does not hide it.
    """

    def subset(model: type[Strict], section: Any, keys: tuple[str, ...]) -> Any:
        if not isinstance(section, dict):  # a missing required section or a wrong type: reported already
            return None
        try:
            return model.model_validate({k: section[k] for k in keys if k in section})
        except ValidationError:  # those keys themselves are invalid: reported already
            return None

    transfer = raw.get("transfer")
    targets = transfer.get("targets") if isinstance(transfer, dict) else None
    spec_keys = ("model", "dataset")
    specs = {k: subset(ModelSpec, v, spec_keys) for k, v in targets.items()} if isinstance(targets, dict) else {}
    return _cross_section_problems(
        subset(DataConfig, raw.get("data"), ("datasets",)),
        _model_specs(subset(ModelSpec, raw.get("source"), spec_keys), specs),
        subset(FeaturesConfig, raw.get("features", {}), ("extra",)),
        subset(ScorerConfig, raw.get("scorer", {}), ("name", "settings")),
    )


# --------------------------------------------------------------------------- loading


def _describe_loc(loc: tuple[Any, ...]) -> str:
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


def _format_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{_describe_loc(loc)}: unknown key{hint}")
            continue
        if err["type"] == "nested_problems":  # several problems, each with a dotted path relative to loc
            lines += [f"{_describe_loc(loc)}.{problem}" if loc else problem for problem in err["ctx"]["problems"]]
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] in _BOUND_ERRORS and (interval := _allowed_range(model, loc)):
            message += f"; allowed range: {interval}"
        elif err["type"] == "bool_type":  # YAML 1.2: yes/no/on/off are strings, not booleans
            message += "; allowed: true, false"
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
        problems = _format_errors(exc, StudyConfig)
        if any(err["loc"] for err in exc.errors()):  # a field failed, so StudyConfig's model validator did not run
            problems += _salvage_cross_section_problems(raw)
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


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Load and validate a params file; raises ConfigError listing every problem."""
    return parse_config(read_params(path), str(path))
