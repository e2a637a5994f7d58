"""The ``report`` section: what the study's verdicts are about, declared before the run, and how they are judged."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from autos.config.limits import Strict


class ReportConfig(Strict):
    """The comparisons the report makes on the test set, declared in params before the run (so that no test
    accuracy chooses what is compared), and the statistics they are judged with."""

    under_test: list[str] = Field(
        default=["autos"], description="the methods the verdicts are about (each against the best single-shot "
        "baseline, chosen on the validation split when the study holds one out)")
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = Field(
        default=0.95, description="the level of each verdict's interval; a verdict is better or worse when its "
        "p-value, corrected across the table (``correction``), is below 1 - confidence")
    correction: Literal["holm", "none"] = Field(
        default="holm", description="multiple-comparison correction across the verdict table (Holm 1979)")
    equivalence_margin: Annotated[float, Field(gt=0.0, le=50.0)] = Field(
        default=2.0, description="percentage points: a method is called equivalent to its baseline only when an "
        "equivalence test (TOST) puts the difference within +-margin")
