"""`autos-prune`: prune a registered model at initialization with a trained scorer, from the command line.

    autos-prune --scorer data/scorer --model vgg16_bn --width 16 --data data/prepared/cifar10 \
                --sparsity 0.95 --seed 0 --out masks.pt

Writes the masks (a dict of bool tensors keyed by parameter name, loadable with torch.load(weights_only=True))
and a JSON summary next to them (achieved and effective sparsity, per-layer density, collapse). From Python, the
same is `weight_features` + `score_layers` + `select_mask` (README).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from autos.config import FeaturesConfig
from autos.data.prepared import load_prepared
from autos.errors import AutosError
from autos.features import weight_features
from autos.health import effective_summary
from autos.masking import mask_summary, select_mask
from autos.models import MODELS, build_model
from autos.registry import UnknownNameError
from autos.scorer import load_scorer, required_extra, score_layers
from autos.training import resolve_device


def prune_with_scorer(args: argparse.Namespace) -> dict:
    if not 0.0 < args.sparsity < 1.0:
        raise AutosError(f"--sparsity must be in (0, 1) (the fraction of weights removed), got {args.sparsity}")
    data = load_prepared(Path(args.data))
    model = build_model(args.model, num_classes=data.num_classes, width=args.width,
                        input_size=int(data.train_x.shape[-1]), seed=args.seed)
    scorer, _name, settings, _meta = load_scorer(args.scorer)
    device = resolve_device(args.device)
    features_cfg = FeaturesConfig(gradient_max_batches=args.gradient_batches)
    _, features = weight_features(model, data, features_cfg, device=device, seed=args.seed,
                                  include_classifier=not args.dense_classifier, extra=required_extra(settings))
    scores = score_layers(scorer, settings, features, device=device)
    masks = select_mask(scores, 1.0 - args.sparsity, scope=args.scope)
    summary = {k: v for k, v in mask_summary(masks).items()}
    effective = effective_summary(model, masks, int(data.train_x.shape[-1]))
    summary.update(effective_sparsity=effective["effective_sparsity"], collapsed=effective["collapsed"],
                   requested_sparsity=args.sparsity, model=args.model, width=args.width, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(masks, out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="autos-prune", description=__doc__.split("\n\n")[0])
    p.add_argument("--scorer", required=True, help="scorer directory written by the train_scorer stage")
    p.add_argument("--model", required=True, help=f"registered model: {', '.join(MODELS.names())}")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--data", required=True, help="a prepared dataset directory (data/prepared/<name>)")
    p.add_argument("--sparsity", type=float, required=True, help="fraction of prunable weights removed, in (0, 1)")
    p.add_argument("--scope", choices=["global", "layerwise"], default="global")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    p.add_argument("--gradient-batches", type=int, default=None, help="cap the g0 pass (default: full set)")
    p.add_argument("--dense-classifier", action="store_true", help="do not prune the final Linear layer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="output .pt for the masks (a .json summary lands beside it)")
    args = p.parse_args(argv)
    try:
        summary = prune_with_scorer(args)
    except (AutosError, UnknownNameError) as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("sparsity", "effective_sparsity", "collapsed", "min_layer_density")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
