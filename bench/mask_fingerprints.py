"""Fingerprints of every registered method's mask on fixed small cases: a refactor that claims to change no
selection re-runs this and compares (``--compare bench/results/mask_fingerprints.json``).

Cases: VGG-16-bn (width 4) and ResNet-18 (width 8) at init on fixed synthetic images, densities 0.3 and 0.05,
seeds 0 and 1, each method with the test suite's fast settings (``tests/fast_settings.py``) and a fixed untrained
scorer for AutoS. A fingerprint is the sha256 of the masks (and of the weights a method returns to train from).
CPU results are reproducible on one machine, not across machines: compare runs of one machine only.

    python -m bench.mask_fingerprints                       # writes bench/results/mask_fingerprints.json
    python -m bench.mask_fingerprints --compare OLD.json    # exits 1 naming every case that differs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from bench.common import RESULTS, machine
from tests.conftest import make_tiny_data
from tests.fast_settings import FAST_RECIPE, fixed_scorer, make_pruner

ARCHS = {"vgg16_bn": 4, "resnet18": 8}
DENSITIES = (0.3, 0.05)
SEEDS = (0, 1)


def fingerprint(masks: dict[str, torch.Tensor], state: dict[str, torch.Tensor] | None) -> str:
    digest = hashlib.sha256()
    for name in sorted(masks):
        digest.update(name.encode())
        digest.update(masks[name].to(torch.bool).contiguous().numpy().tobytes())
    for name in sorted(state or {}):
        digest.update(name.encode())
        digest.update(state[name].detach().contiguous().numpy().tobytes())  # type: ignore[index]
    return digest.hexdigest()[:16]


def run_all() -> dict[str, str]:
    torch.set_num_threads(1)
    data = make_tiny_data(n_train=64, n_test=32, num_classes=4)
    scorer = fixed_scorer()
    out: dict[str, str] = {}
    for arch, width in ARCHS.items():
        def build(seed: int, arch: str = arch, width: int = width) -> torch.nn.Module:
            return build_model(arch, num_classes=4, width=width, input_size=32, seed=seed)

        for seed in SEEDS:
            for method in PRUNERS.names():
                for density in DENSITIES:
                    ctx = PruneContext(model=build(seed), data=data, recipe=FAST_RECIPE, device=torch.device("cpu"),
                                       seed=seed, num_classes=4, build_model=build, scorer=scorer)
                    result = make_pruner(method).prune(ctx, density)
                    key = f"{arch}/{method}/d{density:g}/seed{seed}"
                    out[key] = fingerprint(result.masks, result.state_dict)
                    print(key, out[key], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, help="an earlier output to compare with (exit 1 on any difference)")
    parser.add_argument("--out", type=Path, default=RESULTS / "mask_fingerprints.json")
    args = parser.parse_args()
    prints = run_all()
    if args.compare is not None:
        old = json.loads(args.compare.read_text())["fingerprints"]
        differ = sorted(k for k in set(old) | set(prints) if old.get(k) != prints.get(k))
        print(f"{len(prints)} cases, {len(differ)} differ from {args.compare}")
        for key in differ:
            print(f"  {key}: {old.get(key)} -> {prints.get(key)}")
        return 1 if differ else 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "fingerprints": prints}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
