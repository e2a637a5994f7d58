"""Iterative rewind pruning (IRP, lottery-ticket style) -> a survival count for every prunable weight.

Each round scores the current model (magnitude of the trained weights, or SNIP), prunes globally to the
round's density (``autos.irp.schedules``; already pruned weights stay pruned), rewinds the survivors to their
initial values and retrains with the study recipe. The label of a weight is the number of rounds it survived,
0..P (docs/reference/autos.md §3). With ``train_dense_first`` the dense net is trained before round 1
(lottery-ticket IMP: round 1 then scores trained weights); without it, round 1 scores the untrained init, as the
reference code does. ``rewind_batchnorm=False`` rewinds only the prunable weights, as the reference
(docs/reference/autos.md §2.3).

A killed run resumes from its last finished round: every round writes a checkpoint (atomically, fsynced) under
``resume_dir``, keyed by a fingerprint of everything that determines the result (the data by its sha256). A
checkpoint that cannot be read, does not fit the run or fails its checksum (over everything it stores) is set aside
with a warning and the run starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autos.config import IRPConfig, TrainRecipe
from autos.errors import DataError
from autos.files import TMP_SUFFIX, load_torch, save_torch
from autos.irp.schedules import round_densities
from autos.masking import Masks, apply_masks_, mask_summary, prunable_parameters, select_mask
from autos.saliency import snip_scores
from autos.training import TrainResult, train
from autos.training.batches import ImageData, scoring_batches

log = logging.getLogger(__name__)


@dataclass
class IRPResult:
    init_state: dict[str, Tensor]
    survived: dict[str, Tensor]  # int8 counts in 0..num_rounds
    masks: list[Masks]  # the mask after each round, rounds 1..P
    curve: list[dict[str, Any]] = field(default_factory=list)  # round, density, accuracies (round 0 = dense)


CHECKPOINT = "latest.pt"
_PREPARED_ARRAYS = ("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy")


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_digest(data: ImageData) -> str:
    """sha256 identifying the images and labels: the prepared files' checksums recorded in ``meta.json`` when the
    data carries them (cheap, and verified at load), else the bytes of the tensors themselves (test doubles)."""
    meta = getattr(data, "meta", None)
    files = meta.get("files") if isinstance(meta, dict) else None
    counts = meta.get("counts") if isinstance(meta, dict) else None
    if (isinstance(files, dict) and all(isinstance(files.get(n), str) for n in _PREPARED_ARRAYS)
            and isinstance(counts, dict)
            and counts.get("train") == len(data.train_y) and counts.get("test") == len(data.test_y)):
        return hashlib.sha256(json.dumps({n: files[n] for n in _PREPARED_ARRAYS}, sort_keys=True).encode()).hexdigest()
    digest = hashlib.sha256()
    for tensor in (data.train_x, data.train_y, data.test_x, data.test_y):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{tuple(array.shape)}".encode())
        digest.update(array.data)  # the buffer itself: no copy of a large image tensor
    return digest.hexdigest()


# --------------------------------------------------------------------------- checked .pt files


def check_tensors(obj: Any, expected: Mapping[str, torch.Size], path: Path, *, what: str) -> dict[str, Tensor]:
    """``obj`` as a dict of tensors with exactly the ``expected`` names and shapes, else a DataError naming ``path``."""
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise DataError(f"{path}: expected {what} (a dict of tensors by name), got {type(obj).__name__}")
    missing, unexpected = sorted(set(expected) - set(obj)), sorted(set(obj) - set(expected))
    if missing or unexpected:
        raise DataError(f"{path}: {what} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, shape in expected.items():
        if obj[name].shape != shape:
            raise DataError(f"{path}: {what} {name} has shape {tuple(obj[name].shape)}, the model {tuple(shape)}")
    return obj


def load_survival(path: Path, shapes: Mapping[str, torch.Size], num_rounds: int) -> dict[str, Tensor]:
    """IRP survival counts (``survival.pt``) checked against the prunable layers and the range 0..num_rounds."""
    survived = check_tensors(load_torch(path, what="IRP survival counts"), shapes, path, what="survival counts")
    for name, count in survived.items():
        if count.is_floating_point() or count.is_complex() or count.dtype == torch.bool:
            raise DataError(f"{path}: survival counts {name} are {count.dtype}, expected integers")
        if count.numel() and (int(count.min()) < 0 or int(count.max()) > num_rounds):
            raise DataError(f"{path}: survival counts {name} span {int(count.min())}..{int(count.max())}, "
                            f"outside 0..{num_rounds} (irp.num_rounds)")
    return survived


def stale_temps(path: Path) -> list[Path]:
    """Temp siblings of ``path`` left by a write that was killed before its rename (``autos.files`` names them
    ``.<name>.<random>.tmp``, so they can never be mistaken for ``path`` itself)."""
    return sorted(Path(path).parent.glob(f".{Path(path).name}.*{TMP_SUFFIX}"))


def _criterion_scores(model: nn.Module, data: ImageData, names: list[str], cfg: IRPConfig, device: torch.device,
                      seed: int) -> dict[str, Tensor]:
    params = dict(model.named_parameters())
    if cfg.criterion == "magnitude":
        return {n: params[n].detach().abs().cpu() for n in names}
    batches = scoring_batches(data, cfg.snip_batches, 256, seed=seed, device=device)
    model.eval()  # reference scores with model.eval() (docs/reference/autos.md §2.3, step 1)
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


# --------------------------------------------------------------------------- resume checkpoints


def _tensor_digest(digest: Any, name: str, tensor: Tensor) -> None:
    t = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def checkpoint_checksum(state: Mapping[str, Any]) -> str:
    """sha256 over a checkpoint's content: round, model state, survival counts, round masks, curve (every tensor by
    name, dtype, shape and bytes). Stored with the checkpoint and verified on resume, so an edited value (a forged
    accuracy in the curve, a flipped mask bit) is set aside like a corrupt file. It is a checksum, not a signature:
    it catches corruption and edits that do not recompute it, not a forger who runs this function."""
    digest = hashlib.sha256(f"round|{state['round']}|".encode())
    for part in ("model", "survived"):
        for name in sorted(state[part]):
            _tensor_digest(digest, f"{part}.{name}", state[part][name])
    for i, masks in enumerate(state["masks"]):
        for name in sorted(masks):
            _tensor_digest(digest, f"masks.{i}.{name}", masks[name])
    digest.update(f"curve|{state['curve']}".encode())
    return digest.hexdigest()


@dataclass
class _Checkpoint:
    round: int
    model: dict[str, Tensor]
    survived: dict[str, Tensor]
    masks: list[Masks]
    curve: list[dict[str, Any]]


def _read_checkpoint(path: Path, model_state: Mapping[str, Tensor], names: list[str], first_round: int,
                     last_round: int) -> _Checkpoint:
    """The checkpoint at ``path``, validated against this run; DataError (naming the reason) if it does not fit.

    Everything is checked before anything is used, so a bad file never half-loads into the model."""
    state = load_torch(path, what="IRP resume checkpoint")
    keys = ("round", "model", "survived", "masks", "curve", "checksum")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise DataError(f"{path}: expected keys {list(keys)}, found {found}")
    r = state["round"]
    if isinstance(r, bool) or not isinstance(r, int) or not first_round <= r <= last_round:
        raise DataError(f"{path}: round {r!r} outside {first_round}..{last_round}")
    model = check_tensors(state["model"], {k: v.shape for k, v in model_state.items()}, path, what="model state")
    for k, v in model.items():
        if v.dtype != model_state[k].dtype:
            raise DataError(f"{path}: model state {k} is {v.dtype}, the model {model_state[k].dtype}")
    shapes = {n: model_state[n].shape for n in names}
    survived = check_tensors(state["survived"], shapes, path, what="survival counts")
    masks = state["masks"]
    if not isinstance(masks, list) or len(masks) != r:  # one mask per pruning round 1..r
        count = len(masks) if isinstance(masks, list) else type(masks).__name__
        raise DataError(f"{path}: expected {r} round masks, found {count}")
    masks = [check_tensors(m, shapes, path, what=f"round {i + 1} mask") for i, m in enumerate(masks)]
    if not isinstance(state["curve"], str):
        raise DataError(f"{path}: the curve is {type(state['curve']).__name__}, expected JSON text")
    checksum, stored = checkpoint_checksum({**state, "masks": masks}), state["checksum"]
    if not isinstance(stored, str) or stored != checksum:  # an edited or damaged value that still has the right form
        raise DataError(f"{path}: its content does not match its checksum (stored {str(stored)[:20]!r}, computed "
                        f"{checksum[:16]}...): edited or corrupted")
    for n in names:
        if survived[n].dtype != torch.int8 or any(m[n].dtype != torch.bool for m in masks):
            raise DataError(f"{path}: {n}: survival counts must be int8 and masks bool")
        if not torch.equal(survived[n], sum((m[n].to(torch.int8) for m in masks), torch.zeros_like(survived[n]))):
            raise DataError(f"{path}: {n}: survival counts disagree with the round masks")
    try:
        curve = json.loads(state["curve"])
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        curve = None
    if (not isinstance(curve, list) or not all(isinstance(c, dict) for c in curve)
            or [c.get("round") for c in curve] != list(range(first_round, r + 1))):
        raise DataError(f"{path}: the curve does not list rounds {first_round}..{r}")
    return _Checkpoint(round=r, model=model, survived=survived, masks=masks, curve=curve)


def _discard(path: Path, reason: str) -> None:
    """Set a bad checkpoint aside (kept for inspection as ``<name>.bad``) so that it never blocks a re-run.
    ``reason`` is the DataError's message, which names the file."""
    aside = path.with_name(path.name + ".bad")
    try:
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError:
        try:
            path.unlink(missing_ok=True)
            where = "deleted"
        except OSError as exc:  # the next round's checkpoint replaces it anyway
            where = f"could not be removed: {exc}"
    log.warning("IRP: ignoring a bad resume checkpoint, recomputing from scratch (%s; %s)", reason, where)


def _resume_from(path: Path, model_state: Mapping[str, Tensor], names: list[str], first_round: int,
                 last_round: int) -> _Checkpoint | None:
    """The usable checkpoint at ``path``, or None (none there, or a bad one, which is set aside with a warning)."""
    for tmp in stale_temps(path):  # a write killed before its rename: never a checkpoint, only litter
        log.info("IRP: removing %s, left by an interrupted checkpoint write", tmp)
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:
        return _read_checkpoint(path, model_state, names, first_round, last_round)
    except DataError as exc:
        _discard(path, str(exc))
        return None


def _densities(cfg: IRPConfig, schedule: Sequence[float] | None) -> list[float]:
    """The density after each round: ``schedule`` when given (``cfg.num_rounds`` of them), else ``cfg.schedule``'s."""
    densities = list(schedule) if schedule is not None else round_densities(cfg.schedule, cfg.num_rounds,
                                                                             cfg.final_density)
    if len(densities) != cfg.num_rounds:
        raise ValueError(f"an explicit schedule of {len(densities)} rounds for num_rounds {cfg.num_rounds}")
    return densities


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
    schedule: Sequence[float] | None = None,
) -> IRPResult:
    """Run IRP on ``model`` (at init; trained in place). ``on_round`` sees each round's record as it finishes.

    ``train_last_round=False`` stops after the last pruning (the ticket's accuracy is then measured by whoever
    trains the mask, e.g. the transfer stage); the curve then has no entry for that round. ``schedule``: the
    density after each round, given explicitly (``cfg.num_rounds`` of them), instead of ``cfg.schedule``'s."""
    model.to(device)
    names = list(prunable_parameters(model, include_classifier))
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    densities = _densities(cfg, schedule)
    round_recipe = recipe.with_epochs(cfg.epochs_per_round)
    key = fingerprint(cfg.model_dump(), round_recipe.model_dump(), seed, include_classifier, densities,
                      {k: float(v.double().sum()) for k, v in init_state.items() if v.is_floating_point()},
                      data_digest(data))
    ckpt_dir = resume_dir / key if resume_dir is not None else None

    survived = {n: torch.zeros_like(init_state[n], dtype=torch.int8, device="cpu") for n in names}
    alive: Masks | None = None
    masks_per_round: list[Masks] = []
    curve: list[dict[str, Any]] = []
    start_round = 0 if cfg.train_dense_first else 1

    checkpoint = None
    if ckpt_dir is not None:
        checkpoint = _resume_from(ckpt_dir / CHECKPOINT, model.state_dict(), names, start_round, cfg.num_rounds)
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model)
        survived, masks_per_round, curve = checkpoint.survived, checkpoint.masks, checkpoint.curve
        alive = masks_per_round[-1] if masks_per_round else None
        start_round = checkpoint.round + 1
        log.info("IRP: resuming after round %d from %s", checkpoint.round, ckpt_dir)

    def finish_round(r: int, density: float, masks: Masks | None, result: TrainResult) -> None:
        summary = mask_summary(masks) if masks is not None else None
        record = {"round": r, "requested_density": density, "density": summary.density if summary else 1.0,
                  "min_layer_density": summary.min_layer_density if summary else 1.0, **result.metrics()}
        curve.append(record)
        log.info("IRP round %d: density %.4f final acc %.4f", r, record["density"], record["final_test_acc"])
        if ckpt_dir is not None:  # checkpoint first: a crash while logging must not lose the round
            state = {"round": r, "model": model.state_dict(), "survived": survived, "masks": masks_per_round,
                     "curve": json.dumps(curve)}
            save_torch({**state, "checksum": checkpoint_checksum(state)}, ckpt_dir / CHECKPOINT)
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

