"""The residual label: does IRP survival carry anything beyond |w0| within a layer, and can the scorer learn it?

Usage: python bench/residual_label.py <study> [--bins 50] [--name NAME]

<study> is a study folder whose features stage has run (its params.yaml gives the scorer config, its
data/features/0/source.parquet the labelled table). Within each layer, the label is the survival count's rank
percentile (ties averaged) minus what the |w0| rank percentile predicts of it (the mean survival percentile of the
training rows in the same |w0| percentile bin of that layer): the residual rank after magnitude. A scorer with the
study's config (inputs, loss, epochs: the train_scorer stage's ``fit_scorer``) is fitted to it, on the same seeded
split as the stage. On the held-out rows this reports:

- how much of the within-layer survival order |w0| explains (Spearman of |w0| with survival, per layer);
- Spearman(prediction, residual) for the fitted scorer and for trivial scores (|g0|, |w0 g0|, signed w0 g0, random):
  0 means the inputs hold nothing of what |w0| leaves unexplained;
- the within-layer ranking a residual scorer would prune with (|w0|'s fit + the predicted residual) against |w0|
  alone: Spearman with survival and the top-10% overlap with the top-10% by survival, per layer, row-weighted.

The label is built from the committed table, so the answer needs no IRP re-run. The pipeline's own
``scorer.label: residual_rank`` (``autos.scorer.labels``) is the same label with one magnitude curve pooled over
layers instead of one per layer here, so that it can be applied to a target's layers.
Writes bench/results/residual_label[_NAME].json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from common import save

from autos.features import read_table, table_metadata
from autos.scorer import evaluate_ranking, fit_scorer, input_matrix, predict, split_rows
from autos.scorer.labels import within_layer_percentiles
from autos.scorer.metrics import residual_metrics
from autos.study import load_study, scorer_settings

TOPK_DENSITY = 0.1


def magnitude_fit(p_w: np.ndarray, p_s: np.ndarray, layer: np.ndarray, train: np.ndarray, bins: int) -> np.ndarray:
    """E[p_s | p_w's bin, layer] from the training rows, evaluated at every row (a binned regression per layer)."""
    fitted = np.empty(p_w.size, dtype=np.float64)
    bin_of = np.minimum((p_w * bins).astype(np.int64), bins - 1)
    is_train = np.zeros(p_w.size, dtype=bool)
    is_train[train] = True
    for idx in np.unique(layer):
        rows = layer == idx
        fit_rows = rows & is_train
        sums = np.bincount(bin_of[fit_rows], weights=p_s[fit_rows], minlength=bins)
        counts = np.bincount(bin_of[fit_rows], minlength=bins)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), p_s[fit_rows].mean())
        fitted[rows] = means[bin_of[rows]]
    return fitted


def per_layer(scores: np.ndarray, survived: np.ndarray, layer: np.ndarray, num_rounds: int, seed: int
              ) -> dict[str, float]:
    """Row-weighted means over layers of the within-layer Spearman and top-10% overlap with survival."""
    spearman, overlap, weights = [], [], []
    for idx in np.unique(layer):
        rows = layer == idx
        if rows.sum() < 20 or np.ptp(survived[rows]) == 0:
            continue
        m = evaluate_ranking(scores[rows], survived[rows], num_rounds, [TOPK_DENSITY], rng_seed=seed)
        spearman.append(m["spearman"])
        overlap.append(m[f"topk_overlap_d{TOPK_DENSITY:g}"])
        weights.append(rows.sum())
    w = np.asarray(weights, dtype=np.float64)
    return {"spearman": float(np.average(spearman, weights=w)),
            f"topk_overlap_d{TOPK_DENSITY:g}": float(np.average(overlap, weights=w)), "layers": len(weights)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("study", type=Path)
    p.add_argument("--bins", type=int, default=50, help="|w0| percentile bins per layer for the magnitude fit")
    p.add_argument("--name", default="")
    args = p.parse_args()
    cfg = load_study(args.study / "params.yaml").scorer
    path = args.study / "data" / "features" / "0" / "source.parquet"  # source run 0
    meta = table_metadata(path)
    num_rounds = int(meta["num_rounds"])
    inputs = list(scorer_settings(cfg).model_dump()["inputs"])
    table = read_table(path).select(list(dict.fromkeys(["layer_idx", *inputs, "w0", "g0", "survived", "label"])))
    layer = table.column("layer_idx").to_numpy().astype(np.int64)
    w0 = table.column("w0").to_numpy().astype(np.float64)
    g0 = table.column("g0").to_numpy().astype(np.float64)
    survived = table.column("survived").to_numpy().astype(np.int64)

    train, held = split_rows(table.num_rows, cfg.holdout_fraction, cfg.seed)  # the split fit_scorer draws
    p_w = within_layer_percentiles(np.abs(w0), layer)
    p_s = within_layer_percentiles(survived.astype(np.float64), layer)
    fitted = magnitude_fit(p_w, p_s, layer, train, args.bins)
    residual = p_s - fitted
    relabelled = table.set_column(table.column_names.index("label"), "label",
                                  pa.array(residual.astype(np.float32)))
    fit = fit_scorer(relabelled, cfg, device=torch.device("cpu"))
    assert np.array_equal(fit.holdout_idx, held)
    pred = predict(fit.model, input_matrix(relabelled, fit.settings.inputs, held), device=torch.device("cpu"))

    r, lh, s = residual[held], layer[held], survived[held]
    residual_spearman = residual_metrics(pred, r, {"w0": w0[held], "g0": g0[held]}, rng_seed=cfg.seed)
    out = {
        "study": str(args.study), "source": meta.get("source"), "num_rounds": num_rounds,
        "criterion": meta.get("irp", {}).get("criterion") if isinstance(meta.get("irp"), dict) else None,
        "scorer": cfg.model_dump(mode="json"), "bins": args.bins, "rows": {"train": int(train.size),
                                                                          "holdout": int(held.size)},
        "residual_std": float(residual[held].std()), "survival_percentile_std": float(p_s[held].std()),
        "within_layer_spearman_abs_w0_vs_survival": per_layer(np.abs(w0[held]), s, lh, num_rounds, cfg.seed),
        "residual_spearman": {k.removeprefix("spearman_"): v for k, v in residual_spearman.items() if k != "std"},
        "within_layer_ranking": {
            "abs_w0": per_layer(np.abs(w0[held]), s, lh, num_rounds, cfg.seed),
            "magnitude_fit_plus_predicted_residual": per_layer(fitted[held] + pred, s, lh, num_rounds, cfg.seed),
            "magnitude_fit_plus_true_residual (ceiling)": per_layer(fitted[held] + r, s, lh, num_rounds, cfg.seed),
        },
        "fit_seconds": fit.seconds,
    }
    print(f"residual std {out['residual_std']:.3f} (survival percentile std {out['survival_percentile_std']:.3f})")
    for k, v in out["residual_spearman"].items():
        print(f"Spearman(residual, {k}) = {v:.3f}")
    for k, v in out["within_layer_ranking"].items():
        print(f"within-layer {k}: Spearman {v['spearman']:.3f}, top-10% overlap {v['topk_overlap_d0.1']:.3f}")
    save("residual_label" + (f"_{args.name}" if args.name else ""), out)


if __name__ == "__main__":
    main()
