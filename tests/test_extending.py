"""Adding a pruning method is one module: a method registered in a module of its own (here a plugin, outside the
package, imported through ``plugins`` in params) is known to a study's validation, runs in its cells, appears in
the report under its title and is available to the CLI; a model registered the same way is a target's model
(docs/architecture.md's recipes, followed once). Run in a child process: the registry is process-wide and
the rest of the suite must see the shipped methods only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

METHOD = '''
"""|w0| squared: a method of its own, in one module."""
from autos.masking import Scores
from autos.pruners._registry import PRUNERS
from autos.pruners.base import PruneContext, ScorePruner, ScoreSettings


@PRUNERS.register("w0_squared")
class W0Squared(ScorePruner[ScoreSettings]):
    """w0 squared, ranked globally."""

    Settings = ScoreSettings
    title = "W0 Squared"

    def score(self, ctx: PruneContext) -> Scores:
        params = dict(ctx.model.named_parameters())
        return {n: params[n].detach().pow(2).cpu() for n in ctx.prunable_names()}


from torch import nn
from autos.models._registry import MODELS


@MODELS.register("tiny_cnn")
def tiny_cnn(*, num_classes: int, width: int = 8, input_size: int = 32) -> nn.Module:
    """A model of its own, in the same module: one conv and a classifier."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))
'''

WALK = '''
import json, sys
from pathlib import Path
import torch, yaml
from autos.models import build_model
from autos.study import method_records, parse_study
from autos.sweep.plan import plan_sweep
from autos.sweep.run_cell import run_cell
from autos.report import build_report
from autos.report.verdicts import VerdictSettings
from autos.report.aggregate import TargetResults
from autos.pruners import PRUNERS
sys.path.insert(0, {tests!r})
from conftest import make_tiny_data

raw = yaml.safe_load(Path({smoke!r}).read_text())
raw["plugins"] = ["my_methods"]
raw["transfer"].update(methods=["random", "w0_squared"], variants={{}}, modifiers=[], sparsities=[0.5])
raw["transfer"]["targets"]["tiny_cifar10"] = {{"model": "tiny_cnn", "width": 8, "dataset": "cifar10"}}  # a target
cfg = parse_study(raw)                                          # validation knows the method, the model and target
assert len(plan_sweep(cfg, "tiny_cifar10", data_digest="d", scorer_dir=Path("."), device_type="cpu",
                      torch_threads=1).cells) == 3              # dense, random, w0_squared
assert method_records(cfg)["w0_squared"].title == "W0 Squared"
plan = plan_sweep(cfg, "vgg16_cifar10", data_digest="d", scorer_dir=Path("."), device_type="cpu", torch_threads=1)
build = lambda s: build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=s)
rows = [row for key, _ in plan.cells if key.method != "dense"    # it runs in its cells
        for row in run_cell(cfg, key, make_tiny_data(), build=build, device=torch.device("cpu"), cache_dir=None).rows]
assert [r.method for r in rows] == ["random", "w0_squared"]
out = Path({out!r})
results = {{"vgg16_cifar10": TargetResults("vgg16_cifar10", tuple(rows))}}
build_report(results, None, None, out, None, records=PRUNERS.records(),
             settings=VerdictSettings(under_test=("w0_squared",)))
print(json.dumps({{"summary": (out / "summary.md").read_text(), "table": (out / "vgg16_cifar10.md").read_text()}}))
'''


@pytest.mark.timeout(300)
def test_a_method_in_a_module_of_its_own_runs_in_a_study_the_report_and_the_cli(tmp_path: Path) -> None:
    (tmp_path / "my_methods.py").write_text(textwrap.dedent(METHOD))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    script = WALK.format(tests=str(REPO / "tests"), smoke=str(REPO / "configs" / "smoke.yaml"),
                         out=str(tmp_path / "reports"))
    walk = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert walk.returncode == 0, walk.stderr[-3000:]
    pages = json.loads(walk.stdout.strip().splitlines()[-1])
    assert "W0 Squared" in pages["summary"] and "| w0_squared |" in pages["table"]  # its title from its record
    cli = subprocess.run([sys.executable, "-m", "autos.api.cli", "--plugin", "my_methods", "--method", "w0_squared",
                          "--model", "vgg16_bn", "--width", "4", "--num-classes", "10", "--sparsity", "0.9",
                          "--out", str(tmp_path / "m.pt")], env=env, capture_output=True, text=True, timeout=240,
                         cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert json.loads((tmp_path / "m.json").read_text())["method"] == "w0_squared"
    help_text = subprocess.run([sys.executable, "-m", "autos.api.cli", "--plugin", "my_methods", "--help"], env=env,
                               capture_output=True, text=True, timeout=240, cwd=tmp_path).stdout
    assert "w0_squared" in help_text
