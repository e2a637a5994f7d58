"""Params that make no sense are refused at load: each with its dotted path and the allowed values or range,
all together, and a stage given such a file exits with status 2 and writes nothing.

Also: params files are read as YAML 1.2, the dialect ``dvc exp run -S`` writes back (``off`` is a string).
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from ruamel.yaml import YAML

from autos.config import MAX_BATCH_SIZE, MAX_SCORER_BATCH_SIZE, read_params
from autos.errors import ConfigError
from autos.study import load_study, method_settings, parse_study, scorer_settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))]
BASE = read_params(REPO / "params.yaml")


def _with(section: str | None, key: str, value: Any) -> dict:
    raw = copy.deepcopy(BASE)
    (raw if section is None else raw[section])[key] = value
    return raw


def _problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_study(raw)
    return "\n".join(info.value.problems)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_still_loads_strictly(path: Path) -> None:
    cfg = load_study(path)
    scorer_settings(cfg.scorer)
    for method in cfg.transfer.methods:
        method_settings(cfg, method)
    assert isinstance(cfg.training.lr, float) and cfg.training.channels_last in ("auto", "on", "off")


# --------------------------------------------------------------------------- one refusal at a time

REFUSED: list[tuple[str, dict, str, str]] = [
    # (id, raw params, dotted path expected in the message, allowed values/range expected in the message)
    ("empty methods", _with("transfer", "methods", []), "transfer.methods", "at least one method"),
    ("empty sparsities", _with("transfer", "sparsities", []), "transfer.sparsities", "at least one sparsity"),
    ("empty seeds", _with("transfer", "seeds", []), "transfer.seeds", "at least one seed"),
    ("duplicate sparsity", _with("transfer", "sparsities", [0.9, 0.98, 0.9]), "transfer.sparsities", "0.9"),
    ("duplicate seed", _with("transfer", "seeds", [0, 1, 0]), "transfer.seeds", "listed once"),
    ("bool seed", _with("transfer", "seeds", [True]), "transfer.seeds.0", "valid integer"),
    ("negative seed", _with(None, "seed", -1), "seed", "[0, 4294967295]"),
    ("float seed", _with("scorer", "seed", 1.0), "scorer.seed", "valid integer"),
    ("nan lr", _with("training", "lr", math.nan), "training.lr", "finite number"),
    ("inf lr", _with("training", "lr", math.inf), "training.lr", "finite number"),
    ("-inf lr", _with("training", "lr", -math.inf), "training.lr", "(0, inf)"),
    ("zero lr", _with("training", "lr", 0), "training.lr", "(0, inf)"),
    ("negative lr", _with("training", "lr", -0.1), "training.lr", "(0, inf)"),
    ("nan scorer lr", _with("scorer", "lr", math.nan), "scorer.lr", "finite number"),
    ("inf scorer lr", _with("scorer", "lr", math.inf), "scorer.lr", "finite number"),
    ("zero scorer lr", _with("scorer", "lr", 0.0), "scorer.lr", "(0, inf)"),
    ("nan weight decay", _with("training", "weight_decay", math.nan), "training.weight_decay", "finite number"),
    ("epochs true", _with("training", "epochs", True), "training.epochs", "valid integer"),
    ("epochs '3'", _with("training", "epochs", "3"), "training.epochs", "valid integer"),
    ("epochs 3.0", _with("training", "epochs", 3.0), "training.epochs", "valid integer"),
    ("lr true", _with("training", "lr", True), "training.lr", "valid number"),
    ("lr '0.1'", _with("training", "lr", "0.1"), "training.lr", "valid number"),
    ("nesterov 'yes'", _with("training", "nesterov", "yes"), "training.nesterov", "true, false"),
    ("augment 1", _with("training", "augment", 1), "training.augment", "true, false"),
    ("num_rounds '4'", _with("irp", "num_rounds", "4"), "irp.num_rounds", "[1, 100]"),
    ("empty experiment", _with("tracking", "experiment", ""), "tracking.experiment", "must not be empty"),
    ("blank experiment", _with("tracking", "experiment", "  \t"), "tracking.experiment", "must not be empty"),
    ("empty topk", _with("scorer", "topk_densities", []), "scorer.topk_densities", "at least one"),
    ("duplicate topk", _with("scorer", "topk_densities", [0.5, 0.5]), "scorer.topk_densities", "listed once"),
    ("huge batch", _with("training", "batch_size", MAX_BATCH_SIZE + 1), "training.batch_size",
     f"[1, {MAX_BATCH_SIZE}]"),
    ("zero batch", _with("training", "batch_size", 0), "training.batch_size", f"[1, {MAX_BATCH_SIZE}]"),
    ("huge eval batch", _with("training", "eval_batch_size", 10**9), "training.eval_batch_size",
     f"[1, {MAX_BATCH_SIZE}]"),
    ("huge gradient batch", _with("features", "gradient_batch_size", 2**20), "features.gradient_batch_size",
     f"[1, {MAX_BATCH_SIZE}]"),
    ("huge scorer batch", _with("scorer", "batch_size", MAX_SCORER_BATCH_SIZE + 1), "scorer.batch_size",
     f"[1, {MAX_SCORER_BATCH_SIZE}]"),
    ("duplicate extra", _with("features", "extra", ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out",
                                                    "log_fan_in"]), "features.extra", "listed twice"),
    ("scorer setting bool", _with("scorer", "settings", {"hidden": [True]}), "scorer.settings.hidden.0",
     "valid integer"),
    ("method setting '3'", _with("transfer", "method_settings", {"snip": {"num_batches": "3"}}),
     "transfer.method_settings.snip.num_batches", "valid integer"),
    ("method setting inf", _with("transfer", "method_settings", {"prospr": {"inner_lr": math.inf}}),
     "transfer.method_settings.prospr.inner_lr", "finite number"),
    ("nested method setting nan", _with("transfer", "method_settings",
                                        {"kstarts_dissipating": {"dissipating": {"eps": math.nan}}}),
     "transfer.method_settings.kstarts_dissipating.dissipating.eps", "(0, inf)"),
]


@pytest.mark.parametrize(("raw", "path", "allowed"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_nonsense_is_refused_with_path_and_allowed(raw: dict, path: str, allowed: str) -> None:
    text = _problems(raw)
    assert f"{path}:" in text and allowed in text, text


def test_ints_are_still_floats_and_literals_lists_dicts_validate() -> None:
    raw = _with("training", "lr", 1)  # an int where a float belongs is fine (YAML `lr: 1`)
    raw["training"].update(weight_decay=0, milestones=[0.5], schedule="multistep")
    raw["data"]["datasets"]["cifar10"] = {"max_train_per_class": 10}
    cfg = parse_study(raw)
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    assert cfg.training.schedule == "multistep" and cfg.training.milestones == [0.5]
    assert cfg.data.datasets["cifar10"].max_train_per_class == 10


# --------------------------------------------------------------------------- device


def test_cuda_refused_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    text = _problems(_with(None, "device", "cuda"))
    assert "device:" in text and "'auto'" in text and "'cpu'" in text
    parse_study(_with(None, "device", "cpu"))
    parse_study(_with(None, "device", "auto"))


def test_cuda_accepted_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parse_study(_with(None, "device", "cuda")).device == "cuda"


# --------------------------------------------------------------------------- sections that must agree


@pytest.mark.parametrize(
    ("extra", "settings", "missing"),
    [
        (["g0_layer_z", "log_fan_in", "log_fan_out"], None, ["w0_layer_z"]),
        ([], {"inputs": ["w0", "abs_g0"]}, ["abs_g0"]),
        ([], {}, ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out"]),  # the mlp scorer's default inputs
    ],
    ids=["one missing", "explicit inputs", "default inputs"],
)
def test_scorer_inputs_must_be_in_the_feature_table(extra: list[str], settings: dict | None,
                                                    missing: list[str]) -> None:
    raw = _with("features", "extra", extra)
    if settings is not None:
        raw["scorer"]["settings"] = settings
    text = _problems(raw)
    assert "scorer.settings.inputs:" in text and ", ".join(missing) in text
    assert f"the table has: {', '.join(['w0', 'g0', *extra])}" in text  # what features.extra produces today


def test_base_inputs_need_no_extra() -> None:
    raw = _with("features", "extra", [])
    raw["scorer"].update(name="paper", settings={"inputs": ["w0", "g0"]})
    assert parse_study(raw).features.extra == []


def test_every_problem_at_once_including_cross_section_ones() -> None:
    raw = _with("features", "extra", ["w0_layer_z"])  # cross-section: the scorer reads 3 more columns
    raw["training"]["epochs"] = True
    raw["transfer"]["seeds"] = []
    raw["tracking"]["experiment"] = ""
    raw["scorer"]["lr"] = math.nan
    del raw["data"]["datasets"]["tiny_imagenet"]  # cross-section: a target uses it
    text = _problems(raw)
    for path in ("training.epochs:", "transfer.seeds:", "tracking.experiment:", "scorer.lr:",
                 "scorer.settings.inputs:", "transfer.targets.resnet18_tiny_imagenet.dataset:"):
        assert path in text, text


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


# --------------------------------------------------------------------------- a stage


def _run_stage(stage: str, params: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOS_ROOT": str(cwd), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", "--params", str(params)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stage_refuses_nonsense_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    edit: list[tuple[str, str]] = [
        ("  epochs: 10\n", "  epochs: true\n"),
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
    assert "5 problem(s)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data/, metrics/, mlflow.db
