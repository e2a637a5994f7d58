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


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float("nan") if np.ptp(a) == 0 or np.ptp(b) == 0 else float(spearmanr(a, b).statistic)


def residual_metrics(
    output: np.ndarray, residual: np.ndarray, columns: Mapping[str, np.ndarray | Tensor], rng_seed: int = 0
) -> dict[str, float]:
    """How much of the residual rank after |w0| (``autos.scorer.labels``) a residual scorer learned, on held-out
    rows: its ``std``, and Spearman(residual, x) for the scorer's ``output`` and trivial scores (|g0|, |w0 g0|,
    signed w0 g0, random). 0 means the inputs hold nothing of what |w0| leaves unexplained."""
    residual = np.asarray(residual, dtype=np.float64).reshape(-1)
    w0 = np.asarray(columns["w0"], dtype=np.float64).reshape(-1)
    g0 = np.asarray(columns["g0"], dtype=np.float64).reshape(-1)
    candidates = {"scorer": np.asarray(output, dtype=np.float64).reshape(-1), "abs_g0": np.abs(g0),
                  "abs_w0_x_g0": np.abs(w0 * g0), "w0_x_g0": w0 * g0,
                  "random": np.random.default_rng([rng_seed, 5]).random(residual.size)}
    return {"std": float(residual.std()), **{f"spearman_{k}": _rho(v, residual) for k, v in candidates.items()}}


def ticket_diagnostics(
    pred: np.ndarray,
    w0: np.ndarray,
    survived: np.ndarray,
    layer_idx: np.ndarray,
    layer_names: Sequence[str],
    num_rounds: int,
    rng_seed: int,
) -> dict | None:
    """The source's IRP ticket (the weights that survived every round) against the masks the scorer and |w0| would
    choose at the ticket's density, on every source weight (what does the scorer learn?).

    Returns {"density": the ticket's global density, "overlap": {"autos" | "abs_w0" | "random": |mask & ticket| / k},
    "layers": [{"layer", "weights", "irp_ticket", "autos", "abs_w0"}: per-layer densities]} or None when no weight
    survived every round. Ties are broken by one seeded permutation (as ``evaluate_ranking``). Rows the scorer was
    trained on are included, so the overlap is optimistic for the scorer; the held-out ``topk_overlap`` metrics
    are the unbiased ones. The per-layer densities say whether AutoS reproduces the ticket's layer profile (which
    the shuffle sanity check then tests in training).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    w0 = np.asarray(w0, dtype=np.float64).reshape(-1)
    layer_idx = np.asarray(layer_idx).reshape(-1)
    ticket = np.asarray(survived).reshape(-1) == num_rounds
    n, k = pred.size, int(ticket.sum())
    if not (pred.size == w0.size == ticket.size == layer_idx.size):
        raise ValueError(f"row counts differ: pred {pred.size}, w0 {w0.size}, survived {ticket.size}, "
                         f"layer_idx {layer_idx.size}")
    if k == 0:
        return None
    tiebreak = np.random.default_rng(rng_seed).permutation(n)
    masks = {"irp_ticket": ticket}
    candidates = {"autos": pred, "abs_w0": np.abs(w0), "random": np.random.default_rng([rng_seed, 3]).random(n)}
    for name, scores in candidates.items():
        keep = np.zeros(n, dtype=bool)
        keep[_descending_order(scores, tiebreak)[:k]] = True
        masks[name] = keep
    counts = np.bincount(layer_idx, minlength=len(layer_names))
    layers = []
    for i, name in enumerate(layer_names):
        if counts[i] == 0:
            continue
        row: dict = {"layer": name, "weights": int(counts[i])}
        for label in ("irp_ticket", "autos", "abs_w0"):
            row[label] = float(masks[label][layer_idx == i].mean())
        layers.append(row)
    return {"density": k / n,
            "overlap": {name: float((masks[name] & ticket).sum() / k) for name in candidates},
            "layers": layers}
