"""The one typed record of a transfer run, shared by ``autos.sweep.run_cell``, its stage and the report.

``RunKey`` names a run: (target, method, sparsity, seed, modifier). ``run_label`` is the one label function,
``method`` or ``method+modifier``; every other name derives from it: ``RunKey.name`` / ``RunKey.title`` (the
MLflow run and the progress bar), ``RunKey.metric_key`` (the keys of ``metrics/transfer_<target>.json``) and
``label_of(row)``, the label of a results row, whose output equals ``autos.report``'s ``run_label(row)`` for every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


def run_label(method: str, modifier: str | None = None) -> str:
    """``method``, or ``method+modifier`` for a sanity-check variant (no modifier: None or '')."""
    return f"{method}+{modifier}" if modifier else str(method)


def label_of(row: Mapping[str, Any]) -> str:
    """The label of a results row (``method`` and an optional ``modifier``, '' or missing when none)."""
    return run_label(row["method"], row.get("modifier") or None)


@dataclass(frozen=True)
class RunKey:
    """What identifies one transfer run; the dense run is method ``dense`` at sparsity 0."""

    target: str
    method: str
    sparsity: float  # 0.0 = dense
    seed: int
    modifier: str | None = None  # a sanity check (``autos.sweep.modifiers``), None for the method's own mask
    source: int | None = None  # the source run whose scorer the method read (methods that read one)

    @classmethod
    def of_row(cls, row: Mapping[str, Any], target: str | None = None) -> RunKey:
        """The key of a results row; ``target`` when the row does not carry one (rows inside a target's file)."""
        return cls(target=str(row.get("target", target)), method=str(row["method"]), sparsity=float(row["sparsity"]),
                   seed=int(row["seed"]), modifier=row.get("modifier") or None, source=row.get("source"))

    @property
    def label(self) -> str:
        return run_label(self.method, self.modifier)

    @property
    def name(self) -> str:
        """``<label> / s=<sparsity %> / seed <n>`` (the dense run: ``dense / seed <n>``): the run within a target."""
        if self.method == "dense":
            return f"{self.label} / seed {self.seed}"
        source = f" / source {self.source}" if self.source is not None else ""
        return f"{self.label} / s={self.sparsity * 100:.4g}% / seed {self.seed}{source}"

    @property
    def title(self) -> str:
        """``<target> / <name>``: the MLflow run name and the training progress label, unique within a study."""
        return f"{self.target} / {self.name}"

    @property
    def metric_key(self) -> str:
        """``dense`` or ``label@<sparsity>``: the run's key in the stage's metrics file (seeds nested under it)."""
        return "dense" if self.method == "dense" else f"{self.label}@{self.sparsity:g}"

    def row_fields(self) -> dict[str, Any]:
        """The key as the leading fields of a results row (modifier '' when none), in the rows' key order."""
        return {"target": self.target, "method": self.method, "modifier": self.modifier or "",
                "sparsity": self.sparsity, "seed": self.seed,
                **({"source": self.source} if self.source is not None else {})}

    def tags(self) -> dict[str, Any]:
        """The key as MLflow tags."""
        return {"target": self.target, "method": self.method, "sparsity": self.sparsity, "seed": self.seed,
                "modifier": self.modifier or "", **({"source": self.source} if self.source is not None else {})}


def transfer_metrics(rows: Iterable[RunRow]) -> dict[str, float]:
    """The headline of one target for ``metrics/transfer_<target>.json``: final-epoch test accuracy in percent
    (as the report's tables), mean over seeds, one flat entry per ``metric_key`` (``dense``, ``snip@0.9``,
    ``snip+invert@0.9``). Small and flat so that it is committed and ``dvc metrics diff`` / ``dvc exp show``
    compare experiments column by column; per-seed values, std and paired differences live in the report."""
    seeds: dict[str, list[float]] = {}
    for row in rows:
        seeds.setdefault(row.key.metric_key, []).append(100.0 * row.final_test_acc)
    return {key: round(sum(values) / len(values), 2) for key, values in seeds.items()}


# --------------------------------------------------------------------------- the typed result row

TIMING_FIELDS = ("train_seconds", "train_images_per_second", "select_seconds")


class RunRow(BaseModel):
    """One transfer run as recorded in ``results.json`` and a cell's result file, checked on the way in and out.

    The mask fields are None for the dense run (and left out of its JSON); every pruned run has all of them.
    Timing fields are wall-clock figures: kept in the cell files and MLflow, left out of ``results.json`` so that
    it is byte-reproducible. Floats must be finite: a diverged run is refused here, never averaged into a metric.
    The JSON key order is the field order below, as ``results.json`` has always had it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    target: str
    method: str
    modifier: str = ""  # a sanity check (autos.sweep.modifiers); '' for the method's own mask
    sparsity: float = Field(ge=0.0, lt=1.0)  # requested; 0 for the dense run
    seed: int = Field(ge=0)  # the target's seed: its init and data order, the same for every method
    source: int | None = Field(default=None, ge=0)  # the source run whose scorer the method read (sources.seeds)
    achieved_sparsity: float | None = Field(default=None, ge=0.0, le=1.0)
    achieved_density: float | None = Field(default=None, ge=0.0, le=1.0)
    min_layer_density: float | None = Field(default=None, ge=0.0, le=1.0)
    empty_layers: list[str] | None = None
    layer_density: dict[str, float] | None = None
    effective_sparsity: float | None = Field(default=None, ge=0.0, le=1.0)
    collapsed: bool | None = None
    layer_effective_density: dict[str, float] | None = None
    pruned_nonzero_after_training: int | None = Field(default=None, ge=0)
    final_test_acc: float = Field(ge=0.0, le=1.0)
    final_val_acc: float | None = Field(default=None, ge=0.0, le=1.0)  # on the held-out training images, if any
    best_test_acc: float = Field(ge=0.0, le=1.0)
    best_epoch: int = Field(ge=0)
    final_test_loss: float
    train_seconds: float | None = Field(default=None, ge=0.0)
    train_images_per_second: float | None = Field(default=None, ge=0.0)
    select_seconds: float | None = Field(default=None, ge=0.0)
    info: dict[str, float | int | str] = Field(default_factory=dict)
    epochs: int = Field(ge=0)

    @property
    def key(self) -> RunKey:
        return RunKey(self.target, self.method, self.sparsity, self.seed, self.modifier or None, self.source)

    @property
    def label(self) -> str:
        return run_label(self.method, self.modifier or None)

    @property
    def is_collapsed(self) -> bool:
        """Collapsed when it says so or when any prunable layer was left without weights."""
        return bool(self.collapsed) or bool(self.empty_layers)

    def to_json(self, *, timing: bool = True) -> dict[str, Any]:
        """The row as JSON values in field order; no mask fields for the dense run; ``timing=False`` drops the
        wall-clock fields (``results.json``)."""
        return self.model_dump(mode="json", exclude_none=True, exclude=None if timing else set(TIMING_FIELDS))

    @classmethod
    def from_json(cls, raw: Any, where: str = "row") -> RunRow:
        """A row read back from a file; ValueError naming ``where`` and every bad field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<row>'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{where} is not a valid result row ({problems})") from None
