"""Lottery-ticket IMP on the target itself (docs/reference/methods.md §10): an upper-bound reference, not a PaI method.

Train dense, prune globally by the magnitude of the trained weights, rewind the survivors to init, retrain;
repeat until the requested density. It reuses the source-model IRP loop (``autos.irp.run_irp``, with
``train_dense_first``) so there is one IMP implementation. Schedules:

- ``fraction`` (default, open_lth): about ``prune_fraction`` (20%) of the remaining weights per round; the number
  of rounds is P = ceil(log(density) / log(1 - prune_fraction)) and every round keeps the same fraction
  density^(1/P) >= 1 - prune_fraction of the survivors, so the last round ends exactly at the requested density
  (open_lth instead prunes exactly 20% and reaches only the 0.8^L grid).
- ``geometric`` / ``linear``: ``num_rounds`` rounds of ``autos.irp.schedules.round_densities``.

The result is the final mask with the init weights (rewinding to iteration 0, plain LTH); the pipeline then
trains it with the study recipe. ``rewind_batchnorm`` (default true, as open_lth) rewinds the whole state
between rounds, not only the prunable weights. Every round selects with ``select_mask`` (scope ``global``, as
``autos.irp.run_irp``), which is the scope of the result.
"""

from __future__ import annotations

import logging
import math
import shutil
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, PositiveInt

from autos.config import IRPConfig
from autos.irp import fingerprint, run_irp
from autos.irp.schedules import through_densities
from autos.masking import Masks, density_of
from autos.pruners._registry import PRUNERS
from autos.pruners.base import NoSettings, PruneContext, Pruner, PruneResult, flat_settings

log = logging.getLogger(__name__)


class IRPTargetSettings(NoSettings):
    schedule: Literal["fraction", "geometric", "linear"] = Field(
        default="fraction", description="fraction: prune prune_fraction of the survivors per round until the target; "
        "geometric/linear: num_rounds rounds ending at the target"
    )
    prune_fraction: float = Field(default=0.2, gt=0, lt=1, description="schedule=fraction: share pruned per round")
    num_rounds: PositiveInt = Field(default=10, le=100, description="schedule=geometric/linear: rounds")
    epochs_per_round: PositiveInt | None = Field(default=None, description="null: the recipe's epochs")
    criterion: Literal["magnitude", "snip"] = Field(
        default="magnitude", description="score of the trained weights per round"
    )
    rewind_batchnorm: bool = Field(default=True, description="rewind BN and biases too between rounds (open_lth)")
    shared_run: bool = Field(
        default=True, description="schedule=fraction: one IRP run per seed passes through every density the study "
        "evaluates and keeps the mask at each (open_lth's protocol; the rounds between two levels each prune at "
        "most prune_fraction), shared by the cells of every sparsity; false: a run of its own per sparsity"
    )
    keep_checkpoints: bool = Field(
        default=False, description="keep the per-round resume checkpoints in cache_dir after success (a re-run "
        "then reuses them); they are always written there while running, so a killed run resumes"
    )


def num_rounds_for(settings: IRPTargetSettings, density: float) -> int:
    if settings.schedule != "fraction":
        return settings.num_rounds
    return max(1, math.ceil(math.log(density) / math.log(1.0 - settings.prune_fraction) - 1e-9))


@PRUNERS.register("irp")
class IRPTarget(Pruner[IRPTargetSettings]):
    """docs/reference/methods.md §10. Cost: P + 1 trainings of ``epochs_per_round`` (dense + P masked), see the
    note in info."""

    Settings = IRPTargetSettings
    title = "IRP"
    needs_data = True
    kind = "trained"

    @classmethod
    def shares_work(cls, settings: BaseModel) -> bool:
        return isinstance(settings, IRPTargetSettings) and settings.schedule == "fraction" and settings.shared_run

    def prune(self, ctx: PruneContext, density: float) -> PruneResult:
        s = self.settings
        names = ctx.prunable_names()
        init_state = {k: v.detach().to("cpu", copy=True) for k, v in ctx.model.state_dict().items()}
        if density >= 1.0:
            params = dict(ctx.model.named_parameters())
            masks = Masks({n: torch.ones(params[n].shape, dtype=torch.bool) for n in names})
            return PruneResult(masks=masks, info={"rounds": 0, "extra_epochs": 0, "dense_epochs": 0},
                               state_dict=init_state, scope="global")
        if s.schedule == "fraction" and s.shared_run:
            return self._from_shared_run(ctx, density, init_state)
        rounds = num_rounds_for(s, density)
        cfg = IRPConfig(
            num_rounds=rounds, final_density=density, schedule="geometric" if s.schedule == "fraction" else s.schedule,
            criterion=s.criterion, train_dense_first=True, rewind_batchnorm=s.rewind_batchnorm,
            epochs_per_round=s.epochs_per_round,
        )
        resume_dir = None
        if ctx.cache_dir is not None:  # one folder per call, so that clearing it touches no other run
            resume_dir = ctx.cache_dir / "irp_target" / fingerprint(density, s.model_dump(), ctx.seed, repr(ctx.model))
        result = run_irp(ctx.copy_model(), ctx.data, cfg, ctx.recipe, device=ctx.device, seed=ctx.seed,
                         include_classifier=ctx.include_classifier, resume_dir=resume_dir, train_last_round=False)
        if resume_dir is not None and not s.keep_checkpoints:
            shutil.rmtree(resume_dir, ignore_errors=True)
        epochs = ctx.recipe.with_epochs(s.epochs_per_round).epochs
        info: dict[str, Any] = flat_settings(s)
        info.update(
            rounds=rounds, epochs_per_round=epochs,
            round_densities=",".join(f"{d:.6g}" for d in [1.0] + [density_of(m) for m in result.masks]),
            trainings=len(result.curve), dense_epochs=epochs, extra_epochs=epochs * len(result.curve),
            last_round_training="skipped: the pipeline trains the final ticket from init with the shared recipe",
        )
        log.info("irp (target): %d rounds to density %.4g, %d epochs", rounds, density, info["extra_epochs"])
        return PruneResult(masks=result.masks[-1], info=info, state_dict=init_state, scope="global")

    def _from_shared_run(self, ctx: PruneContext, density: float, init_state: dict[str, torch.Tensor]) -> PruneResult:
        """This density's mask from the one run through every density of the study (``ctx.densities``)."""
        s = self.settings
        schedule = through_densities([density, *ctx.densities], s.prune_fraction)
        run = ctx.shared(f"irp-run-{fingerprint(schedule)}", lambda: self._run(ctx, schedule))
        rounds = schedule.index(density) + 1
        epochs = ctx.recipe.with_epochs(s.epochs_per_round).epochs
        info: dict[str, Any] = flat_settings(s)
        # this density's path down the shared run: dense + rounds 1..rounds-1 trained (the run is paid once per seed)
        info.update(rounds=rounds, epochs_per_round=epochs, shared_run_rounds=len(schedule), trainings=rounds,
                    round_densities=",".join(f"{d:.6g}" for d in [1.0, *schedule[:rounds]]),
                    dense_epochs=epochs, extra_epochs=epochs * rounds,
                    last_round_training="skipped: the pipeline trains the final ticket from init with the shared "
                    "recipe")
        return PruneResult(masks=Masks(run["masks"][f"{density!r}"]), info=info, state_dict=init_state,
                           scope="global")

    def _run(self, ctx: PruneContext, schedule: list[float]) -> dict[str, Any]:
        """One IRP run down ``schedule`` (dense training, then each round retrained but the last), keeping the mask
        at every density the study evaluates."""
        s = self.settings
        cfg = IRPConfig(num_rounds=len(schedule), final_density=schedule[-1], schedule="geometric",
                        criterion=s.criterion, train_dense_first=True, rewind_batchnorm=s.rewind_batchnorm,
                        epochs_per_round=s.epochs_per_round)
        resume_dir = None
        if ctx.cache_dir is not None:
            resume_dir = ctx.cache_dir / "irp_target" / fingerprint(schedule, s.model_dump(), ctx.seed, repr(ctx.model))
        result = run_irp(ctx.copy_model(), ctx.data, cfg, ctx.recipe, device=ctx.device, seed=ctx.seed,
                         include_classifier=ctx.include_classifier, resume_dir=resume_dir, train_last_round=False,
                         schedule=schedule)
        if resume_dir is not None and not s.keep_checkpoints:
            shutil.rmtree(resume_dir, ignore_errors=True)
        wanted = {f"{d!r}" for d in (*ctx.densities, schedule[-1])}
        log.info("irp (target): one run of %d rounds to density %.4g for %d evaluated densities", len(schedule),
                 schedule[-1], len(wanted))
        return {"masks": {f"{d!r}": dict(m) for d, m in zip(schedule, result.masks, strict=True) if f"{d!r}" in wanted}}

