"""Typed, strict study configuration (one pydantic model per ``params.yaml`` section).

Unknown keys, wrong types, out-of-range values, unknown registry names and sections that contradict each other
all fail at load, together, each with its dotted path and the allowed values or range (``ConfigError``). Types
are strict: ``epochs: true`` or ``epochs: "3"`` is refused rather than coerced, and floats must be finite.
Models are frozen: config is read-only.

This module imports no registry (so every library module can import it, with no cycle, and loading a config costs
no torch import). Names, per-name settings and rules that need the registries are checked when a ``Catalog`` is
passed in the validation context: the composition root ``autos.study.load_study`` passes the real one; without
one (``load_config(path)``), only structure, types and ranges are validated.

Params files are read as YAML 1.2 (ruamel.yaml), the dialect ``dvc exp run -S`` writes them back in: there,
``off``/``on``/``yes``/``no`` are strings and ``1e-3`` is a float, whereas YAML 1.1 (PyYAML) would read a
rewritten ``channels_last: off`` as False.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from autos.config_errors import describe_loc, format_errors
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
    compile: bool = Field(default=False, description="torch.compile the forward (GPU; results agree with eager to "
                          "rounding, not to the bit)")
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
    def _known_datasets(cls, value: dict[str, DatasetSettings], info: ValidationInfo) -> dict[str, DatasetSettings]:
        for name in value:
            _check_name("dataset", name, info)
        return value


class ModelSpec(Strict):
    model: str
    width: PositiveInt = 64
    dataset: str
    epochs: PositiveInt | None = Field(default=None, description="overrides training.epochs for this model")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("model", value, info)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("dataset", value, info)


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
    def _known_extras(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for name in value:
            _check_name("feature", name, info)
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
    loss: Literal["mse", "pairwise"] = Field(
        default="mse",
        description="mse: regress the survival label (the paper); pairwise: a RankNet logistic loss on pairs of "
        "rows within a batch (any layers), so the scorer learns the global order the selection uses, not the "
        "label's scale",
    )
    extra_tables: list[str] = Field(
        default_factory=list,
        description="labelled feature tables of other source models (paths relative to the repo root, e.g. another "
        "study's data/features/source.parquet) pooled into the scorer's rows; the held-out metrics stay on this "
        "study's own source table (docs/sweeps.md: pooled sources)",
    )
    label: Literal["survival", "residual_rank"] = Field(
        default="survival",
        description="what the scorer regresses: survival (survived / num_rounds, the paper) or residual_rank (the "
        "within-layer survival percentile minus what the |w0| percentile predicts of it; autos.scorer.labels)",
    )
    label_bins: Annotated[int, Field(ge=2, le=10_000)] = Field(
        default=50, description="|w0| percentile bins of the magnitude curve (residual_rank only)"
    )

    _topk = field_validator("topk_densities")(classmethod(lambda cls, v: _nonempty_unique(v, "top-k density")))

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str, info: ValidationInfo) -> str:
        return _check_name("scorer", value, info)

    @model_validator(mode="after")
    def _label_with_tables(self) -> ScorerConfig:
        if self.label == "residual_rank" and self.extra_tables:
            raise ValueError("label: 'residual_rank' is fitted on this study's own source table and cannot pool "
                             "extra_tables; with extra_tables the allowed label is 'survival'")
        return self

    @model_validator(mode="after")
    def _settings(self, info: ValidationInfo) -> ScorerConfig:
        catalog = _catalog(info)
        if catalog is not None:
            _validate_settings(catalog, "scorer", {self.name: self.settings}, prefix="settings")
        return self


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
        for name in value:
            try:
                _check_name("method", name, info)
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
    def _settings(cls, value: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        catalog = _catalog(info)
        if catalog is not None:
            _validate_settings(catalog, "method", value)
        return value

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if not value:
            raise ValueError("at least one target is required")
        return value


class TrackingConfig(Strict):
    enabled: bool = True
    experiment: str = "autos"

    @field_validator("experiment")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():  # MLflow would file the runs under an unnamed experiment, or fail mid-stage
            raise ValueError("the MLflow experiment name must not be empty")
        return value


class ExecutionConfig(Strict):
    """How the transfer stage runs its cells (autos.executors). It changes where work runs, not what it computes,
    so it is no DVC param: switching backend re-runs nothing. CPU results depend on the torch thread count, so
    compare backends at the same ``num_cpus``."""

    backend: Literal["local", "ray"] = Field(default="local", description="local: in the stage process, in order")
    address: str | None = Field(
        default=None, description="ray: an existing cluster (host:port, 'auto' or ray://...); null: $RAY_ADDRESS, "
        "else an embedded local instance")
    num_cpus: Annotated[float, Field(gt=0, le=1024)] | None = Field(
        default=None, description="CPUs per cell (torch threads = its integer part); null: all of them locally, "
        "1 on Ray")
    num_gpus: Annotated[float, Field(ge=0, le=64)] = Field(
        default=0.0, description="GPUs per cell on Ray; fractions pack several cells on one GPU")
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="ray: retries of a failed cell (exception, out of memory, lost worker)")


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
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @field_validator("device")
    @classmethod
    def _device_present(cls, value: str) -> str:
        if value == "cuda":
            import torch  # only here: loading a config asks nothing of torch otherwise

            if not torch.cuda.is_available():
                raise ValueError("CUDA is not available on this machine; allowed here: 'auto', 'cpu'")
        return value

    @model_validator(mode="after")
    def _sections_agree(self, info: ValidationInfo) -> StudyConfig:
        problems = _cross_section_problems(self.data, _model_specs(self.source, self.transfer.targets),
                                           self.features, self.scorer, _catalog(info))
        if problems:
            # one error carrying every problem (full dotted paths), expanded into lines by _format_errors
            raise PydanticCustomError("nested_problems", "{summary}", {"summary": "; ".join(problems),
                                                                       "problems": problems})
        return self


def _model_specs(source: ModelSpec | None, targets: Mapping[str, ModelSpec | None]) -> dict[str, ModelSpec | None]:
    return {"source": source, **{f"transfer.targets.{k}": v for k, v in targets.items()}}


def _cross_section_problems(data: DataConfig | None, specs: dict[str, ModelSpec | None],
                            features: FeaturesConfig | None, scorer: ScorerConfig | None,
                            catalog: Catalog | None) -> list[str]:
    """Problems that only show when two sections are read together (None: that section is itself invalid)."""
    problems = []
    if data is not None:
        for path, spec in specs.items():
            if spec is not None and spec.dataset not in data.datasets:
                problems.append(
                    f"{path}.dataset: {spec.dataset!r} is not prepared; declare it under data.datasets "
                    f"(declared: {', '.join(data.datasets) or 'none'})"
                )
    if features is not None and scorer is not None and catalog is not None:
        # The scorer is trained on the source's feature table, which holds w0, g0 and features.extra only; a
        # missing column would otherwise fail in train_scorer, after the (long) IRP and features stages.
        settings = _validate_settings(catalog, "scorer", {scorer.name: scorer.settings}, prefix="settings")
        missing = [c for c in catalog.extra_inputs(scorer.name, settings[scorer.name]) if c not in features.extra]
        if missing:
            where = "" if "inputs" in scorer.settings else f" (the {scorer.name!r} scorer's default inputs)"
            problems.append(
                f"scorer.settings.inputs: column(s) {', '.join(missing)}{where} are not in the feature table; add "
                f"them to features.extra (the table has: {', '.join([*catalog.base_inputs(), *features.extra])})"
            )
    return problems


def _salvage_cross_section_problems(raw: dict[str, Any], catalog: Catalog | None) -> list[str]:
    """Cross-section problems of a config that has other errors too, from the keys each check reads.

    Pydantic skips ``StudyConfig``'s model validator when any field fails, so without this a user would meet
    e.g. a scorer/features mismatch only after fixing an unrelated typo. Each check is given a section built
    from only the keys it reads (the rest defaulted), so that e.g. a bad ``scorer.lr`` does not hide it.
    """

    def subset(model: type[Strict], section: Any, keys: tuple[str, ...]) -> Any:
        if not isinstance(section, dict):  # a missing required section or a wrong type: reported already
            return None
        try:
            return model.model_validate({k: section[k] for k in keys if k in section}, context=context)
        except ValidationError:  # those keys themselves are invalid: reported already
            return None

    context = {"catalog": catalog}
    transfer = raw.get("transfer")
    targets = transfer.get("targets") if isinstance(transfer, dict) else None
    spec_keys = ("model", "dataset")
    specs = {k: subset(ModelSpec, v, spec_keys) for k, v in targets.items()} if isinstance(targets, dict) else {}
    return _cross_section_problems(
        subset(DataConfig, raw.get("data"), ("datasets",)),
        _model_specs(subset(ModelSpec, raw.get("source"), spec_keys), specs),
        subset(FeaturesConfig, raw.get("features", {}), ("extra",)),
        subset(ScorerConfig, raw.get("scorer", {}), ("name", "settings")),
        catalog,
    )


# --------------------------------------------------------------------------- loading


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
