"""Pooled source models at the scorer level: does a scorer trained on one source's IRP label rank another model's
IRP survival better than |w0| does, and does pooling two sources help?

Usage: python bench/pooled_sources.py <study> <other table> [--name NAME]

<study> is a study folder whose features stage has run (its params.yaml gives the scorer config; its
data/features/0/source.parquet is the primary source, e.g. ResNet-18); <other table> is another source's labelled
table (e.g. VGG-16's, from `dvc repro features` with `-S source.model=vgg16_bn`). Three scorers with the study's
scorer config (the same code as the train_scorer stage: ``fit_scorer``, ``pool_tables``):
own (the primary table), pooled (primary + other, ``scorer.extra_tables``), other (the other table alone).
Each is evaluated on the held-out rows of the primary source and on held-out rows of the other source (the rows
the pooled scorer held out, which neither the own nor the pooled scorer trained on), next to |w0| on the same
rows. Writes bench/results/pooled_sources[_NAME].json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import save

from autos.features import pool_tables, read_table, table_metadata
from autos.scorer import evaluate_ranking, fit_scorer, input_matrix, predict, trivial_baselines
from autos.study import load_study, scorer_settings

DENSITIES = [0.1, 0.05]


def evaluate(fit, table, rows: np.ndarray, num_rounds: int, seed: int) -> dict:  # noqa: ANN001
    pred = predict(fit.model, input_matrix(table, fit.settings.inputs, rows), device=torch.device("cpu"))
    survived = table.column("survived").to_numpy()[rows].astype(np.int64)
    scorer = evaluate_ranking(pred, survived, num_rounds, DENSITIES, rng_seed=seed)
    w0 = trivial_baselines({c: table.column(c).to_numpy()[rows] for c in ("w0", "g0")}, survived, num_rounds,
                           DENSITIES, rng_seed=seed)["abs_w0"]
    return {"rows": int(len(rows)), "scorer": {k: v for k, v in scorer.items() if k != "mse"}, "abs_w0": w0}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("study", type=Path)
    p.add_argument("other", type=Path)
    p.add_argument("--name", default="")
    args = p.parse_args()
    cfg = load_study(args.study / "params.yaml").scorer
    primary_path = args.study / "data" / "features" / "0" / "source.parquet"  # source run 0
    inputs = list(scorer_settings(cfg).model_dump()["inputs"])
    columns = list(dict.fromkeys([*inputs, "label", "survived", "w0", "g0"]))
    own = read_table(primary_path).select(columns)
    other = read_table(args.other).select(columns)
    rounds = {"own": int(table_metadata(primary_path)["num_rounds"]),
              "other": int(table_metadata(args.other)["num_rounds"])}
    pooled = pool_tables(own, [args.other], columns)
    device = torch.device("cpu")
    fits = {"own": fit_scorer(own, cfg, device=device), "pooled": fit_scorer(pooled, cfg, device=device),
            "other": fit_scorer(other, cfg, device=device)}
    n = own.num_rows
    held = {  # rows no scorer trained on, where it is evaluated
        "own": np.intersect1d(fits["own"].holdout_idx, fits["pooled"].holdout_idx[fits["pooled"].holdout_idx < n]),
        "other": np.intersect1d(fits["pooled"].holdout_idx[fits["pooled"].holdout_idx >= n] - n,
                                fits["other"].holdout_idx),
    }
    out: dict = {"study": str(args.study), "other": str(args.other), "scorer": cfg.model_dump(mode="json"),
                 "sources": {"own": table_metadata(primary_path)["source"],
                             "other": table_metadata(args.other)["source"]},
                 "rows": {"own": n, "other": other.num_rows}, "results": {}}
    for scorer_name, fit in fits.items():
        for source, table in (("own", own), ("other", other)):
            rows = held[source]
            out["results"][f"{scorer_name} -> {source}"] = evaluate(fit, table, rows, rounds[source], cfg.seed)
    for key, r in out["results"].items():
        print(f"{key:18s} rows {r['rows']:7d}  Spearman {r['scorer']['spearman']:.3f} vs |w0| "
              f"{r['abs_w0']['spearman']:.3f}  top-5% {r['scorer']['topk_overlap_d0.05']:.3f} vs "
              f"{r['abs_w0']['topk_overlap_d0.05']:.3f}")
    save("pooled_sources" + (f"_{args.name}" if args.name else ""), out)


if __name__ == "__main__":
    main()
