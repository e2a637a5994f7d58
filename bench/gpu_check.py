"""The one GPU check: what a lent device runs (in under 8 minutes on one H100) to measure the paper profile's rates.

Usage (on the device, from the repo root): python bench/gpu_check.py [--out DIR] [--parts cell,packing,...]
Dry run of the same code on a CPU with tiny sizes (what tests/test_bench_gpu_check.py runs): --tiny --device cpu

Every timed part runs three trials, interleaved (the trial loop is outermost, so a clock or thermal drift spreads
over every configuration instead of biasing one), times GPU work with CUDA events (host clocks where CUDA is absent),
and records the GPU's clocks, temperature and power before and after (nvidia-smi). Parts:

- ``cell``: one cell's steady training images/s (epochs 2-3 of 3, masks at density 0.05) of ResNet-18 width 64 on
  CIFAR-10 shapes: eager vs ``training.cuda_graph`` x fp32 / bf16 x batch 128 / 512;
- ``packing``: 1, 2 and 4 cells as separate processes on the one GPU (what ``execution.num_gpus: 0.5 / 0.25``
  does on Ray), released together by a barrier; their summed images/s over the window all of them were training;
- ``g0``: the features' g0 pass over 50,000 images at batch 256 (``autos.features.initial_gradients``, the
  paper profile's features settings);
- ``scorer``: the ``paper`` scorer's prediction rows/s (``configs/paper.yaml``'s scorer settings);
- ``methods``: each single-shot method's selection seconds at the paper profile's settings, one trial each (the
  methods that train are timed by the study itself).

Writes gpu_check.json (to --out, default bench/results/) after every part, so a run cut short keeps what it measured,
and prints a Markdown summary for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from common import REPO, RESULTS, machine, profile
from throughput import Synthetic

from autos.config import TrainRecipe
from autos.features import initial_gradients
from autos.masking import prunable_parameters, select_mask
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.scorer import build_scorer, predict
from autos.study import method_settings, scorer_settings
from autos.training import Callback, train

PARTS = ("cell", "packing", "g0", "scorer", "methods")
TRIALS = 3
PAPER = "configs/paper.yaml"


class Sizes:
    """What each part runs on: the real check, or a tiny dry run of the same code."""

    def __init__(self, tiny: bool) -> None:
        self.width = 4 if tiny else 64
        self.images = 256 if tiny else 12_800  # per epoch of a timed cell: 100 steps at batch 128
        self.batches = (32, 64) if tiny else (128, 512)
        self.packed = (1, 2) if tiny else (1, 2, 4)
        self.g0_images = 512 if tiny else 50_000
        self.scorer_rows = 256 if tiny else 65_536
        self.scorer_width = 8 if tiny else None  # None: the paper profile's
        self.method_images = 256 if tiny else 50_000
        self.methods: list[str] = []  # empty: every registered method


# --------------------------------------------------------------------------- clocks


def gpu_state() -> dict[str, str]:
    """nvidia-smi's view of the GPU now (clocks, temperature, power); empty without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return {}
    fields = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,power.limit"
    done = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30)
    values = done.stdout.strip().splitlines()[0].split(", ") if done.returncode == 0 and done.stdout.strip() else []
    return dict(zip(fields.split(","), values, strict=False))


class Clock:
    """Elapsed seconds of GPU work between marks: CUDA events on a GPU, the host clock after a sync elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self, start: int, end: int) -> float:
        if self.cuda:
            self.marks[end].synchronize()
            return float(self.marks[start].elapsed_time(self.marks[end])) / 1000.0
        return float(self.marks[end] - self.marks[start])


class EpochMarks(Callback):
    """A clock mark at the start of training and at every epoch's end."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_begin(self, state) -> None:  # noqa: ANN001
        self.clock.mark()

    def on_epoch_end(self, state) -> None:  # noqa: ANN001
        self.clock.mark()


def summary(values: list[float]) -> dict[str, Any]:
    return {"trials": values, "median": statistics.median(values), "min": min(values), "max": max(values),
            "spread_percent": 100.0 * (max(values) - min(values)) / statistics.median(values)}


# --------------------------------------------------------------------------- one cell


def masked_cell(sizes: Sizes, seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    model = build_model("resnet18", num_classes=10, width=sizes.width, input_size=32, seed=seed)
    return model, select_mask({n: p.detach().abs() for n, p in prunable_parameters(model).items()}, 0.05)


def cell_images_per_second(sizes: Sizes, data: Synthetic, device: torch.device, *, precision: str, batch: int,
                           graph: bool, epochs: int = 3) -> tuple[float, list[float]]:
    """Steady images/s (epochs 2..last) and the host time at each epoch end (for packing windows)."""
    model, masks = masked_cell(sizes)
    clock, stamps = Clock(device), []

    class Stamps(Callback):
        def on_epoch_end(self, state) -> None:  # noqa: ANN001
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stamps.append(time.time())

    recipe = TrainRecipe(epochs=epochs, batch_size=batch, lr=0.05, precision=precision, cuda_graph=graph)
    train(model, data, recipe, seed=0, device=device, masks=masks, callbacks=[EpochMarks(clock), Stamps()],
          evaluate_every_epoch=False)
    steady = clock.seconds(1, epochs)  # from the end of epoch 1 to the end of the last
    return len(data.train_y) * (epochs - 1) / steady, stamps


def part_cell(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    data = Synthetic(sizes.images, 32, 10)
    configs = [(p, b, g) for p in ("fp32", "bf16") for b in sizes.batches for g in (False, True)]
    trials: dict[tuple[str, int, bool], list[float]] = {c: [] for c in configs}
    for _ in range(TRIALS):  # interleaved: every configuration once per trial
        for precision, batch, graph in configs:
            ips, _ = cell_images_per_second(sizes, data, device, precision=precision, batch=batch, graph=graph)
            trials[(precision, batch, graph)].append(ips)
    return {"rows": [{"precision": p, "batch": b, "step": "graph" if g else "eager",
                      "images_per_second": summary(v)} for (p, b, g), v in trials.items()]}


# --------------------------------------------------------------------------- packing


PACK_MODES = (("fp32", False), ("bf16", False), ("bf16", True))


def _pack_worker(rank: int, tiny: bool, device_name: str, barrier: Any, queue: Any) -> None:
    sizes, device = Sizes(tiny), torch.device(device_name)
    torch.set_num_threads(1)
    data = Synthetic(sizes.images, 32, 10)
    for trial in range(TRIALS):
        for precision, graph in PACK_MODES:
            barrier.wait()  # every cell starts together
            start = time.time()
            _, stamps = cell_images_per_second(sizes, data, device, precision=precision, batch=sizes.batches[0],
                                               graph=graph, epochs=4)
            queue.put({"rank": rank, "trial": trial, "precision": precision, "graph": graph, "start": start,
                       "stamps": stamps, "images_per_epoch": len(data.train_y)})


def common_window_rate(runs: list[dict[str, Any]]) -> float:
    """Summed images/s over the window in which every cell was past its first epoch and none had finished:
    each cell's images in the window interpolated linearly between its epoch ends."""
    begin = max(r["stamps"][0] for r in runs)
    end = min(r["stamps"][-1] for r in runs)
    if end <= begin:
        return float("nan")
    total = 0.0
    for r in runs:
        done = [r["images_per_epoch"] * (i + 1) for i in range(len(r["stamps"]))]
        total += float(np.interp(end, r["stamps"], done) - np.interp(begin, r["stamps"], done))
    return total / (end - begin)


def part_packing(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    rows = []
    for k in sizes.packed:
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_pack_worker, args=(rank, sizes.width == 4, str(device), barrier, queue))
                 for rank in range(k)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=900) for _ in range(k * TRIALS * len(PACK_MODES))]
        for p in procs:
            p.join(timeout=60)
        for precision, graph in PACK_MODES:
            rates = []
            for trial in range(TRIALS):
                runs = [r for r in results if r["trial"] == trial and r["precision"] == precision
                        and r["graph"] == graph]
                rates.append(common_window_rate(runs))
            rows.append({"cells": k, "precision": precision, "step": "graph" if graph else "eager",
                         "sum_images_per_second": summary(rates)})
    return {"batch": sizes.batches[0], "rows": rows}


# --------------------------------------------------------------------------- g0, scorer, methods


def timed(device: torch.device, work: Callable[[], object]) -> float:
    clock = Clock(device)
    clock.mark()
    work()
    clock.mark()
    return clock.seconds(0, 1)


def part_g0(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    cfg = profile(PAPER)
    data = Synthetic(sizes.g0_images, 32, 10)
    model = build_model("resnet18", num_classes=10, width=sizes.width, input_size=32, seed=0).to(device)
    names = list(prunable_parameters(model))
    seconds = [timed(device, lambda: initial_gradients(model, data, names, cfg.features, device=device, seed=0))
               for _ in range(TRIALS)]
    return {"images": sizes.g0_images, "batch": cfg.features.gradient_batch_size,
            "images_per_second": summary([sizes.g0_images / s for s in seconds])}


def part_scorer(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    cfg = profile(PAPER)
    settings = scorer_settings(cfg.scorer).model_dump()
    if sizes.scorer_width is not None:
        settings["width"] = sizes.scorer_width
    net, typed = build_scorer(cfg.scorer.name, settings)
    net.eval()
    rows = torch.randn(sizes.scorer_rows, len(typed.inputs)).numpy()
    seconds = [timed(device, lambda: predict(net, rows, device=device)) for _ in range(TRIALS)]
    return {"scorer": cfg.scorer.name, "settings": settings, "rows": sizes.scorer_rows,
            "rows_per_second": summary([sizes.scorer_rows / s for s in seconds])}


TRAINS = {"pruning_from_scratch"}  # kind "pai", but it trains its channel gates first


def part_methods(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    cfg = profile(PAPER)
    data = Synthetic(sizes.method_images, 32, 10)
    model = build_model("resnet18", num_classes=10, width=sizes.width, input_size=32, seed=0)
    rows: dict[str, Any] = {}
    for method in sizes.methods or PRUNERS.names():
        if PRUNERS.record(method).kind != "pai" or method in TRAINS:
            rows[method] = {"skipped": "trains (timed by the study)"}
            continue
        settings = method_settings(cfg, method)
        scorer = None
        if method == "autos":
            net, typed = build_scorer("mlp", {})
            net.prepare(torch.randn(4096, len(typed.inputs)))  # untrained: the cost does not depend on quality
            scorer = (net.eval(), "mlp", typed, {})
        ctx = PruneContext(model=model, data=data, recipe=cfg.training, device=device, seed=0, num_classes=10,
                           cache_dir=Path(tempfile.mkdtemp()), root=REPO, features=cfg.features, scorer=scorer)
        try:
            seconds = timed(device, lambda method=method, settings=settings, ctx=ctx:
                            PRUNERS.get(method)(settings).prune(ctx, 0.05))
        except Exception as exc:  # noqa: BLE001 - a check records a failure and goes on
            rows[method] = {"error": repr(exc)}
            continue
        rows[method] = {"seconds": seconds}
        print(f"  {method}: {seconds:.1f} s", flush=True)
    return {"model": f"resnet18 width {sizes.width}", "density": 0.05, "rows": rows}


RUNNERS: dict[str, Callable[[Sizes, torch.device], dict[str, Any]]] = {
    "cell": part_cell, "packing": part_packing, "g0": part_g0, "scorer": part_scorer, "methods": part_methods}


# --------------------------------------------------------------------------- report


def markdown(out: dict[str, Any]) -> str:
    lines = [f"GPU check on {out['device']} (torch {out['machine']['torch']}), {TRIALS} interleaved trials: "
             "median (min-max)."]
    cell = out["parts"].get("cell", {})
    if cell:
        lines += ["", "| precision | batch | step | images/s |", "| --- | ---: | --- | ---: |"]
        lines += [f"| {r['precision']} | {r['batch']} | {r['step']} | {_range(r['images_per_second'])} |"
                  for r in cell["rows"]]
    packing = out["parts"].get("packing", {})
    if packing:
        lines += ["", "| cells | precision | step | summed images/s |", "| ---: | --- | --- | ---: |"]
        lines += [f"| {r['cells']} | {r['precision']} | {r['step']} | {_range(r['sum_images_per_second'])} |"
                  for r in packing["rows"]]
    for name, key in (("g0", "images_per_second"), ("scorer", "rows_per_second")):
        if name in out["parts"]:
            lines.append(f"\n{name}: {_range(out['parts'][name][key])} {key.replace('_', ' ')}")
    if "methods" in out["parts"]:
        lines.append("\nselection at the paper settings: " + ", ".join(
            f"{m} {r['seconds']:.1f} s" for m, r in out["parts"]["methods"]["rows"].items() if "seconds" in r))
    return "\n".join(lines)


def _range(s: dict[str, Any]) -> str:
    return f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a dry run of the code, not a measurement")
    parser.add_argument("--methods", default="", help="the methods part's methods, comma-separated (default: all)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; allowed: {', '.join(PARTS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; a dry run of the code on a CPU: --tiny --device cpu")
    sizes = Sizes(args.tiny)
    sizes.methods = [m for m in args.methods.split(",") if m]
    name = "gpu_check_tiny.json" if args.tiny else "gpu_check.json"
    out: dict[str, Any] = {"machine": machine(), "device": torch.cuda.get_device_name(device) if device.type == "cuda"
                           else "cpu", "cuda": torch.version.cuda, "tiny": args.tiny, "trials": TRIALS,
                           "gpu_before": gpu_state(), "parts": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for part in parts:
        print(f"{part} ...", flush=True)
        part_start = time.perf_counter()
        out["parts"][part] = {**RUNNERS[part](sizes, device), "seconds": time.perf_counter() - part_start,
                              "gpu_after": gpu_state()}
        out["seconds"] = time.perf_counter() - started
        (args.out / name).write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
