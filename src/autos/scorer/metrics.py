"""Ranking metrics of a scorer against the IRP labels (``evaluate_ranking``) and of trivial scorers on the
same rows (``trivial_baselines``); the only scorer module that imports scipy and scikit-learn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import Tensor


def _descending_order(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Row indices by descending score; equal scores ordered by ``tiebreak`` (a random key, not the row index,
    which correlates with the layer and so would bias ties toward early layers)."""
    return np.lexsort((tiebreak, -scores.astype(np.float64)))


def evaluate_ranking(
    pred: np.ndarray,
    survived: np.ndarray,
    num_rounds: int,
    densities: Sequence[float],
    rng_seed: int,
) -> dict[str, float]:
    """How well ``pred`` ranks the weights like IRP did (docs/reference/autos.md §10 item 3: ranking metrics matter
    more).

    Keys: ``mse`` (vs label = survived / num_rounds), ``spearman`` (rho with survived), ``topk_overlap_d<d>``
    (|top-k by pred & top-k by survived| / k with k = round(d * N); survived has massive ties, broken by one
    seeded random permutation, used for pred's ties too, so pred == survived scores exactly 1; chance is d),
    ``auc_all_rounds`` (ROC AUC of pred for "survived every round", nan when one class is absent).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    survived = np.asarray(survived).reshape(-1)
    n = pred.size
    if survived.size != n:
        raise ValueError(f"pred has {n} rows, survived {survived.size}")
    if n == 0:
        raise ValueError("no rows to evaluate")
    label = survived.astype(np.float64) / float(num_rounds)
    metrics: dict[str, float] = {"mse": float(np.mean((pred - label) ** 2))}
    if np.ptp(pred) == 0 or np.ptp(survived) == 0:
        metrics["spearman"] = float("nan")
    else:
        metrics["spearman"] = float(spearmanr(pred, survived).statistic)
    tiebreak = np.random.default_rng(rng_seed).permutation(n)
    order_pred = _descending_order(pred, tiebreak)
    order_true = _descending_order(survived, tiebreak)
    for d in densities:
        k = max(1, min(n, round(d * n)))
        common = np.intersect1d(order_pred[:k], order_true[:k], assume_unique=True).size
        metrics[f"topk_overlap_d{d:g}"] = float(common / k)
    all_rounds = survived == num_rounds
    if all_rounds.all() or not all_rounds.any():
        metrics["auc_all_rounds"] = float("nan")
    else:
        metrics["auc_all_rounds"] = float(roc_auc_score(all_rounds, pred))
    return metrics


def trivial_baselines(
    columns: Mapping[str, np.ndarray | Tensor],
    survived: np.ndarray,
    num_rounds: int,
    densities: Sequence[float],
    rng_seed: int,
) -> dict[str, dict[str, float]]:
    """Ranking metrics of trivial scorers on the same rows: |w0|, |g0|, |w0*g0| (SNIP's saliency) and random.

    Magnitude-IRP labels can be nearly |w0|: in an early probe (ResNet-18 width 16 source, 5 magnitude-IRP rounds of
    4 epochs), |w0| alone reached a Spearman rho of 0.94 with survival on held-out weights, as high as a learned
    MLP. So a learned scorer means something only next to these. ``mse`` is left out: these scores are not on the
    label's scale.
    """
    w0 = np.asarray(columns["w0"], dtype=np.float64).reshape(-1)
    g0 = np.asarray(columns["g0"], dtype=np.float64).reshape(-1)
    candidates = {
        "abs_w0": np.abs(w0),
        "abs_g0": np.abs(g0),
        "abs_w0_x_g0": np.abs(w0 * g0),
        "random": np.random.default_rng([rng_seed, 2]).random(w0.size),
    }
    out = {}
    for name, scores in candidates.items():
        metrics = evaluate_ranking(scores, survived, num_rounds, densities, rng_seed)
        metrics.pop("mse")
        out[name] = metrics
    return out
