"""GPU-hours of a study profile (default ``configs/paper.yaml``) from its structure and measured training rates.

Usage: python bench/paper_cost.py [profile] [--rates bench/results/gpu_rates.json] [--scenario NAME]

The cost is counted in **training images** (epochs x images per epoch) and divided by the images/s measured for
each target's shape and the way its cells run (``execution.num_gpus``: cells packed per GPU; ``training.precision``;
``training.cuda_graph``). What is counted, per target (``cell_epochs``):

- every (method, sparsity, target seed) cell trains ``training.epochs``, and so does each of its sanity-check
  variants (``transfer.modifiers`` for the methods in ``modifier_methods``); AutoS cells once per source when the
  sources are crossed with the seeds; the dense row once per seed;
- the methods' own training phases (``METHOD_EXTRAS``), once per cell or once per seed where the code shares them
  (IRP on the target with ``shared_run``: one run per seed through every density; Lottery Jackpots' dense model);

and, once per source run, IRP on the source (``irp.num_rounds + 1`` trainings of ``irp.epochs_per_round``). The
scorer and the selections are small next to these (docs/benchmarks.md) and are left out, which the output says.

Rates: ``bench/results/gpu_rates.json`` holds the images/s measured on one H100 on 2026-11-22 (docs/benchmarks.md,
"GPU"), keyed by shape, precision, step and cells per GPU; a rate that was never measured is not guessed: the cost
of a target that needs one is reported as unknown. ``bench/gpu_check.py`` measures the missing ones on a lent device.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from common import REPO, RESULTS

from autos.config import StudyConfig, read_params
from autos.study import method_settings, parse_study

IMAGES = {"cifar10": (50_000, 10), "tiny_imagenet": (100_000, 200)}  # full training set, classes
SHAPE = {"cifar10": "32px", "tiny_imagenet": "64px"}


@dataclass(frozen=True)
class Extra:
    """A method's own training phase: ``epochs`` trained ``per`` cell or per seed."""

    epochs: float
    per: str  # "cell" or "seed"


def method_extras(cfg: StudyConfig, method: str, densities: list[float]) -> list[Extra]:
    """The training a method does besides the cell's own training (its settings from the profile)."""
    s = method_settings(cfg, cfg.transfer.registered(method)).model_dump()
    recipe_epochs = cfg.training.epochs
    base = cfg.transfer.registered(method)
    if base == "kstarts":
        return [Extra(s["k"] * s["select_epochs"], "cell")]
    if base == "dissipating":
        return [Extra(s["max_epochs"], "cell")]
    if base == "kstarts_dissipating":
        return [Extra(s["kstarts"]["k"] * s["kstarts"]["select_epochs"] + s["dissipating"]["max_epochs"], "cell")]
    if base == "pruning_from_scratch":
        return [Extra(s["gate_epochs"], "cell")]
    if base == "lottery_jackpots":
        return [Extra(s["dense_epochs"] or recipe_epochs, "seed"), Extra(s["search_epochs"], "cell")]
    if base == "irp":
        per_round = s["epochs_per_round"] or recipe_epochs
        rounds = math.ceil(math.log(min(densities)) / math.log(1 - s["prune_fraction"]))
        if s["shared_run"]:
            return [Extra(rounds * per_round, "seed")]
        return [Extra(math.ceil(math.log(d) / math.log(1 - s["prune_fraction"])) * per_round / len(densities),
                      "cell") for d in densities]
    return []


def target_epochs(cfg: StudyConfig, target: str) -> dict[str, float]:
    """Training epochs of one target, by what trains them."""
    t = cfg.transfer
    spec = t.targets[target]
    epochs = spec.epochs or cfg.training.epochs
    seeds, sparsities = len(t.seeds), len(t.sparsities)
    sources = len(cfg.sources.seeds) if cfg.sources.pairing == "crossed" else 1
    densities = [1 - s for s in t.sparsities]
    out = {"cells": 0.0, "modifiers": 0.0, "methods' own": 0.0, "dense": float(seeds * epochs if t.dense else 0)}
    for method in t.methods:
        per_source = sources if cfg.transfer.registered(method) == "autos" else 1
        cells = sparsities * seeds * per_source
        out["cells"] += cells * epochs
        out["modifiers"] += cells * len(t.modifiers_for(method)) * epochs
        for extra in method_extras(cfg, method, densities):
            out["methods' own"] += extra.epochs * (cells if extra.per == "cell" else seeds * per_source)
    return out


def train_images(cfg: StudyConfig, dataset: str) -> int:
    full, classes = IMAGES[dataset]
    settings = cfg.data.datasets.get(dataset)
    per_class = full // classes
    if settings is not None and settings.max_train_per_class:
        per_class = min(per_class, settings.max_train_per_class)
    if settings is not None and settings.max_classes:
        classes = min(classes, settings.max_classes)
    return (per_class - cfg.transfer.validation_per_class) * classes


def rate_key(cfg: StudyConfig, dataset: str, packed: int) -> str:
    step = "graph" if cfg.training.cuda_graph else "eager"
    return f"{SHAPE[dataset]}/{cfg.training.precision}/{step}/{packed}"


def measured_rate(cfg: StudyConfig, dataset: str, packed: int, rates: dict[str, float]) -> tuple[str, float | None]:
    """The measured rate of ``packed`` cells per GPU; where packing was not measured at this shape, the rate of the
    most cells that was (packing measured never slower at 32 px: a conservative stand-in, named in the key)."""
    for k in range(packed, 0, -1):
        key = rate_key(cfg, dataset, k)
        if key in rates:
            return (key if k == packed else f"{key} (packing x{packed} not measured)"), rates[key]
    return rate_key(cfg, dataset, packed), None


def cost(cfg: StudyConfig, rates: dict[str, float]) -> dict[str, Any]:
    packed = max(1, round(1 / cfg.execution.num_gpus)) if cfg.execution.num_gpus else 1
    rows: dict[str, Any] = {}
    total: float | None = 0.0
    for target, spec in cfg.transfer.targets.items():
        epochs = target_epochs(cfg, target)
        images = sum(epochs.values()) * train_images(cfg, spec.dataset)
        key, rate = measured_rate(cfg, spec.dataset, packed, rates)
        hours = images / rate / 3600 if rate else None
        rows[target] = {"epochs": epochs, "train_images": images, "rate_key": key, "images_per_second": rate,
                        "gpu_hours": hours}
        total = None if total is None or hours is None else total + hours
    source_images = (len(cfg.sources.seeds) * (cfg.irp.num_rounds + 1)
                     * (cfg.irp.epochs_per_round or cfg.training.epochs) * train_images(cfg, cfg.source.dataset))
    source_rate = rates.get(rate_key(cfg, cfg.source.dataset, 1))  # IRP rounds run in sequence: one cell
    source_hours = source_images / source_rate / 3600 if source_rate else None
    rows["IRP on the source"] = {"train_images": source_images, "gpu_hours": source_hours}
    total = None if total is None or source_hours is None else total + source_hours
    return {"cells_per_gpu": packed, "targets": rows, "total_gpu_hours": total,
            "left_out": "scorer training, feature passes and mask selections (minutes to hours, docs/benchmarks.md)"}


def scenario(path: Path, overrides: list[str]) -> StudyConfig:
    """The profile at ``path`` with ``key=value`` overrides (YAML values), validated like any profile."""
    params = read_params(path)
    for override in overrides:
        key, _, value = override.partition("=")
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return parse_study(params, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", nargs="?", default="configs/paper.yaml")
    parser.add_argument("--rates", type=Path, default=RESULTS / "gpu_rates.json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                        help="a scenario: override a params value (dotted key, YAML value), e.g. "
                             "training.precision=bf16; repeatable")
    args = parser.parse_args(argv)
    rates = json.loads(args.rates.read_text())
    cfg = scenario(REPO / args.profile, args.set)
    out = cost(cfg, rates["images_per_second"])
    print(json.dumps({"profile": args.profile, "overrides": args.set, "rates_from": rates["measured"], **out},
                     indent=2))
    for target, row in out["targets"].items():
        hours = row["gpu_hours"]
        print(f"{target}: {row['train_images'] / 1e9:.2f} G images, "
              + (f"{hours:,.0f} GPU-hours" if hours is not None else f"no measured rate for {row.get('rate_key')}"))
    total = out["total_gpu_hours"]
    print("total: " + (f"{total:,.0f} GPU-hours" if total is not None else "unknown (a rate was never measured)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
