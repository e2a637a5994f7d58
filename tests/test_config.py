"""Every shipped config loads; bad configs report every problem with its dotted path and the allowed values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from autos.config import read_params
from autos.errors import ConfigError
from autos.study import load_study, method_settings, parse_study

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_study(path)
    assert cfg.transfer.methods
    for method in cfg.transfer.methods:
        method_settings(cfg, method)  # per-method settings validate
    assert all(0 < s < 1 for s in cfg.transfer.sparsities)


def _default() -> dict:
    return read_params(REPO / "params.yaml")


def _problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_study(raw)
    return info.value.problems


def test_all_problems_reported_together_with_dotted_paths() -> None:
    raw = _default()
    raw["irp"]["num_rounds"] = "many"
    raw["irp"]["schedule"] = "cubic"
    raw["training"]["lr"] = -1
    raw["transfer"]["sparsities"] = [0.5, 1.0]
    raw["source"]["model"] = "resnet1000"
    raw["irp"]["typo_key"] = 3
    problems = _problems(raw)
    text = "\n".join(problems)
    assert "irp.num_rounds" in text
    assert "irp.schedule" in text and "'linear'" in text and "'geometric'" in text
    assert "training.lr" in text
    assert "transfer.sparsities.1" in text and "1.0" in text
    assert "source.model" in text and "resnet18" in text and "vgg16_bn" in text
    assert "irp.typo_key: unknown key" in text and "num_rounds" in text  # lists allowed keys
    assert len(problems) >= 6


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1])
def test_sparsity_outside_open_interval_rejected(value: float) -> None:
    raw = _default()
    raw["transfer"]["sparsities"] = [value]
    text = "\n".join(_problems(raw))
    assert "transfer.sparsities.0" in text and repr(value) in text


def test_unknown_method_and_method_setting() -> None:
    raw = _default()
    raw["transfer"]["methods"] = ["snip", "snap"]
    raw["transfer"]["method_settings"] = {"snip": {"num_batches": "x", "bogus": 1}}
    text = "\n".join(_problems(raw))
    assert "transfer.methods" in text and "'snap'" in text and "random" in text
    assert "snip.num_batches" in text and "snip.bogus" in text


def test_undeclared_dataset_is_named() -> None:
    raw = _default()
    del raw["data"]["datasets"]["tiny_imagenet"]
    text = "\n".join(_problems(raw))
    assert "resnet18_tiny_imagenet.dataset" in text and "tiny_imagenet" in text


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_study(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nirp: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_study(bad)
    assert f"{bad}:3:" in str(info.value) and "line 2" in str(info.value)  # the file, and where '[' opened
    twice = tmp_path / "twice.yaml"
    twice.write_text("seed: 0\nseed: 1\n")  # PyYAML silently kept the last one
    with pytest.raises(ConfigError, match=re.escape(f"{twice}:2:") + ".*duplicate key"):
        load_study(twice)


def test_config_is_read_only() -> None:
    cfg = load_study(REPO / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.irp.num_rounds = 3  # type: ignore[misc]


def _dvc_params() -> set[str]:
    """Every params key dvc.yaml declares (DVC fails when a profile lacks one); ${key}/${item} expanded."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    keys = set()
    for stage in stages.values():
        for key in stage.get("do", stage).get("params", []):
            keys.add(key)
    return keys


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_profile_has_every_param_dvc_declares(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    missing = []
    for key in _dvc_params():
        expansions = [key]
        if "${key}" in key:
            parent = key.split(".${key}")[0]
            node = raw
            for part in parent.split("."):
                node = node[part]
            expansions = [key.replace("${key}", k) for k in node]
        for expanded in expansions:
            node = raw
            for part in expanded.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(expanded)
                    break
                node = node[part]
    assert not missing, f"{path.name} lacks {missing}"


def test_config_imports_no_registry_and_no_torch() -> None:
    # config holds plain sections; the composition root (autos.study) brings the registries (no import cycle)
    import subprocess
    import sys

    code = ("import sys, autos.config as c; c.load_config('params.yaml'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'sklearn', 'autos')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = eval(out.stdout.strip())  # a printed list of module names
    assert {m for m in loaded if not m.startswith("autos.config")} == {"autos", "autos.errors"}, loaded


def test_study_paths_come_from_the_one_table(tmp_path: Path) -> None:
    from autos.paths import study_paths

    paths = study_paths(REPO)
    assert paths.irp == REPO / "data" / "irp" and paths.features.name == "source.parquet"
    dvc_yaml = (REPO / "dvc.yaml").read_text()
    assert "vars:\n  - paths.yaml" in dvc_yaml and "data/irp" not in dvc_yaml  # dvc.yaml reads the same table
    with pytest.raises(ConfigError, match="file not found"):
        study_paths(tmp_path)
    (tmp_path / "paths.yaml").write_text("paths:\n  irp: data/irp\n")
    with pytest.raises(ConfigError, match="expected exactly the keys"):
        study_paths(tmp_path)
