"""`autos-prune`: prune a registered model at initialization with a trained scorer, from the command line.

    autos-prune --scorer data/scorer --model vgg16_bn --width 16 --data data/prepared/cifar10 \
                --sparsity 0.95 --seed 0 --out masks.pt

Writes the masks (a dict of bool tensors keyed by parameter name, loadable with torch.load(weights_only=True))
and a JSON summary next to them (achieved and effective sparsity, per-layer density, collapse). From Python, the
same is `weight_features` + `score_layers` + `select_mask` (README).

Exit status: 0 done; 2 a bad argument (one line naming the value and its allowed range; nothing read or written);
1 a missing or corrupt input file (one line naming the file). Both outputs are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from autos.config import FeaturesConfig
from autos.data.prepared import load_prepared
from autos.device import resolve_device
from autos.errors import AutosError, DataError
from autos.features import weight_features
from autos.files import atomic_write_json, save_torch
from autos.health import effective_summary
from autos.masking import mask_summary, select_mask
from autos.models import MODELS, build_model
from autos.registry import UnknownNameError
from autos.scorer import load_scorer, required_extra, score_layers

EXIT_USAGE = 2  # a bad argument: nothing was read or written
EXIT_DATA = 1  # a missing or corrupt input file (as the stages)


class UsageError(AutosError):
    """A command-line value outside its allowed range."""


def check_args(args: argparse.Namespace) -> None:
    """Every argument checked before anything is loaded or written; UsageError names the value and the range."""
    problems = []
    if args.width < 1:
        problems.append(f"--width must be a positive integer (>= 1), got {args.width}")
    if not 0.0 < args.sparsity < 1.0:  # also rejects nan
        problems.append(f"--sparsity must be in (0, 1) (the fraction of weights removed), got {args.sparsity}")
    if args.gradient_batches is not None and args.gradient_batches < 1:
        problems.append(f"--gradient-batches must be a positive integer (>= 1) or omitted, got {args.gradient_batches}")
    if args.model not in MODELS:
        problems.append(f"--model: unknown model {args.model!r}; allowed: {', '.join(MODELS.names())}")
    if not Path(args.scorer).is_dir():
        problems.append(f"--scorer {args.scorer}: no such directory (expected the train_scorer stage's output, "
                        "e.g. data/scorer)")
    if not Path(args.data).is_dir():
        problems.append(f"--data {args.data}: no such directory (expected a prepared dataset, data/prepared/<name>)")
    if args.device == "cuda" and not torch.cuda.is_available():
        problems.append("--device cuda: no CUDA device is available; allowed here: auto, cpu")
    out = Path(args.out)
    if out.is_dir():
        problems.append(f"--out {args.out}: is a directory, expected a .pt file path")
    elif out.suffix == ".json":
        problems.append(f"--out {args.out}: must not end in .json (the summary is written to <out>.json beside it)")
    if problems:
        raise UsageError("; ".join(problems))


def write_outputs(masks: dict[str, torch.Tensor], summary: dict, out: Path) -> None:
    """Masks and summary each written atomically (temp + rename): a kill never leaves a torn or partial file."""
    save_torch(masks, out)
    atomic_write_json(out.with_suffix(".json"), summary)


def prune_with_scorer(args: argparse.Namespace) -> dict:
    check_args(args)
    scorer, _name, settings, _meta = load_scorer(args.scorer)  # the small file first: a bad one fails fast
    data = load_prepared(Path(args.data))
    model = build_model(args.model, num_classes=data.num_classes, width=args.width,
                        input_size=int(data.train_x.shape[-1]), seed=args.seed)
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
    write_outputs(masks, summary, Path(args.out))
    return summary


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line (argparse prints the whole usage first), same exit status as our own argument checks."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="autos-prune", description=__doc__.split("\n\n")[0])
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
    except DataError as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_DATA
    except (AutosError, UnknownNameError) as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({k: summary[k] for k in ("sparsity", "effective_sparsity", "collapsed", "min_layer_density")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
