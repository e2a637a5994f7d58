"""The whole params file as one model (``StudyConfig``) and the rules that read two sections together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from autos.config.catalog import Catalog, _catalog, _validate_settings
from autos.config.execution import ExecutionConfig
from autos.config.limits import Seed, Strict, problems_error
from autos.config.report import ReportConfig
from autos.config.sections import (
    DataConfig,
    FeaturesConfig,
    IRPConfig,
    ModelSpec,
    PruningConfig,
    ScorerConfig,
    TrackingConfig,
    TrainRecipe,
)
from autos.config.transfer import SourcesConfig, TransferConfig


class StudyConfig(Strict):
    plugins: list[str] = Field(
        default_factory=list, description="modules imported before anything else (``autos.study.load_plugins``): "
        "out-of-tree methods, models or datasets that register themselves, e.g. my_package.my_methods")
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
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
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
        problems += _epoch_problems(self.training, self.source, self.transfer.targets, self.irp)
        problems += _design_problems(self.transfer, self.sources, self.report, _catalog(info))
        if problems:
            # one error carrying every problem (full dotted paths), expanded into lines by format_errors
            raise problems_error(problems)
        return self


def _model_specs(source: ModelSpec | None, targets: Mapping[str, ModelSpec | None]) -> dict[str, ModelSpec | None]:
    return {"source": source, **{f"transfer.targets.{k}": v for k, v in targets.items()}}


def _epoch_problems(training: TrainRecipe | None, source: ModelSpec | None,
                    targets: Mapping[str, ModelSpec | None], irp: IRPConfig | None) -> list[str]:
    """Epoch counts that override ``training.epochs`` but end within its warmup (the schedule would never start),
    and ``source.epochs``, which nothing reads (the source is trained by IRP: irp.epochs_per_round)."""
    problems = []
    if source is not None and source.epochs is not None:
        problems.append(f"source.epochs: {source.epochs} would not apply: the source is trained by IRP, for "
                        "irp.epochs_per_round epochs per round (null: training.epochs); allowed: null")
    if training is None or not training.warmup_epochs:
        return problems
    overrides = {f"transfer.targets.{k}.epochs": v.epochs for k, v in targets.items() if v is not None}
    overrides["irp.epochs_per_round"] = irp.epochs_per_round if irp is not None else None
    for path, epochs in overrides.items():
        if epochs is not None and epochs <= training.warmup_epochs:
            problems.append(f"{path}: {epochs} epochs end within training.warmup_epochs ({training.warmup_epochs}), "
                            f"so the lr schedule never starts; allowed: at least {training.warmup_epochs + 1}")
    return problems


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
    spec_keys = ("model", "dataset", "epochs")
    specs = {k: subset(ModelSpec, v, spec_keys) for k, v in targets.items()} if isinstance(targets, dict) else {}
    source = subset(ModelSpec, raw.get("source"), spec_keys)
    problems = _cross_section_problems(
        subset(DataConfig, raw.get("data"), ("datasets",)),
        _model_specs(source, specs),
        subset(FeaturesConfig, raw.get("features", {}), ("extra",)),
        subset(ScorerConfig, raw.get("scorer", {}), ("name", "settings")),
        catalog,
    )
    return problems + _epoch_problems(subset(TrainRecipe, raw.get("training"), ("epochs", "warmup_epochs")), source,
                                      specs, subset(IRPConfig, raw.get("irp"), ("epochs_per_round",)))


def _design_problems(transfer: TransferConfig, sources: SourcesConfig, report: ReportConfig,
                     catalog: Catalog | None) -> list[str]:
    """What the report's verdicts and the sources' pairing ask of the transfer section."""
    # a method under test that does not run in this study has no verdict (the report says so); a name that is
    # neither a registered method nor a declared variant is a typo
    known = [*transfer.methods, *transfer.variants, *(catalog.names("method") if catalog is not None else [])]
    problems = [f"report.under_test: {name!r} is no method of this study (allowed: {', '.join(transfer.methods)} or "
                "a registered method)" for name in report.under_test if catalog is not None and name not in known]
    if sources.pairing == "paired" and len(sources.seeds) != len(transfer.seeds):
        problems.append(f"sources.pairing: 'paired' meets source i with target seed i, so it needs as many sources "
                        f"as target seeds; got {len(sources.seeds)} source seed(s) and {len(transfer.seeds)} target "
                        "seed(s) (allowed: equal counts, or pairing 'crossed')")
    return problems
