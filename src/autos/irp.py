"""Iterative rewind pruning (IRP, lottery-ticket style) -> a survival count for every prunable weight.

Each round scores the current model (magnitude of the trained weights, or SNIP), prunes globally to the
round's density (``autos.schedules``; already pruned weights stay pruned), rewinds the survivors to their
initial values and retrains with the study recipe. The label of a weight is the number of rounds it survived,
0..P (autos.md section 3). With ``train_dense_first`` the dense net is trained before round 1 (lottery-ticket
IMP: round 1 then scores trained weights); without it, round 1 scores the untrained init, as the reference
code does. ``rewind_batchnorm=False`` rewinds only the prunable weights, as the reference (autos.md 2.3).

A killed run resumes from its last finished round: every round writes a checkpoint (atomically) under
``resume_dir``, keyed by a fingerprint of everything that determines the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autos.config import IRPConfig, TrainRecipe
from autos.masking import Masks, apply_masks_, mask_summary, prunable_parameters, select_mask
from autos.saliency import snip_scores
from autos.schedules import round_densities
from autos.training import ImageData, TrainResult, scoring_batches, train

log = logging.getLogger(__name__)


@dataclass
class IRPResult:
    init_state: dict[str, Tensor]
    survived: dict[str, Tensor]  # int8 counts in 0..num_rounds
    masks: list[Masks]  # the mask after each round, rounds 1..P
    curve: list[dict[str, Any]] = field(default_factory=list)  # round, density, accuracies (round 0 = dense)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _criterion_scores(model: nn.Module, data: ImageData, names: list[str], cfg: IRPConfig, device: torch.device,
                      seed: int) -> dict[str, Tensor]:
    params = dict(model.named_parameters())
    if cfg.criterion == "magnitude":
        return {n: params[n].detach().abs().cpu() for n in names}
    batches = scoring_batches(data, cfg.snip_batches, 256, seed=seed, device=device)
    model.eval()  # reference scores with model.eval() (autos.md 2.3, step 1)
    scores = snip_scores(model, batches, names, train_mode=False)
    model.zero_grad(set_to_none=True)
    return scores


def _rewind_(model: nn.Module, init_state: dict[str, Tensor], names: list[str], everything: bool) -> None:
    if everything:
        model.load_state_dict(init_state)
        return
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in names:
            params[n].copy_(init_state[n])


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run_irp(
    model: nn.Module,
    data: ImageData,
    cfg: IRPConfig,
    recipe: TrainRecipe,
    *,
    device: torch.device,
    seed: int,
    include_classifier: bool = True,
    resume_dir: Path | None = None,
    on_round: Callable[[dict[str, Any], TrainResult], None] | None = None,
    train_last_round: bool = True,
) -> IRPResult:
    """Run IRP on ``model`` (at init; trained in place). ``on_round`` sees each round's record as it finishes.

    ``train_last_round=False`` stops after the last pruning (the ticket's accuracy is then measured by whoever
    trains the mask, e.g. the transfer stage); the curve then has no entry for that round."""
    model.to(device)
    names = list(prunable_parameters(model, include_classifier))
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    densities = round_densities(cfg.schedule, cfg.num_rounds, cfg.final_density)
    round_recipe = recipe.with_epochs(cfg.epochs_per_round)
    key = fingerprint(cfg.model_dump(), round_recipe.model_dump(), seed, include_classifier,
                      {k: float(v.double().sum()) for k, v in init_state.items() if v.is_floating_point()},
                      int(data.train_y.sum()), len(data.train_y))
    ckpt_dir = resume_dir / key if resume_dir is not None else None

    survived = {n: torch.zeros_like(init_state[n], dtype=torch.int8, device="cpu") for n in names}
    alive: Masks | None = None
    masks_per_round: list[Masks] = []
    curve: list[dict[str, Any]] = []
    start_round = 0 if cfg.train_dense_first else 1

    if ckpt_dir is not None and (ckpt_dir / "latest.pt").exists():
        state = torch.load(ckpt_dir / "latest.pt", weights_only=True)
        model.load_state_dict(state["model"])
        survived, masks_per_round, curve = state["survived"], state["masks"], json.loads(state["curve"])
        alive = masks_per_round[-1] if masks_per_round else None
        start_round = state["round"] + 1
        log.info("IRP: resuming after round %d from %s", state["round"], ckpt_dir)

    def finish_round(r: int, density: float, masks: Masks | None, result: TrainResult) -> None:
        summary = mask_summary(masks) if masks is not None else {"density": 1.0, "min_layer_density": 1.0}
        record = {"round": r, "requested_density": density, "density": summary["density"],
                  "min_layer_density": summary["min_layer_density"], **result.metrics()}
        curve.append(record)
        log.info("IRP round %d: density %.4f final acc %.4f", r, record["density"], record["final_test_acc"])
        if ckpt_dir is not None:  # checkpoint first: a crash while logging must not lose the round
            _save_atomic({"round": r, "model": model.state_dict(), "survived": survived, "masks": masks_per_round,
                          "curve": json.dumps(curve)}, ckpt_dir / "latest.pt")
        if on_round is not None:
            on_round(record, result)

    for r in range(start_round, cfg.num_rounds + 1):
        if r == 0:
            result = train(model, data, round_recipe, seed=seed, device=device, desc="irp round 0 (dense)")
            finish_round(0, 1.0, None, result)
            continue
        density = densities[r - 1]
        scores = _criterion_scores(model, data, names, cfg, device, seed + r)
        masks = select_mask(scores, density, scope="global", alive=alive)
        for n in names:
            survived[n] += masks[n].to(torch.int8)
        _rewind_(model, init_state, names, everything=cfg.rewind_batchnorm)
        apply_masks_(model, masks)
        alive = masks
        masks_per_round.append(masks)
        if r == cfg.num_rounds and not train_last_round:
            break
        result = train(model, data, round_recipe, seed=seed + r, device=device, masks=masks,
                       desc=f"irp round {r}/{cfg.num_rounds}")
        finish_round(r, density, masks, result)

    return IRPResult(init_state=init_state, survived=survived, masks=masks_per_round, curve=curve)


def clear_resume_state(resume_dir: Path | None) -> None:
    if resume_dir is not None and resume_dir.exists():
        for path in sorted(resume_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        resume_dir.rmdir()

