"""Every shipped profile loads strictly; params files are read as YAML 1.2 (what ``dvc exp run -S`` writes back);
a file that cannot be read is one sentence, never a traceback; a stage given bad params exits 2 and writes nothing.

What is refused inside a well-formed file, value by value: tests/test_config_errors.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML

from autos.config import read_params
from autos.config.loading import MAX_PARAMS_DEPTH
from autos.errors import ConfigError
from autos.study import load_study, method_settings, parse_study, scorer_settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_study(path)
    scorer_settings(cfg.scorer)
    assert cfg.transfer.methods
    for method in cfg.transfer.methods:
        method_settings(cfg, method)  # per-method settings validate
    assert all(0 < s < 1 for s in cfg.transfer.sparsities)
    assert isinstance(cfg.training.lr, float) and cfg.training.channels_last in ("auto", "on", "off")


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


def test_the_controls_profile_shares_the_default_study_but_for_what_it_controls() -> None:
    """configs/controls.yaml says its baselines are the default study's own cells: every section it does not
    exist to change must equal params.yaml's, or its comparisons are against a different study."""
    default, controls = read_params(REPO / "params.yaml"), read_params(REPO / "configs" / "controls.yaml")
    changed = {"transfer", "sources", "report"}
    differs = sorted(k for k in default.keys() | controls.keys()
                     if k not in changed and default.get(k) != controls.get(k))
    assert not differs, f"configs/controls.yaml differs from params.yaml in {differs}"
    targets = controls["transfer"]["targets"]
    assert all(default["transfer"]["targets"][name] == target for name, target in targets.items())


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.name != "smoke.yaml"], ids=lambda p: p.name)
def test_the_survival_label_reaches_every_density_a_study_evaluates(path: Path) -> None:
    """IRP must reach the smallest evaluated density: a label that stops at 10% gives every weight a 2% mask
    chooses from the same value (docs/decisions.md, "IRP length"). The smoke profile checks plumbing, not this."""
    cfg = load_study(path)
    assert cfg.irp.final_density <= 1 - max(cfg.transfer.sparsities) + 1e-9


def test_config_is_read_only() -> None:
    cfg = load_study(REPO / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.irp.num_rounds = 3  # type: ignore[misc]


def test_ints_are_still_floats_and_literals_lists_dicts_validate() -> None:
    raw = read_params(REPO / "params.yaml")
    raw["training"].update(lr=1, weight_decay=0, milestones=[0.5], schedule="multistep")  # YAML `lr: 1` is fine
    raw["data"]["datasets"]["cifar10"] = {"max_train_per_class": 10}
    cfg = parse_study(raw)
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    assert cfg.training.schedule == "multistep" and cfg.training.milestones == [0.5]
    assert cfg.data.datasets["cifar10"].max_train_per_class == 10


def test_config_imports_no_registry_and_no_torch() -> None:
    # config holds plain sections; the composition root (autos.study) brings the registries (no import cycle)
    code = ("import sys, autos.config as c; c.load_config('params.yaml'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'sklearn', 'autos')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = eval(out.stdout.strip())  # a printed list of module names
    assert {m for m in loaded if not m.startswith("autos.config")} == {"autos", "autos.errors"}, loaded


def test_study_paths_come_from_the_one_table(tmp_path: Path) -> None:
    from autos.paths import study_paths

    paths = study_paths(REPO)
    assert paths.irp == REPO / "data" / "irp" and paths.source_features(2) == REPO / "data/features/2/source.parquet"
    dvc_yaml = (REPO / "dvc.yaml").read_text()
    assert "vars:\n  - paths.yaml" in dvc_yaml and "data/irp" not in dvc_yaml  # dvc.yaml reads the same table
    with pytest.raises(ConfigError, match="file not found"):
        study_paths(tmp_path)
    (tmp_path / "paths.yaml").write_text("paths:\n  irp: data/irp\n")
    with pytest.raises(ConfigError, match="expected exactly the keys"):
        study_paths(tmp_path)
    table = (REPO / "paths.yaml").read_text()
    for outside in ("../elsewhere", "/tmp/irp", "data/../../irp"):  # stages replace these folders: stay inside
        (tmp_path / "paths.yaml").write_text(table.replace("irp: data/irp", f"irp: {outside}"))
        with pytest.raises(ConfigError, match=re.escape(f"paths.irp: {outside!r} is not a relative path inside")):
            study_paths(tmp_path)


# --------------------------------------------------------------------------- device


def test_cuda_refused_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    raw = read_params(REPO / "params.yaml")
    with pytest.raises(ConfigError) as info:
        parse_study({**raw, "device": "cuda"})
    text = "\n".join(info.value.problems)
    assert "device:" in text and "'auto'" in text and "'cpu'" in text
    parse_study({**raw, "device": "cpu"})
    parse_study({**raw, "device": "auto"})


def test_cuda_accepted_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parse_study({**read_params(REPO / "params.yaml"), "device": "cuda"}).device == "cuda"


# --------------------------------------------------------------------------- YAML 1.2


def test_bare_off_written_by_dvc_loads_as_the_string(tmp_path: Path) -> None:
    """`dvc exp run -S training.channels_last=off` rewrites the file with ruamel (YAML 1.2): a bare `off`."""
    rt = YAML()  # round-trip, as DVC uses it
    data = rt.load((REPO / "params.yaml").read_text())
    data["training"]["channels_last"] = "off"
    path = tmp_path / "params.yaml"
    with path.open("w") as f:
        rt.dump(data, f)
    assert "channels_last: off\n" in path.read_text()  # bare, not quoted
    assert yaml.safe_load(path.read_text())["training"]["channels_last"] is False  # what YAML 1.1 made of it
    assert load_study(path).training.channels_last == "off"


def test_params_are_plain_yaml_1_2(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    path.write_text(text.replace("lr: 0.05", "lr: 5e-2"))  # YAML 1.1 (PyYAML) reads 5e-2 as a string
    raw = read_params(path)
    assert type(raw) is dict and type(raw["transfer"]["methods"]) is list  # noqa: E721 - not ruamel's Commented*
    assert load_study(path).training.lr == 0.05
    path.write_text(text.replace("nesterov: true", "nesterov: yes"))  # a string in YAML 1.2, not a boolean
    with pytest.raises(ConfigError, match=r"training\.nesterov: .*allowed: true, false"):
        load_study(path)


# --------------------------------------------------------------------------- files that cannot be read


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


def _nested(depth: int) -> bytes:
    return ("seed: " + "[" * depth + "]" * depth + "\n").encode()


UNREADABLE = {  # id: (what the params path holds, what the one problem says)
    "not UTF-8": (b"seed: 0\nexperiment: caf\xe9\n", "is not UTF-8 text: byte 0xe9 at line 2"),
    "a folder": (None, "is a folder; allowed: a params file"),
    "5000-deep list (RecursionError)": (_nested(5000), "too deeply for the YAML parser; allowed: at most"),
    "300-deep list": (_nested(300), f"nests lists or mappings 301 levels deep; allowed: at most {MAX_PARAMS_DEPTH}"),
}


def _unreadable(tmp_path: Path, case: str) -> Path:
    content = UNREADABLE[case][0]
    path = tmp_path / "params_in"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_params_are_one_problem(tmp_path: Path, case: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_study(_unreadable(tmp_path, case))
    assert len(info.value.problems) == 1 and UNREADABLE[case][1] in info.value.problems[0], info.value.problems


def test_oversized_params_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autos.config.loading as loading

    monkeypatch.setattr(loading, "MAX_PARAMS_BYTES", 100)
    (tmp_path / "big.yaml").write_text("seed: 0\n" * 20)
    with pytest.raises(ConfigError, match="is larger than"):
        load_study(tmp_path / "big.yaml")


# --------------------------------------------------------------------------- a stage


def _run_stage(stage: str, params: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOS_ROOT": str(cwd), "PYTHONPATH": str(REPO)}
    source = ["--source-seed", "0"] if stage in ("irp", "features", "train_scorer") else []
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", "--params", str(params), *source], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_stage_refuses_nonsense_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    edit: list[tuple[str, str]] = [
        ("  epochs: 5\n", "  epochs: true\n"),
        ("  lr: 0.05\n", "  lr: .nan\n"),
        ("  seeds: [0, 1, 2]", "  seeds: []"),
        ("  experiment: autos\n", '  experiment: " "\n'),
        ("  extra: [w0_layer_z, g0_layer_z, log_fan_in, log_fan_out]\n", "  extra: [w0_layer_z]\n"),
    ]
    text = (REPO / "params.yaml").read_text()
    for old, new in edit:
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "params.yaml").write_text(text)
    proc = _run_stage("irp", tmp_path / "params.yaml", tmp_path)
    assert proc.returncode == 2, proc.stderr
    for path in ("training.epochs", "training.lr", "transfer.seeds", "tracking.experiment", "scorer.settings.inputs"):
        assert path in proc.stderr, proc.stderr
    assert "6 problem(s)" in proc.stderr and "sources.seeds" in proc.stderr  # the edit empties both seed lists
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data/, metrics/, mlflow.db


@pytest.mark.parametrize("case", ["not UTF-8", "a folder", "5000-deep list (RecursionError)", "/etc/passwd table"])
def test_stage_given_unreadable_params_exits_2_in_one_problem(tmp_path: Path, case: str) -> None:
    if case == "/etc/passwd table":  # a file that exists but is no feature table: refused at load, not in train_scorer
        params = tmp_path / "params_in"
        text = (REPO / "params.yaml").read_text()
        params.write_text(text.replace("  extra_tables: []", "  extra_tables: [/etc/passwd]"))
        expected = "scorer.extra_tables.0: /etc/passwd is not a Parquet file"
    else:
        params, expected = _unreadable(tmp_path, case), UNREADABLE[case][1]
    proc = _run_stage("irp", params, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 problem(s)" in proc.stderr and expected in proc.stderr, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["params_in"]  # nothing written
