"""Mask selection time: ``select_mask`` (radix select, one layer at a time) against the stable sort of all scores it
replaced (``tests/test_masking.py::_sorted_reference``), global scope, density 0.05, on the |w0| scores of a
ResNet-18 of width 64 (11.2 M weights, the paper's source). Checks the masks are equal, then writes
bench/results/select_mask.json. Usage: python bench/select_mask.py
"""

from __future__ import annotations

import sys
import time

import torch
from common import REPO, save

from autos.masking import prunable_parameters, select_mask
from autos.models import build_model

sys.path.insert(0, str(REPO / "tests"))
from test_masking import _sorted_reference  # noqa: E402


def main() -> None:
    model = build_model("resnet18", num_classes=10, width=64, input_size=32, seed=0)
    scores = {n: p.detach().abs().float() for n, p in prunable_parameters(model).items()}
    runs = {"radix select (select_mask)": lambda: select_mask(scores, 0.05),
            "stable sort of all scores (before)": lambda: _sorted_reference(scores, 0.05, "global", None)}
    seconds: dict[str, list[float]] = {}
    for label, run in runs.items():
        seconds[label] = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
    a, b = (run() for run in runs.values())
    assert all(torch.equal(a[n], b[n]) for n in a), "the two selections differ"
    save("select_mask", {"weights": sum(s.numel() for s in scores.values()), "density": 0.05,
                         "seconds": {k: {"best": min(v), "all": v} for k, v in seconds.items()}})


if __name__ == "__main__":
    main()
