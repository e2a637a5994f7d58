"""``execution``: where the transfer stage runs its cells (``autos.sweep.executors``), which changes no result."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from autos.config.limits import Strict, problems_error

RAY_RETRIES = 2  # execution.max_retries' default
_LOCAL_DEFAULTS = {"address": "null", "num_gpus": "0", "max_retries": f"{RAY_RETRIES} (the default)"}


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
        default=RAY_RETRIES, description="ray: retries of a failed cell (exception, out of memory, lost worker)")

    @model_validator(mode="after")
    def _settings_apply(self) -> ExecutionConfig:
        """Refuse Ray-only settings with the local backend, where they would silently do nothing: local runs the
        cells in the stage process, in order, on the study's ``device``, once (a failed cell fails the stage).
        ``num_cpus`` applies to both (the torch threads of a cell). ``max_retries`` is refused only when it differs
        from its default, which the shipped profiles spell out."""
        if self.backend != "local":
            return self
        problems = []
        if self.address is not None:
            problems.append(f"address: {self.address!r} is a Ray cluster address")
        if self.num_gpus > 0:
            problems.append(f"num_gpus: {self.num_gpus:g} GPU(s) per cell is a request to Ray (locally cells use "
                            "the study's device)")
        if self.max_retries != RAY_RETRIES:
            problems.append(f"max_retries: {self.max_retries} retries are Ray's (locally a failed cell fails the "
                            "stage)")
        if problems:
            raise problems_error([f"{p}, which cannot apply with backend 'local'; allowed with 'local': "
                                  f"{_LOCAL_DEFAULTS[p.split(':')[0]]}, or backend: ray" for p in problems])
        return self
