"""A researcher's first week with the tool, scripted: each step a newcomer takes, with the test that asserts it.

Usage: python bench/newcomer_walk.py        (201 s on 2 idle cores, 2026-12-06: 8 of 8 steps pass)

The steps follow a newcomer from the README onwards: add a method,
prune unseen torchvision models and a depthwise CNN through the API with its defaults, run every method on the
torchvision model matrix, read the MLflow parent run, run every README command and profile, read the report, give
the API bad input, run a profile without touching params.yaml. Each step is a set of tests (pytest node ids); the
walk prints one line per step, PASS or FAIL, and exits non-zero if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STEPS: list[tuple[str, list[str]]] = [
    ("adding a method re-runs only its cells; editing the training loop re-runs all",
     ["tests/test_cells.py::test_adding_a_method_reruns_no_other_cell_and_editing_the_loop_reruns_all"]),
    ("a method in a module of its own (a plugin) runs in a study, the report and the CLI",
     ["tests/test_extending.py"]),
    ("AutoS through the API, defaults only, empties no layer of 4 torchvision models and a depthwise CNN at 95%",
     ["tests/test_api_unseen_models.py"]),
    ("every method works on the torchvision model matrix or refuses in one sentence",
     ["tests/test_model_matrix.py"]),
    ("the sweep's MLflow parent run has mean, std and n per method and sparsity in %; cached cells are referenced",
     ["tests/test_tracking_sweep.py"]),
    ("every README command: the API snippets verbatim, every -S key in every profile, a readable dvc exp show",
     ["tests/test_readme.py",
      "tests/test_pipeline.py::test_a_profile_runs_as_an_experiment_logs_into_the_workspace_store_and_applies"]),
    ("the report: a legend entry for collapse, the source named in the summary and the figures",
     ["tests/test_report_figures.py::test_layer_collapse_has_a_legend_entry",
      "tests/test_report_figures.py::test_report_figures_name_the_source",
      "tests/test_report.py::test_summary_names_the_source_first"]),
    ("bad input to the API and the CLI is one sentence naming the problem and the fix",
     ["tests/test_api_collapse.py"]),
]


def main() -> int:
    failed = 0
    for title, tests in STEPS:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=REPO,
                              capture_output=True, text=True)
        ok = done.returncode == 0
        failed += not ok
        tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
        print(f"{'PASS' if ok else 'FAIL'}  {title}  ({tail}; {time.perf_counter() - start:.0f} s)", flush=True)
    print(f"{len(STEPS) - failed} of {len(STEPS)} steps pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
