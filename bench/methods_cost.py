"""Cost of each method's mask selection relative to one training epoch of each target, measured in one run;
AutoS scoring with each scorer against SNIP; rows per second writing the feature table.

Uses the prepared data of the profile when present (run `dvc repro prepare_data` first), else synthetic
images of the same shape and count. Usage: python bench/methods_cost.py [params.yaml] [--methods a,b,...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from common import REPO, profile, save
from throughput import Synthetic

from autos.device import resolve_device
from autos.features import feature_table, weight_features, write_table
from autos.masking import prunable_parameters
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.scorer import build_scorer, predict
from autos.study import method_settings
from autos.training import train


def _build(name: str, classes: int, width: int, size: int, seed: int) -> torch.nn.Module:
    return build_model(name, num_classes=classes, width=width, input_size=size, seed=seed)


def load_data(cfg, dataset: str):  # noqa: ANN001, ANN201
    path = REPO / "data" / "prepared" / dataset
    if path.exists():
        from autos.data.prepared import load_prepared

        return load_prepared(path), "prepared"
    settings = cfg.data.datasets[dataset]
    classes = 10 if dataset == "cifar10" else 200
    per_class = settings.max_train_per_class or (500 if dataset == "cifar10" else 100)
    size = settings.image_size or (32 if dataset == "cifar10" else 64)
    return Synthetic(per_class * classes, size, classes), "synthetic"


def paper_scorer_cost(model, data, cfg, device, num_weights: int, sample: int = 16384) -> dict:  # noqa: ANN001
    """The `paper` scorer (a ResNet-18 forward per weight) is too slow on a CPU to score a whole target here:
    time the features of the whole target plus a prediction on ``sample`` weights, extrapolate linearly."""
    out = {}
    start = time.perf_counter()
    _, features = weight_features(model, data, cfg.features, device=device, seed=0, extra=[])
    out["feature_seconds"] = time.perf_counter() - start
    rows = torch.cat([torch.stack([f["w0"].flatten(), f["g0"].flatten()], 1) for f in features.values()])[:sample]
    for width in (8, 64):
        net, _ = build_scorer("paper", {"width": width})
        net.eval()
        n = sample if width == 8 else sample // 16
        start = time.perf_counter()
        predict(net, rows[:n].numpy(), device=device)
        seconds = time.perf_counter() - start
        out[f"width{width}_seconds_per_weight"] = seconds / n
        out[f"width{width}_extrapolated_seconds"] = out["feature_seconds"] + seconds / n * num_weights
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", nargs="?", default="params.yaml")
    p.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    p.add_argument("--density", type=float, default=0.1)
    args = p.parse_args()
    cfg = profile(args.profile)
    device = resolve_device(cfg.device)
    methods = args.methods.split(",") if args.methods else PRUNERS.names()
    out: dict = {"profile": args.profile, "density": args.density, "targets": {}}

    for target, spec in cfg.transfer.targets.items():
        data, kind = load_data(cfg, spec.dataset)
        classes = int(data.train_y.max()) + 1
        size = int(data.train_x.shape[-1])
        build = partial(_build, spec.model, classes, spec.width, size)
        model = build(0)
        one_epoch = cfg.training.with_epochs(1)
        train(build(1), data, one_epoch, seed=0, device=device, evaluate_every_epoch=False)  # warm-up (oneDNN)
        start = time.perf_counter()
        train(build(0), data, one_epoch, seed=0, device=device, evaluate_every_epoch=False)
        epoch_seconds = time.perf_counter() - start  # one steady-state training epoch incl. its final test pass
        row: dict = {"data": kind, "train_images": len(data.train_y), "epoch_seconds": epoch_seconds, "methods": {}}
        num_weights = sum(p.numel() for p in prunable_parameters(model).values())
        row["prunable_weights"] = num_weights
        row["paper_scorer"] = paper_scorer_cost(model, data, cfg, device, num_weights)
        print(f"{target} autos[paper]: {row['paper_scorer']}", flush=True)
        for method in methods:
            settings = method_settings(cfg, method)
            scorers = {"mlp": {}} if method == "autos" else {None: None}
            for scorer_name, scorer_settings in scorers.items():
                label, loaded = method, None
                if scorer_name is not None:
                    net, s = build_scorer(scorer_name, scorer_settings)
                    net.prepare(torch.randn(4096, len(s.inputs)))  # untrained: cost does not depend on quality
                    loaded = (net.eval(), scorer_name, s, {})
                    label = f"autos[{scorer_name}]"
                ctx = PruneContext(model=model, data=data, recipe=cfg.training.with_epochs(spec.epochs),
                                   device=device, seed=0, num_classes=classes, build_model=build,
                                   cache_dir=Path(tempfile.mkdtemp()), root=REPO, features=cfg.features,
                                   scorer=loaded)
                start = time.perf_counter()
                try:
                    PRUNERS.get(method)(settings).prune(ctx, args.density)
                except Exception as exc:  # a benchmark records failures instead of hiding them
                    row["methods"][label] = {"error": repr(exc)}
                    continue
                seconds = time.perf_counter() - start
                row["methods"][label] = {"seconds": seconds, "epochs_equivalent": seconds / epoch_seconds}
                print(f"{target} {label}: {seconds:.2f}s = {seconds / epoch_seconds:.2f} epochs", flush=True)
        out["targets"][target] = row

    # rows per second writing the source feature table
    data, _ = load_data(cfg, cfg.source.dataset)
    model = build_model(cfg.source.model, num_classes=int(data.train_y.max()) + 1, width=cfg.source.width,
                        input_size=int(data.train_x.shape[-1]), seed=0)
    infos, feats = weight_features(model, data, cfg.features, device=device, seed=0)
    survived = {i.name: torch.randint(0, cfg.irp.num_rounds + 1, i.shape, dtype=torch.int8) for i in infos}
    table = feature_table(infos, feats, cfg.features.extra, survived=survived, num_rounds=cfg.irp.num_rounds)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_table(table, Path(tmp) / "t.parquet", {"bench": True})
        write_seconds = time.perf_counter() - start
        size = (Path(tmp) / "t.parquet").stat().st_size
    out["feature_table"] = {"rows": table.num_rows, "write_seconds": write_seconds,
                            "rows_per_second": table.num_rows / write_seconds, "bytes": size}
    save(f"methods_cost_{Path(args.profile).stem}", out)


if __name__ == "__main__":
    main()
