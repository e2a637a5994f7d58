"""Where a masked training step's time goes on a GPU, and what the loop's host overhead costs.

Usage (on a CUDA machine): python bench/gpu_profile.py [--images N] [--out DIR]

bench/gpu.py found ResNet-18 / CIFAR-10 at batch 128 no faster in bf16 than in fp32 and two packed cells nearly
doubling the GPU's throughput: signs that the step is bound by the host (Python and kernel launches), not the GPU.
This profiles 20 masked steps (density 0.05) with torch.profiler and reports the GPU's busy fraction (summed kernel
time over wall time) and the ops with the most host time, then times the loop's variants: the masks multiplied with
one ``torch._foreach_mul_`` per step instead of one ``mul_`` per layer, SGD ``fused=True``, and batch 512 (what the
GPU does when launches are amortised). Writes gpu_profile.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import RESULTS, machine
from gpu import EpochClock
from throughput import Synthetic

from autos.config import TrainRecipe
from autos.masking import prunable_parameters, select_mask
from autos.models import build_model
from autos.training import Callback, train

CUDA = torch.device("cuda")


@torch.no_grad()
def fused_sgd(params, recipe: TrainRecipe) -> torch.optim.Optimizer:  # noqa: ANN001
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
        fused=True,
    )


class Profile(Callback):
    def __init__(self) -> None:
        self.prof = torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA],
            schedule=torch.profiler.schedule(wait=40, warmup=5, active=20, repeat=1),
        )
        self.wall = 0.0
        self._t0 = 0.0

    def on_train_begin(self, state) -> None:  # noqa: ANN001
        self.prof.start()

    def on_step_end(self, state) -> None:  # noqa: ANN001
        if state.step == 45:
            torch.cuda.synchronize()
            self._t0 = time.perf_counter()
        if state.step == 65:
            torch.cuda.synchronize()
            self.wall = time.perf_counter() - self._t0
        self.prof.step()

    def on_epoch_end(self, state) -> None:  # noqa: ANN001
        if state.epoch == 0:
            self.prof.stop()


def run(
    images: int,
    precision: str,
    batch_size: int = 128,
    *,
    fused: bool = False,
    callbacks: list | None = None,
) -> float:
    data = Synthetic(images, 32, 10)
    model = build_model("resnet18", num_classes=10, width=64, input_size=32, seed=0)
    masks = select_mask({n: p.detach().abs() for n, p in prunable_parameters(model).items()}, 0.05)
    recipe = TrainRecipe(epochs=3 if callbacks is None else 1, batch_size=batch_size, lr=0.01, precision=precision)
    clock = EpochClock()
    train(model, data, recipe, seed=0, device=CUDA, masks=masks, callbacks=[clock, *(callbacks or [])],
          evaluate_every_epoch=False, optimizer_factory=fused_sgd if fused else None)
    return images / (clock.ends[2] - clock.ends[1]) if callbacks is None else 0.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=25600)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--skip-profile", action="store_true")
    args = p.parse_args()
    out: dict = {
        "machine": {**machine(), "gpu": torch.cuda.get_device_name(0)},
        "images": args.images,
        "density": 0.05,
        "profile": {},
        "variants": [],
    }
    for precision in ("fp32", "bf16") if not args.skip_profile else ():
        prof = Profile()
        run(args.images, precision, callbacks=[prof])
        events = prof.prof.key_averages()
        device_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        cpu_top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
        out["profile"][precision] = {
            "wall_seconds_20_steps": prof.wall,
            "gpu_kernel_seconds_20_steps": device_us / 1e6,
            "gpu_busy_fraction": device_us / 1e6 / prof.wall if prof.wall else None,
            "top_host_ops_ms": {e.key: e.self_cpu_time_total / 1e3 for e in cpu_top},
            "kernels_per_step": sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 20,
        }
        print(precision, json.dumps(out["profile"][precision], indent=1), flush=True)
    for precision in ("fp32", "bf16"):
        for label, kw in {
            "loop as is": {},
            "fused SGD": {"fused": True},
            "batch 512": {"batch_size": 512},
        }.items():
            r = {"precision": precision, "variant": label, "images_per_second": run(args.images, precision, **kw)}
            out["variants"].append(r)
            print(json.dumps(r), flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_profile.json").write_text(json.dumps(out, indent=2) + "\n")
    for r in out["variants"]:
        print(f"| {r['precision']} | {r['variant']} | {r['images_per_second']:.0f} |")


if __name__ == "__main__":
    main()
