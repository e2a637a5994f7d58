"""Typed, strict study configuration (one pydantic model per ``params.yaml`` section).

Unknown keys, wrong types, out-of-range values, unknown registry names and sections that contradict each other
all fail at load, together, each with its dotted path and the allowed values or range (``ConfigError``). Types
are strict: ``epochs: true`` or ``epochs: "3"`` is refused rather than coerced, and floats must be finite.
Models are frozen: config is read-only. Every bound, with its reason, is in ``autos.config.limits``; the
``execution`` section is in ``autos.config.execution``.

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

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from autos.config.catalog import _catalog, _check_name, _nonempty_unique, _validate_settings
from autos.config.errors import format_errors
from autos.config.limits import (
    MAX_EPOCHS,
    MAX_EXPERIMENT_NAME,
    MAX_SCORER_BATCH_SIZE,
    MAX_WIDTH,
    BatchSize,
    Epochs,
    LearningRate,
    PositiveInt,
    Seed,
    Strict,
    UnitOpen,
    check_path_names,
    parquet_problem,
    problems_error,
)
from autos.config.root import project_root
from autos.errors import ConfigError

_NOT_RESOLVED = ("typed settings exist only for a config validated with the registries' catalog: load it with "
                 "autos.study.load_study (or parse_study)")


# --------------------------------------------------------------------------- sections


class TrainRecipe(Strict):
    """The one training recipe shared by every method in a study (fair comparison)."""

    epochs: Epochs = 160
    batch_size: BatchSize = 128
    lr: LearningRate = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0)] = 5e-4
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: list[UnitOpen] = Field(
        default=[0.5, 0.75], description="multistep: fractions of the epochs at which lr is multiplied by gamma"
    )
    gamma: UnitOpen = 0.1
    warmup_epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = Field(
        default=0, description="linear warmup of the lr over the first epochs; must end before the last epoch")
    augment: bool = True
    channels_last: Literal["auto", "on", "off"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = Field(default=False, description="torch.compile the forward (GPU; results agree with eager to "
                          "rounding, not to the bit)")
    cuda_graph: bool = Field(default=False, description="capture the training step in one CUDA graph and replay it "
                             "(GPU only; fused SGD, results agree with eager to rounding; autos.training.graph_step)")
    eval_batch_size: BatchSize = 512

    @model_validator(mode="after")
    def _one_of_compile_and_graph(self) -> TrainRecipe:
        if self.compile and self.cuda_graph:
            raise problems_error(["cuda_graph: true with compile: true; a compiled forward cannot be captured as "
                                  "written here: choose one (cuda_graph replaces the launches compile saves); "
                                  "allowed: at most one of compile and cuda_graph"])
        return self

    @model_validator(mode="after")
    def _warmup_ends(self) -> TrainRecipe:
        # The lr would still be warming up at the last epoch: the schedule (cosine, steps) would never apply.
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise problems_error([f"warmup_epochs: {self.warmup_epochs} is not shorter than the {self.epochs} epochs "
                                  "trained, so the lr would still be warming up at the end and the schedule never "
                                  f"applies; allowed: 0..{self.epochs - 1}"])
        return self

    def with_epochs(self, epochs: int | None) -> TrainRecipe:
        """This recipe trained for ``epochs`` (None: unchanged), validated like the recipe itself: an override
        shorter than the warmup is a ConfigError, not a run that never leaves its warmup."""
        if epochs is None:
            return self
        try:
            return TrainRecipe.model_validate({**self.model_dump(), "epochs": epochs})
        except ValidationError as exc:
            raise ConfigError([f"epochs override {epochs!r}: {line}" for line in format_errors(exc, TrainRecipe)],
                              "training recipe") from None


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
        check_path_names("dataset", value)
        for name in value:
            _check_name("dataset", name, info)
        return value


class ModelSpec(Strict):
    model: str
    width: Annotated[int, Field(ge=1, le=MAX_WIDTH)] = 64
    dataset: str
    epochs: Epochs | None = Field(default=None, description="overrides training.epochs for this model (targets only)")

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
    # survival counts are int8 (0..num_rounds <= 127); 100 rounds of 20% pruning leave 2e-10 of the weights
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
    epochs_per_round: Epochs | None = Field(default=None, description="null: training.epochs")
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
    epochs: Epochs = 10
    batch_size: Annotated[int, Field(ge=1, le=MAX_SCORER_BATCH_SIZE)] = 1024
    lr: LearningRate = 1e-2  # Adam: a step moves each weight by about lr, so > 10 is never a useful rate either
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
        "study's data/features/<source>/source.parquet) pooled into the scorer's rows; the held-out metrics stay on "
        "this study's own source table (docs/sweeps.md: pooled sources)",
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

    @field_validator("extra_tables")
    @classmethod
    def _tables_exist(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # Checked in full validation (with the registries' catalog: what stages load), against the study root: a
        # missing or wrong file would otherwise fail train_scorer after the long IRP and features stages.
        if _catalog(info) is not None:
            problems = [f"{i}: {p}" for i, path in enumerate(value) if (p := parquet_problem(path, project_root()))]
            if problems:
                raise problems_error(problems)
        return value

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


class TrackingConfig(Strict):
    enabled: bool = True
    experiment: str = "autos"

    @field_validator("experiment")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():  # MLflow would file the runs under an unnamed experiment, or fail mid-stage
            raise ValueError("the MLflow experiment name must not be empty")
        if len(value) > MAX_EXPERIMENT_NAME:
            raise ValueError(f"the MLflow experiment name is {len(value)} characters long; allowed: at most "
                             f"{MAX_EXPERIMENT_NAME} (MLflow's SQL store column)")
        return value
