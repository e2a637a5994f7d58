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

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from autos.config.catalog import _catalog, _check_name, _nonempty_unique, _validate_settings

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


_NOT_RESOLVED = ("typed settings exist only for a config validated with the registries' catalog: load it with "
                 "autos.study.load_study (or parse_study)")


class Strict(BaseModel):
    # strict: no coercion, so a YAML boolean or quoted number where a number belongs is an error rather than 1
    # or 3 (ints are still accepted for floats); allow_inf_nan=False: a NaN/inf lr would only show up as a
    # diverged run hours later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
            self._typed = _validate_settings(catalog, "scorer", {self.name: self.settings}, prefix="settings")[
                self.name]
        return self

    _typed: BaseModel | None = PrivateAttr(default=None)

    @property
    def typed_settings(self) -> BaseModel:
        """``settings`` as the scorer's typed Settings, defaults filled in: validated once, at load."""
        if self._typed is None:
            raise RuntimeError(_NOT_RESOLVED)
        return self._typed


class TransferConfig(Strict):
    targets: dict[str, ModelSpec]
    methods: list[str]
    method_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
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
        if catalog is not None:  # valid by now (the field validator reported any problem): keep the typed values
            names = dict.fromkeys([*self.methods, *self.method_settings])
            self._typed = _validate_settings(catalog, "method", {m: self.method_settings.get(m) for m in names})
        return self

    def settings_of(self, method: str) -> BaseModel:
        """``method_settings.<method>`` as the method's typed Settings, defaults filled in: validated once, at load
        (``autos.study.load_study``); the pruner receives this object."""
        try:
            return self._typed[method]
        except KeyError:
            if not self._typed:
                raise RuntimeError(_NOT_RESOLVED) from None
            raise KeyError(f"method {method!r} is not in this study (methods: {', '.join(self.methods)})") from None

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
    """How the transfer stage runs its cells (autos.sweep.executors). It changes where work runs, not what it computes,
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
