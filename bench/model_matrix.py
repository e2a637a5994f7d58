"""Every single-shot method through the public API on torchvision's classification models (methods must work
on modern models or refuse them with one sentence).

For each (model, method): ``autos.prune(model, method, 0.95, data=(images, labels), settings=FAST[method])`` on a
torchvision model built with ``num_classes=10`` (and ``image_size=32`` where the constructor takes it), 40 random
32x32 images (every class 4 times, as ``tests/test_api.py``'s ``_images``). Recorded: works / refuses (an
``autos.errors.AutosError``, or a ``ValueError`` raised by autos itself: the message) / crashes (any other
exception) / timeout, the seconds of the ``prune``
call, the prunable layers left without a kept weight (``empty``) and those ``result.collapsed_layers`` names
(empty or cut off from every input -> output path), the effective sparsity, whether the kept count is exact, and
the progress lines the call logged.

Every case runs in its own process (a crash, a hang or the memory of one case cannot spoil the next), with a time
limit. Settings are FAST (below), not the methods' defaults: the table measures whether a method runs on a model
and what its mask looks like, not its paper-scale cost. AutoS runs with a tiny untrained-but-valid scorer (its
ranking is meaningless; its cost and its running are not).

    .venv/bin/python bench/model_matrix.py                           # every model x single-shot method (~10 min)
    .venv/bin/python bench/model_matrix.py --models vgg11_bn --methods grasp kstarts irp   # any cells (TRAINED too)
    .venv/bin/python bench/model_matrix.py --synflow-rounds vgg11_bn  # SynFlow's seconds per round, default settings
    .venv/bin/python bench/model_matrix.py --table                   # the tables of docs/benchmarks.md

Writes bench/results/model_matrix.json (merged with what is there: a partial run updates its own cells).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fast_settings, run as a script
from tests.fast_settings import FAST_SETTINGS  # noqa: E402

MODELS = ["resnet18", "vgg11_bn", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16"]
METHODS = ["random", "random_erk", "magnitude", "snip", "grasp", "synflow", "prospr", "autos"]
# the methods that train (run with --methods ...): one epoch of the 40 images, tests/fast_settings.py's settings
TRAINED = ["kstarts", "dissipating", "kstarts_dissipating", "pruning_from_scratch", "lottery_jackpots", "irp"]
RECIPE = {"epochs": 1, "batch_size": 16}
SPARSITY = 0.95
N_IMAGES = 40
SIZE = 32
# what the table runs with (the methods' defaults are paper-scale): the test suite's one table of fast settings,
# with SynFlow at 10 rounds as this table has always run it; recorded in the JSON
FAST: dict[str, dict[str, Any]] = {**FAST_SETTINGS, "synflow": {"iterations": 10}}
OUT = RESULTS / "model_matrix.json"
# the method's own mask, not the API's default repair of a cut mask (a re-run with a per-layer floor), when the API
# has that option: the table is about what each method does
OWN_MASK: dict[str, Any] = {"on_collapse": "warn"}


def build(name: str) -> torch.nn.Module:
    import inspect

    import torchvision

    factory = getattr(torchvision.models, name)
    kwargs: dict[str, Any] = {"num_classes": 10}
    # vit_b_16(**kwargs) forwards to VisionTransformer, which takes image_size; the others size themselves
    if name.startswith("vit_") or "image_size" in inspect.signature(factory).parameters:
        kwargs["image_size"] = SIZE
    torch.manual_seed(0)
    return factory(**kwargs)


def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N_IMAGES, 3, SIZE, SIZE, generator=g), torch.arange(N_IMAGES) % 10


def scorer_dir(root: Path) -> Path:
    from autos.config import FeaturesConfig
    from autos.scorer import build_scorer, save_scorer

    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    save_scorer(root / "scorer", net.eval(), "mlp", settings, {"source": "bench"},
                features=FeaturesConfig(gradient_max_batches=1, gradient_batch_size=16))
    return root / "scorer"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def run_case(model_name: str, method: str) -> dict[str, Any]:
    """One (model, method) in this process."""
    import autos
    from autos.errors import AutosError
    from autos.masking import kept_count

    lines = _Lines()
    logging.getLogger("autos").addHandler(lines)
    logging.getLogger("autos").setLevel(logging.INFO)
    model = build(model_name)
    n_prunable = sum(1 for _ in autos.masking.prunable_parameters(model))
    weights = sum(p.numel() for p in autos.masking.prunable_parameters(model).values())
    row: dict[str, Any] = {"model": model_name, "method": method, "settings": FAST.get(method, {}),
                           "prunable_layers": n_prunable, "prunable_weights": weights}
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"scorer_dir": str(scorer_dir(Path(tmp)))} if method == "autos" else FAST.get(method, {})
        start, cpu = time.perf_counter(), time.process_time()

        def took() -> dict[str, float]:  # wall, and the CPU time of this process (the 2 cores may be shared)
            return {"seconds": round(time.perf_counter() - start, 2),
                    "cpu_seconds": round(time.process_time() - cpu, 2)}

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = autos.prune(model, method, SPARSITY, data=images(), settings=settings, recipe=RECIPE,
                                     **OWN_MASK)
            row.update(took())
        except AutosError as exc:
            row.update(status="refuses", message=str(exc), **took())
            return {**row, "log": lines.lines}
        except Exception as exc:  # noqa: BLE001 - the table records what a user would see
            # a ValueError raised by autos itself is a refusal in a sentence; anything else (torch's own errors)
            # is a crash
            frames = traceback.extract_tb(exc.__traceback__)
            ours = isinstance(exc, ValueError) and bool(frames) and "/src/autos/" in frames[-1].filename
            row.update(status="refuses" if ours else "crashes", message=f"{type(exc).__name__}: {exc}"[:400],
                       where=traceback.format_exc().splitlines()[-3:], **took())
            return {**row, "log": lines.lines}
    kept = sum(int(m.sum()) for m in result.values())
    # a global selection keeps round-half-up of 5% of all weights, a layer-wise one (random, K-starts' uniform
    # layer densities) that of every layer
    expected = {kept_count(sum(m.numel() for m in result.values()), 1 - SPARSITY),
                sum(kept_count(m.numel(), 1 - SPARSITY) for m in result.values())}
    empty = [n for n, m in result.items() if not bool(m.any())]
    row.update(
        status="works", kept=kept, kept_exact=kept in expected, sparsity=round(result.sparsity, 6),
        effective_sparsity=None if result.effective_sparsity is None else round(result.effective_sparsity, 6),
        empty_layers=empty, collapsed_layers=list(result.collapsed_layers),
        warnings=[f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught
                  if not issubclass(w.category, (DeprecationWarning, FutureWarning))],
        log=lines.lines,
    )
    return row


def synflow_rounds(model_name: str, rounds: int) -> dict[str, Any]:
    """SynFlow's seconds per scoring round at its default settings (float64), ``rounds`` rounds of the schedule."""
    import autos
    from autos.pruners.base import prune_loop

    model = build(model_name)
    times: list[float] = []
    import autos.pruners.synflow as sf

    method = sf.SynFlow(sf.SynFlowSettings())

    def timed(ctx):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        scores = method.score(ctx)
        times.append(time.perf_counter() - start)
        return scores

    from autos.api.adapters import shape_only_data
    from autos.config import TrainRecipe
    from autos.pruners.base import PruneContext

    ctx = PruneContext(model=model, data=shape_only_data((3, SIZE, SIZE)), recipe=TrainRecipe(),
                       device=torch.device("cpu"), seed=0, num_classes=10)
    start = time.perf_counter()
    masks, _ = prune_loop(timed, ctx, (1 - SPARSITY) ** (rounds / 100), iterations=rounds)  # the first rounds of 100
    total = time.perf_counter() - start
    del autos, masks
    return {"model": model_name, "precision": "float64", "rounds": rounds,
            "score_seconds_per_round": round(sum(times) / len(times), 2),
            "round_seconds_with_selection": round(total / rounds, 2),
            "estimated_default_100_rounds_min": round(total / rounds * 100 / 60, 1)}


def table(payload: dict[str, Any], wanted: list[str]) -> str:
    """The markdown table of docs/benchmarks.md: one row per model, one column per method; a cell is the outcome,
    the seconds of the ``prune`` call (CPU seconds of the process in brackets) and the layers left empty."""
    cells = payload.get("cells", {})
    methods = [m for m in wanted if any(k.endswith(f"/{m}") for k in cells)]
    lines = ["| model (prunable weights) | " + " | ".join(f"`{m}`" for m in methods) + " |",
             "| --- | " + " | ".join("---" for _ in methods) + " |"]
    for model_name in MODELS:
        rows = [cells.get(f"{model_name}/{m}") for m in methods]
        if not any(rows):
            continue
        size = next((r["prunable_weights"] for r in rows if r and "prunable_weights" in r), None)
        out = []
        for row in rows:
            if row is None:
                out.append("-")
                continue
            status = row["status"]
            timing = f"{row['seconds']:.0f} s" if "seconds" in row else ""
            if "cpu_seconds" in row:
                timing += f" ({row['cpu_seconds']:.0f})"
            if status == "works":
                empty = len(row.get("empty_layers", []))
                out.append(f"works, {timing}" + (f", **{empty} empty**" if empty else ""))
            else:
                out.append(f"**{status}**, {timing}")
        name = f"{model_name} ({size / 1e6:.1f} M)" if size else model_name
        lines.append(f"| {name} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def _child(model_name: str, method: str, limit: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--case", model_name, method]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return {"model": model_name, "method": method, "settings": FAST.get(method, {}), "status": "timeout",
                "seconds": round(time.perf_counter() - start, 1), "message": f"no result in {limit:.0f} s"}
    tail = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not tail:
        return {"model": model_name, "method": method, "settings": FAST.get(method, {}), "status": "crashes",
                "message": f"process exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(tail[-1])


def _load() -> dict[str, Any]:
    return json.loads(OUT.read_text()) if OUT.is_file() else {}


def _save(payload: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per case before it counts as a timeout")
    parser.add_argument("--case", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--synflow-rounds", metavar="MODEL", help="time SynFlow's default rounds on MODEL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--table", action="store_true", help="print the markdown table of the saved results")
    args = parser.parse_args()
    if args.table:
        print(table(_load(), METHODS) + "\n\n" + table(_load(), TRAINED))
        return
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    payload = _load()
    payload["machine"] = machine()
    payload["setup"] = {"sparsity": SPARSITY, "images": N_IMAGES, "size": SIZE, "num_classes": 10,
                        "fast_settings": FAST, "recipe": RECIPE, "limit_s": args.limit}
    if args.synflow_rounds:
        row = synflow_rounds(args.synflow_rounds, args.rounds)
        print(json.dumps(row))
        payload.setdefault("synflow_rounds", {})[args.synflow_rounds] = row
        _save(payload)
        return
    cells = payload.setdefault("cells", {})
    for model_name in args.models:
        for method in args.methods:
            row = _child(model_name, method, args.limit)
            row["date"] = time.strftime("%Y-%m-%d")
            cells[f"{model_name}/{method}"] = row
            brief = {k: row.get(k) for k in ("status", "seconds", "message", "kept_exact", "empty_layers")}
            print(f"{model_name:>20} {method:>11}: {json.dumps(brief)[:300]}", flush=True)
            _save(payload)


if __name__ == "__main__":
    main()
