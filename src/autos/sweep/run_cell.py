"""Prune a target at init with every method x sparsity x seed, train each sparse net, record everything.

One row per run: requested and achieved sparsity, per-layer density, effective sparsity and collapse, final-
and best-epoch accuracy, seconds spent selecting the mask and training. The dense row (sparsity 0) trains the
same init with the same recipe. Modifiers (Frankle et al. 2021 sanity checks) re-train a method's mask shuffled
within layers, with re-initialised weights, or inverted.

``run_cell`` computes one cell (``autos.sweep.cells``); a sweep's cells run through
``autos.sweep.executors.run_cells``, the one loop (resumable, local or on Ray).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autos.config import ModelSpec, StudyConfig
from autos.masking import Masks, classifier_name, mask_summary
from autos.masking.health import effective_summary
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.sweep.cells import DENSE, CellKey, CellResult
from autos.sweep.modifiers import MODIFIERS
from autos.sweep.oracle import keeps_mask, pack_masks
from autos.sweep.records import RunKey, RunRow
from autos.training import evaluate_only, train
from autos.training.batches import ImageData, dataset_classes

log = logging.getLogger(__name__)


def _check_outputs(model: nn.Module, num_classes: int, target: str) -> None:
    """A model with fewer outputs than classes fails only later and obscurely (or silently, with more)."""
    outputs = int(dict(model.named_parameters())[classifier_name(model)].shape[0])
    if outputs != num_classes:
        raise ValueError(f"{target}: the model has {outputs} outputs but the dataset has {num_classes} classes")


def run_cell(
    cfg: StudyConfig,
    key: CellKey,
    data: ImageData,
    *,
    build: Callable[[int], nn.Module],
    device: torch.device,
    root: Path = Path("."),
    cache_dir: Path | None,
    share_key: str | None = None,
) -> CellResult:
    """One cell: select the mask of (method, sparsity, seed) once, then train the mask and each modifier's variant.

    ``root``: the repository root, against which methods resolve relative paths (AutoS's ``scorer_dir``).
    ``share_key``: what this cell's work that does not depend on the density is keyed by, shared with the cells of
    the method's other sparsities under ``cache_dir / "shared"`` (``autos.pruners.shared``); None: nothing shared.
    """
    target, seed = key.target, key.seed
    spec: ModelSpec = cfg.transfer.targets[target]
    recipe = cfg.training.with_epochs(spec.epochs)
    input_size = int(data.train_x.shape[-1])
    num_classes = dataset_classes(data)
    result_rows: list[RunRow] = []
    histories: list[list[dict[str, float]]] = []

    def record(run: RunKey, model: nn.Module, masks: Masks | None, info: dict[str, Any], select_seconds: float,
               train_model: bool = True) -> None:
        stats: dict[str, Any] = {}
        if masks is not None:
            summary = mask_summary(masks)
            stats = {"achieved_sparsity": summary.sparsity, "achieved_density": summary.density,
                     "min_layer_density": summary.min_layer_density, "empty_layers": summary.empty_layers,
                     "layer_density": summary.layer_density}
            effective = effective_summary(model, masks, input_size)
            stats.update(effective_sparsity=effective["effective_sparsity"], collapsed=effective["collapsed"],
                         layer_effective_density=effective["layer_effective_density"])
        if train_model:
            result = train(model, data, recipe, seed=seed, device=device, masks=masks, desc=run.title)
        else:
            result = evaluate_only(model, data, device=device, masks=masks, batch_size=recipe.eval_batch_size)
        if masks is not None:  # masks must hold through training (nonzero counts unchanged)
            params = dict(model.named_parameters())
            leaked = sum(int(torch.count_nonzero(params[n].detach().cpu()[~m.cpu()])) for n, m in masks.items())
            stats["pruned_nonzero_after_training"] = leaked
        result_rows.append(RunRow.model_validate({**run.row_fields(), **stats, **result.metrics(),
                                                  "select_seconds": select_seconds, "info": info,
                                                  "epochs": result.epochs}))
        histories.append(result.history)

    init_model = build(seed)
    _check_outputs(init_model, num_classes, target)
    if key.method == DENSE:
        record(RunKey(target, DENSE, 0.0, seed), copy.deepcopy(init_model), None, {}, 0.0)
        return CellResult(key, result_rows, histories)
    pruner = PRUNERS.get(key.method)(cfg.transfer.settings_of(key.method))  # typed, validated at load
    density = 1.0 - key.sparsity
    ctx = PruneContext(model=init_model, data=data, recipe=recipe, device=device, seed=seed, num_classes=num_classes,
                       include_classifier=cfg.pruning.include_classifier, build_model=build, cache_dir=cache_dir,
                       root=root, features=cfg.features, share_key=share_key,
                       share_dir=cache_dir / "shared" if cache_dir is not None else None)
    start = time.perf_counter()
    result = pruner.prune(ctx, density)
    select_seconds = time.perf_counter() - start
    variants: list[tuple[str | None, Masks, dict[str, torch.Tensor] | None]] = [(None, result.masks, result.state_dict)]
    for modifier in cfg.transfer.modifiers_for(key.method):
        check = MODIFIERS.get(modifier)
        if not check.applies(result):
            log.info("skipping invert for %s: no scores to re-rank (not score-based, or iterative)", key.method)
            continue
        masks, state = check.variant(result, ctx, density, seed + 1)
        variants.append((modifier, masks, state))
    packed = pack_masks(result.masks) if keeps_mask(cfg.transfer.methods, key.method) else None
    for variant, masks, state in variants:
        model = copy.deepcopy(init_model)
        if state is not None:
            model.load_state_dict(state)
        run = RunKey(target, key.method, key.sparsity, seed, variant)
        # re-initialised weights are always trained: evaluating fresh weights would only show chance
        train_model = result.train or variant == "reinit"
        record(run, model, masks, dict(result.info), select_seconds, train_model=train_model)
    return CellResult(key, result_rows, histories, mask=packed)
