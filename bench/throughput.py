"""Training throughput of the source model with and without masks, measured in the same run (alternating).

Usage: python bench/throughput.py [params.yaml] [--device cpu|cuda] [--compile]

On CPU (the default) this writes bench/results/throughput.json; on another device, or with ``--compile``
(``train(compile_model=True)``), throughput_<device>[_compile].json, so the CPU table is never overwritten.
"""

from __future__ import annotations

import argparse

import torch
from common import Timer, profile, save

from autos.masking import prunable_parameters, select_mask
from autos.models import build_model
from autos.training import train


class Synthetic:
    def __init__(self, n: int, size: int, classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.train_x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.train_y = torch.arange(n) % classes
        self.test_x, self.test_y = self.train_x[:256], self.train_y[:256]
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("params", nargs="?", default="params.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="train(compile_model=True)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = profile(args.params)
    spec = cfg.source
    data = Synthetic(2048, 32, 10)
    recipe = cfg.training.with_epochs(1)
    results: dict[str, list[float]] = {"dense": [], "masked_density_0.1": []}
    for repeat in range(3):
        for label in results:
            model = build_model(spec.model, num_classes=10, width=spec.width, input_size=32, seed=0)
            masks = None
            if label != "dense":
                scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
                masks = select_mask(scores, 0.1)
            with Timer():
                r = train(model, data, recipe, seed=repeat, device=device, masks=masks, evaluate_every_epoch=False,
                          compile_model=args.compile)
            results[label].append(r.train_images_per_second)
    name = "throughput" if device.type == "cpu" and not args.compile else f"throughput_{device.type}"
    name += "_compile" if args.compile else ""
    save(name, {"model": spec.model_dump(), "images": 2048, "batch_size": recipe.batch_size,
                "device": str(device), "compile": args.compile, "precision": recipe.precision,
                "train_images_per_second": {k: {"best": max(v), "all": v} for k, v in results.items()}})


if __name__ == "__main__":
    main()
