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

    @classmethod
    def of_row(cls, row: Mapping[str, Any], target: str | None = None) -> RunKey:
        """The key of a results row; ``target`` when the row does not carry one (rows inside a target's file)."""
        return cls(target=str(row.get("target", target)), method=str(row["method"]), sparsity=float(row["sparsity"]),
                   seed=int(row["seed"]), modifier=row.get("modifier") or None)

    @property
    def label(self) -> str:
        return run_label(self.method, self.modifier)

    @property
    def name(self) -> str:
        """``<label> / s=<sparsity %> / seed <n>`` (the dense run: ``dense / seed <n>``): the run within a target."""
        if self.method == "dense":
            return f"{self.label} / seed {self.seed}"
        return f"{self.label} / s={self.sparsity * 100:.4g}% / seed {self.seed}"

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
                "sparsity": self.sparsity, "seed": self.seed}

    def tags(self) -> dict[str, Any]:
        """The key as MLflow tags."""
        return {"target": self.target, "method": self.method, "sparsity": self.sparsity, "seed": self.seed,
                "modifier": self.modifier or ""}


def transfer_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The headline of one target for ``metrics/transfer_<target>.json``: final-epoch test accuracy in percent
    (as the report's tables), mean over seeds, one flat entry per ``metric_key`` (``dense``, ``snip@0.9``,
    ``snip+invert@0.9``). Small and flat so that it is committed and ``dvc metrics diff`` / ``dvc exp show``
    compare experiments column by column; per-seed values, std and paired differences live in the report."""
    seeds: dict[str, list[float]] = {}
    for row in rows:
        seeds.setdefault(RunKey.of_row(row).metric_key, []).append(100.0 * float(row["final_test_acc"]))
    return {key: round(sum(values) / len(values), 2) for key, values in seeds.items()}
