"""GPU throughput of the paper profile's training loop: precision, torch.compile, cuDNN determinism, cells per GPU.

Usage (on a CUDA machine): python bench/gpu.py [--images N] [--out DIR]

Measures, with our own ``train()`` (the loop every method and IRP use) on synthetic uint8 images of the paper
shapes (CIFAR-10 32 px / 10 classes, Tiny ImageNet 64 px / 200 classes), batch 128 as configs/paper.yaml:

1. steady-state training images/s of ResNet-18 and VGG-16-bn (width 64) for fp32 and bf16, eager and compiled, with
   the loop's deterministic cuDNN (the default: same seed, same weights) and with cuDNN autotuning instead;
2. the same with masks at density 0.05 (the per-step mask multiplies);
3. several cells packed on one GPU (what ``execution.num_gpus: 0.5 / 0.25`` does on Ray): k worker processes train
   at once, and the sum of their steady images/s is the GPU's cells throughput.

"Steady" is the second of three epochs, read between epoch-end callbacks (each follows the loop's one host sync per
epoch), so the first epoch's compile and cuDNN set-up are excluded. Writes gpu_throughput_<part>.json (to --out,
default bench/results/).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from common import RESULTS, machine
from throughput import Synthetic

import autos.training.loop as training
from autos.config import TrainRecipe
from autos.masking import prunable_parameters, select_mask
from autos.models import build_model
from autos.training import Callback, train

TARGETS = {  # name: (arch, dataset shape)
    "resnet18_cifar10": ("resnet18", 32, 10),
    "vgg16_cifar10": ("vgg16_bn", 32, 10),
    "resnet18_tiny_imagenet": ("resnet18", 64, 200),
}


class EpochClock(Callback):
    """perf_counter at each epoch end (after the loop's one host sync per epoch)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_begin(self, state) -> None:  # noqa: ANN001
        self.ends = [time.perf_counter()]

    def on_epoch_end(self, state) -> None:  # noqa: ANN001
        torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


@contextlib.contextmanager
def _autotuned_cudnn(device: torch.device) -> Iterator[None]:
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False):
        yield


def steady_images_per_second(
    target: str,
    *,
    images: int,
    precision: str,
    compile_model: bool,
    deterministic: bool = True,
    density: float | None = None,
) -> float:
    arch, size, classes = TARGETS[target]
    data = Synthetic(images, size, classes)
    model = build_model(arch, num_classes=classes, width=64, input_size=size, seed=0)
    masks = None
    if density is not None:
        masks = select_mask({n: p.detach().abs() for n, p in prunable_parameters(model).items()}, density)
    recipe = TrainRecipe(epochs=3, batch_size=128, lr=0.01, precision=precision, compile=compile_model)
    clock = EpochClock()
    original = training._deterministic_cudnn
    if not deterministic:
        training._deterministic_cudnn = _autotuned_cudnn  # type: ignore[assignment]
    try:
        train(
            model,
            data,
            recipe,
            seed=0,
            device=torch.device("cuda"),
            masks=masks,
            callbacks=[clock],
            evaluate_every_epoch=False,
        )
    finally:
        training._deterministic_cudnn = original  # type: ignore[assignment]
    return images / (clock.ends[2] - clock.ends[1])


def worker(args: argparse.Namespace) -> None:
    ips = steady_images_per_second(
        args.target, images=args.images, precision=args.precision, compile_model=False, deterministic=True
    )
    print(json.dumps({"images_per_second": ips}), flush=True)


def packed(target: str, k: int, images: int, precision: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--target", target, "--images", str(images), "--precision", precision]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    outs = [p.communicate()[0] for p in procs]
    each = [json.loads(o.strip().splitlines()[-1])["images_per_second"] for o in outs]
    return {
        "cells": k,
        "each_images_per_second": each,
        "sum_images_per_second": sum(each),
        "wall_seconds": time.perf_counter() - start,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=12800)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--target", default="resnet18_cifar10")
    p.add_argument("--precision", default="fp32")
    p.add_argument(
        "--part",
        choices=["eager", "compile", "packing"],
        default="eager",
        help="eager rows, compiled rows (their compiles take minutes), or cells packed per GPU",
    )
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    assert torch.cuda.is_available(), "bench/gpu.py needs a CUDA device"
    out: dict = {
        "machine": {**machine(), "gpu": torch.cuda.get_device_name(0)},
        "images": args.images,
        "batch_size": 128,
        "width": 64,
        "rows": [],
        "packing": [],
    }
    table = []

    def row(**kw: object) -> None:
        start = time.perf_counter()
        ips = steady_images_per_second(images=args.images, **kw)  # type: ignore[arg-type]
        r = {**kw, "images_per_second": ips, "call_seconds": time.perf_counter() - start}
        out["rows"].append(r)
        table.append(r)
        print(json.dumps(r), flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_text(json.dumps(out, indent=2) + "\n")

    name = f"gpu_throughput_{args.part}.json"
    for target in TARGETS if args.part != "packing" else ():
        for precision in ("fp32", "bf16"):
            if args.part == "compile":
                row(target=target, precision=precision, compile_model=True)
                continue
            row(target=target, precision=precision, compile_model=False)
            row(target=target, precision=precision, compile_model=False, deterministic=False)
        if args.part == "eager":
            row(target=target, precision="bf16", compile_model=False, density=0.05)
    for precision in ("fp32", "bf16") if args.part == "packing" else ():
        for k in (1, 2, 4):
            r = {
                "target": "resnet18_cifar10",
                "precision": precision,
                **packed("resnet18_cifar10", k, args.images, precision),
            }
            out["packing"].append(r)
            print(json.dumps(r), flush=True)
            (args.out / name).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| target | precision | compile | cudnn | density | images/s |")
    for r in table:
        print(
            f"| {r['target']} | {r['precision']} | {r['compile_model']} | "
            f"{'deterministic' if r.get('deterministic', True) else 'autotuned'} | {r.get('density', 1.0)} | "
            f"{r['images_per_second']:.0f} |"
        )
    for r in out["packing"]:
        print(f"packed {r['cells']} x {r['precision']}: sum {r['sum_images_per_second']:.0f} img/s")


if __name__ == "__main__":
    main()
