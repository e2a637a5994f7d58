"""Masks: which weights are prunable, the checked ``Masks`` type, the one selection (``select_mask``), score-free
layer budgets (ERK, layer floors) and mask health (collapse, effective sparsity).

Vocabulary: ``density`` is the fraction of prunable weights kept, ``sparsity = 1 - density`` the fraction removed.
"""

from __future__ import annotations

from autos.masking.budgets import erk_counts, erk_densities, layer_floor_counts
from autos.masking.masks import (
    Masks,
    MaskSummary,
    Scores,
    apply_masks_,
    classifier_name,
    density_of,
    layer_densities,
    mask_gradients_,
    mask_summary,
    nonzero_counts,
    prunable_parameters,
)
from autos.masking.select import SCOPES, Scope, check_density, invert_scores, kept_count, select_mask

__all__ = [
    "SCOPES", "MaskSummary", "Masks", "Scope", "Scores", "apply_masks_", "check_density", "classifier_name",
    "density_of", "erk_counts", "erk_densities", "invert_scores", "kept_count", "layer_densities",
    "layer_floor_counts", "mask_gradients_", "mask_summary", "nonzero_counts", "prunable_parameters", "select_mask",
]
