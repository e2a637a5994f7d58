"""The GPU check script (bench/gpu_check.py) is what a lent device runs, once, in a few minutes of scarce device
time: a Python error in it would waste that time. Its whole code path runs here on a CPU with tiny sizes (the
``--tiny`` dry run; CUDA graphs fall back to eager there, and CUDA events to the host clock)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_end_to_end_as_a_dry_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--out", str(tmp_path), "--methods", "random,snip,synflow,irp"],
                          capture_output=True, text=True, timeout=420, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    assert set(out["parts"]) == {"cell", "packing", "g0", "scorer", "methods"} and out["trials"] == 3
    cell = out["parts"]["cell"]["rows"]
    assert len(cell) == 8 and all(len(r["images_per_second"]["trials"]) == 3 and r["images_per_second"]["min"] > 0
                                  for r in cell)
    packing = out["parts"]["packing"]["rows"]
    assert {r["cells"] for r in packing} == {1, 2} and all(r["sum_images_per_second"]["min"] > 0 for r in packing)
    methods = out["parts"]["methods"]["rows"]
    assert methods["synflow"]["seconds"] > 0 and "skipped" in methods["irp"] and "error" not in methods["snip"]
    assert "| precision | batch | step | images/s |" in done.stdout  # the Markdown for docs/benchmarks.md


def test_the_packed_window_counts_only_what_every_cell_overlapped() -> None:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from gpu_check import common_window_rate

    # two cells of 100 images an epoch: A ends epochs at t=1,2,3,4; B at t=2,3,4,5 -> common window [2, 4]
    a = {"stamps": [1.0, 2.0, 3.0, 4.0], "images_per_epoch": 100}
    b = {"stamps": [2.0, 3.0, 4.0, 5.0], "images_per_epoch": 100}
    assert common_window_rate([a, b]) == pytest.approx(200.0)  # each 100 images/s inside the window
    assert math.isnan(common_window_rate([a, {"stamps": [5.0, 6.0], "images_per_epoch": 100}]))  # never overlapped
