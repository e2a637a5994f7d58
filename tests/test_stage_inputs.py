"""A stage that reads a missing, corrupt, unsafe or mismatched IRP output stops with one line naming the file and
exit status 1 (``autos.errors.DataError`` through ``autos.pipeline.context.run_stage``), never a traceback."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from autos.errors import DataError
from autos.masking import prunable_parameters
from autos.models import build_model
from autos.paths import study_paths
from autos.study import parse_study

REPO = Path(__file__).resolve().parents[1]


class _Evil:
    def __reduce__(self):
        return os.system, ("touch pwned",)


@pytest.fixture
def study(tmp_path, shared_data, monkeypatch) -> Path:
    """A study root with prepared CIFAR-10 (a few images per class), the smoke params and good IRP outputs."""
    from autos.data import prepare_dataset

    prepare_dataset("cifar10", search_dirs=[shared_data], out_dir=tmp_path / "data" / "prepared" / "cifar10",
                    download=False, download_dir=None, max_train_per_class=4, max_test_per_class=2)
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["tracking"]["enabled"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(REPO / "paths.yaml", tmp_path / "paths.yaml")
    cfg = parse_study(raw)
    model = build_model(cfg.source.model, num_classes=10, width=cfg.source.width, input_size=32, seed=cfg.seed)
    irp = tmp_path / "data" / "irp" / "0"  # source seed 0
    irp.mkdir(parents=True)
    torch.save(model.state_dict(), irp / "init.pt")
    torch.save({n: torch.zeros(p.shape, dtype=torch.int8) for n, p in prunable_parameters(model).items()},
               irp / "survival.pt")
    monkeypatch.setenv("AUTOS_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _features(root: Path) -> None:
    from autos.pipeline.context import StageContext
    from autos.pipeline.features import run as main

    raw = yaml.safe_load((root / "params.yaml").read_text())
    args = argparse.Namespace(params=str(root / "params.yaml"), source_seed=0)
    main(StageContext(name="features", cfg=parse_study(raw), args=args, root=root, paths=study_paths(root)))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 50)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _evil(path: Path) -> None:
    torch.save({"conv1.weight": _Evil()}, path)


def _other_width(path: Path) -> None:
    torch.save(build_model("resnet18", num_classes=10, width=8, input_size=32, seed=0).state_dict(), path)


def _survival_out_of_range(path: Path) -> None:
    counts = torch.load(path, weights_only=True)
    next(iter(counts.values())).fill_(7)
    torch.save(counts, path)


@pytest.mark.parametrize("name,corrupt,message", [
    ("init.pt", _garbage, "is not a readable torch file"),
    ("init.pt", _truncated, "is not a readable torch file (RuntimeError"),
    ("init.pt", _evil, "is not a readable torch file (UnpicklingError"),
    ("init.pt", _other_width, "has shape"),
    ("init.pt", Path.unlink, "is missing"),
    ("survival.pt", _garbage, "is not a readable torch file"),
    ("survival.pt", _survival_out_of_range, "outside 0..2 (irp.num_rounds)"),
])
def test_features_stage_names_the_bad_irp_output(study, name, corrupt, message) -> None:
    path = study / "data" / "irp" / "0" / name
    corrupt(path)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        _features(study)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (study / "pwned").exists() and not (study / "data" / "features").exists()


def test_features_stage_exits_1_with_one_line_not_a_traceback(study) -> None:
    _garbage(study / "data" / "irp" / "0" / "init.pt")
    env = {**os.environ, "AUTOS_ROOT": str(study), "PYTHONPATH": str(REPO), "AUTOS_LOG_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "-m", "stages.features", "--params", "params.yaml", "--source-seed", "0"],
                          cwd=study, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("features: ") and str(study / "data" / "irp" / "0" / "init.pt") in lines[0]
