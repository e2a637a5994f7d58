"""Helpers shared by the benchmarks: the default profile's shapes on real (or synthetic) data, timers, output."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from autos.config import StudyConfig
from autos.study import load_study

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.is_available()}


def profile(path: str = "params.yaml") -> StudyConfig:
    return load_study(REPO / path)


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return out


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
