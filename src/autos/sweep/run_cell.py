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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autos.config import StudyConfig, TrainRecipe
from autos.masking import Masks, classifier_name, mask_summary
from autos.masking.health import effective_summary
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.sweep.cells import DENSE, CellKey, CellResult
from autos.sweep.modifiers import MODIFIERS
from autos.sweep.oracle import keeps_mask, pack_masks
from autos.sweep.records import RunKey, RunRow
from autos.training import evaluate, evaluate_only, train
from autos.training.batches import ImageData, dataset_classes

log = logging.getLogger(__name__)


def _check_outputs(model: nn.Module, num_classes: int, target: str) -> None:
    """A model with fewer outputs than classes fails only later and obscurely (or silently, with more)."""
    outputs = int(dict(model.named_parameters())[classifier_name(model)].shape[0])
    if outputs != num_classes:
        raise ValueError(f"{target}: the model has {outputs} outputs but the dataset has {num_classes} classes")


def _mask_stats(model: nn.Module, masks: Masks, input_size: int) -> dict[str, Any]:
    """What a row records about its mask before training: achieved density, per-layer and effective density."""
    summary = mask_summary(masks)
    effective = effective_summary(model, masks, input_size)
    return {"achieved_sparsity": summary.sparsity, "achieved_density": summary.density,
            "min_layer_density": summary.min_layer_density, "empty_layers": summary.empty_layers,
            "layer_density": summary.layer_density, "effective_sparsity": effective["effective_sparsity"],
            "collapsed": effective["collapsed"], "layer_effective_density": effective["layer_effective_density"]}


@dataclass
class _Runs:
    """The rows of one cell as its runs finish: train (or evaluate) a model from a mask, record the row."""

    data: ImageData
    recipe: TrainRecipe
    device: torch.device
    seed: int
    validation: ImageData | None = None  # images held out of training: the split variants are chosen on
    rows: list[RunRow] = field(default_factory=list)
    histories: list[list[dict[str, float]]] = field(default_factory=list)

    def record(self, run: RunKey, model: nn.Module, masks: Masks | None, info: dict[str, Any], select_seconds: float,
               train_model: bool = True) -> None:
        stats = _mask_stats(model, masks, int(self.data.train_x.shape[-1])) if masks is not None else {}
        if train_model:
            result = train(model, self.data, self.recipe, seed=self.seed, device=self.device, masks=masks,
                           desc=run.title)
        else:
            result = evaluate_only(model, self.data, device=self.device, masks=masks,
                                   batch_size=self.recipe.eval_batch_size)
        if masks is not None:  # masks must hold through training (nonzero counts unchanged)
            params = dict(model.named_parameters())
            leaked = sum(int(torch.count_nonzero(params[n].detach().cpu()[~m.cpu()])) for n, m in masks.items())
            stats["pruned_nonzero_after_training"] = leaked
        if self.validation is not None:
            _, stats["final_val_acc"] = evaluate(model, self.validation, device=self.device,
                                                 batch_size=self.recipe.eval_batch_size)
        self.rows.append(RunRow.model_validate({**run.row_fields(), **stats, **result.metrics(),
                                                "select_seconds": select_seconds, "info": info,
                                                "epochs": result.epochs}))
        self.histories.append(result.history)


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
    validation: ImageData | None = None,
    scorer_dir: Path | None = None,
) -> CellResult:
    """One cell: select the mask of (method, sparsity, seed) once, then train the mask and each modifier's variant.

    ``root``: the repository root, against which methods resolve relative paths (AutoS's ``scorer_dir``).
    ``share_key``: what this cell's work that does not depend on the density is keyed by, shared with the cells of
    the method's other sparsities under ``cache_dir / "shared"`` (``autos.pruners.shared``); None: nothing shared.
    ``validation``: images held out of ``data``'s training set, evaluated after each run (``final_val_acc``).
    ``scorer_dir``: the AutoS scorer of the cell's source run (``key.source``), for the methods that read one.
    """
    target, seed = key.target, key.seed
    recipe = cfg.training.with_epochs(cfg.transfer.targets[target].epochs)
    num_classes = dataset_classes(data)
    runs = _Runs(data, recipe, device, seed, validation)
    init_model = build(seed)
    _check_outputs(init_model, num_classes, target)
    if key.method == DENSE:
        runs.record(RunKey(target, DENSE, 0.0, seed), copy.deepcopy(init_model), None, {}, 0.0)
        return CellResult(key, runs.rows, runs.histories)
    # a variant runs its registered method with its own settings (typed, validated at load)
    pruner = PRUNERS.get(cfg.transfer.registered(key.method))(cfg.transfer.settings_of(key.method))
    density = 1.0 - key.sparsity
    ctx = PruneContext(model=init_model, data=data, recipe=recipe, device=device, seed=seed, num_classes=num_classes,
                       include_classifier=cfg.pruning.include_classifier, build_model=build, cache_dir=cache_dir,
                       root=root, features=cfg.features, share_key=share_key, scorer_dir=scorer_dir,
                       densities=tuple(1.0 - s for s in cfg.transfer.sparsities),
                       share_dir=cache_dir / "shared" if cache_dir is not None else None)
    start = time.perf_counter()
    result = pruner.prune(ctx, density)
    select_seconds = time.perf_counter() - start
    variants: list[tuple[str | None, Masks, dict[str, torch.Tensor] | None]] = [(None, result.masks, result.state_dict)]
    for modifier in cfg.transfer.modifiers_for(key.method):
        check = MODIFIERS.get(modifier)
        if not check.applies(result):
            log.info("skipping %s for %s: no scores to re-rank (not score-based, or iterative)", modifier, key.method)
            continue
        variants.append((modifier, *check.variant(result, ctx, density, seed + 1)))
    packed = pack_masks(result.masks) if keeps_mask(cfg.transfer.methods, key.method) else None
    for variant, masks, state in variants:
        model = copy.deepcopy(init_model)
        if state is not None:
            model.load_state_dict(state)
        # re-initialised weights are always trained: evaluating fresh weights would only show chance
        run = RunKey(target, key.method, key.sparsity, seed, variant, key.source)
        runs.record(run, model, masks, dict(result.info), select_seconds,
                    train_model=result.train or variant == "reinit")
    return CellResult(key, runs.rows, runs.histories, mask=packed)
