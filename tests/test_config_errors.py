"""Params that make no sense, or that would fail or lie at run time, are refused at load: each with its dotted path
and the allowed values or range, all together (tests/test_config.py: a stage then exits 2 and writes nothing)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from autos.config import MAX_BATCH_SIZE, MAX_SCORER_BATCH_SIZE, TrainRecipe, load_config, read_params
from autos.errors import ConfigError
from autos.study import parse_study

REPO = Path(__file__).resolve().parents[1]
BASE = read_params(REPO / "params.yaml")


def _set(path: str, value: Any, also: dict[str, Any] | None = None) -> dict:
    """params.yaml with the value at each dotted path replaced (a missing last key is added)."""
    raw = copy.deepcopy(BASE)
    for dotted, new in {path: value, **(also or {})}.items():
        *parents, key = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[key] = new
    return raw


def _problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_study(raw)
    return "\n".join(info.value.problems)


def test_all_problems_reported_together_with_dotted_paths() -> None:
    raw = _set("irp.num_rounds", "many", {"irp.schedule": "cubic", "training.lr": -1, "transfer.sparsities": [0.5, 1.0],
                                          "source.model": "resnet1000", "irp.typo_key": 3})
    with pytest.raises(ConfigError) as info:
        parse_study(raw)
    text = "\n".join(info.value.problems)
    assert "irp.num_rounds" in text
    assert "irp.schedule" in text and "'linear'" in text and "'geometric'" in text
    assert "training.lr" in text
    assert "transfer.sparsities.1" in text and "1.0" in text
    assert "source.model" in text and "resnet18" in text and "vgg16_bn" in text
    assert "irp.typo_key: unknown key" in text and "num_rounds" in text  # lists allowed keys
    assert len(info.value.problems) >= 6


def test_every_problem_at_once_including_cross_section_ones() -> None:
    raw = _set("features.extra", ["w0_layer_z"], {  # cross-section: the scorer reads 3 more columns
        "training.epochs": True, "transfer.seeds": [], "tracking.experiment": "", "scorer.lr": math.nan,
        "irp.epochs_per_round": 0})
    del raw["data"]["datasets"]["tiny_imagenet"]  # cross-section: a target uses it
    text = _problems(raw)
    for path in ("training.epochs:", "transfer.seeds:", "tracking.experiment:", "scorer.lr:", "irp.epochs_per_round:",
                 "scorer.settings.inputs:", "transfer.targets.resnet18_tiny_imagenet.dataset:"):
        assert path in text, text


# --------------------------------------------------------------------------- one refusal at a time

TARGET = "transfer.targets.resnet18_tiny_imagenet"
ESCAPE = {"../../../escape_target": BASE["transfer"]["targets"]["vgg16_cifar10"]}
REFUSED: list[tuple[str, dict, str, str]] = [
    # (id, raw params, dotted path expected in the message, allowed values/range expected in the message)
    ("sparsity 0", _set("transfer.sparsities", [0]), "transfer.sparsities.0", "(0, 1)"),
    ("graph and compile", _set("training.cuda_graph", True, {"training.compile": True}), "training.cuda_graph",
     "at most one of compile and cuda_graph"),
    ("sparsity 1", _set("transfer.sparsities", [1]), "transfer.sparsities.0", "(0, 1)"),
    ("sparsity 1.5", _set("transfer.sparsities", [1.5]), "transfer.sparsities.0", "(got 1.5)"),
    ("sparsity -0.1", _set("transfer.sparsities", [-0.1]), "transfer.sparsities.0", "(got -0.1)"),
    ("empty methods", _set("transfer.methods", []), "transfer.methods", "at least one method"),
    ("empty sparsities", _set("transfer.sparsities", []), "transfer.sparsities", "at least one sparsity"),
    ("empty seeds", _set("transfer.seeds", []), "transfer.seeds", "at least one seed"),
    ("duplicate sparsity", _set("transfer.sparsities", [0.9, 0.98, 0.9]), "transfer.sparsities", "0.9"),
    ("duplicate seed", _set("transfer.seeds", [0, 1, 0]), "transfer.seeds", "listed once"),
    ("bool seed", _set("transfer.seeds", [True]), "transfer.seeds.0", "valid integer"),
    ("negative seed", _set("seed", -1), "seed", "[0, 4294967295]"),
    ("float seed", _set("scorer.seed", 1.0), "scorer.seed", "valid integer"),
    ("nan lr", _set("training.lr", math.nan), "training.lr", "finite number"),
    ("inf lr", _set("training.lr", math.inf), "training.lr", "finite number"),
    ("-inf lr", _set("training.lr", -math.inf), "training.lr", "(0, 10.0]"),
    ("zero lr", _set("training.lr", 0), "training.lr", "(0, 10.0]"),
    ("negative lr", _set("training.lr", -0.1), "training.lr", "(0, 10.0]"),
    ("lr 1e12", _set("training.lr", 1e12), "training.lr", "(0, 10.0]"),
    ("nan scorer lr", _set("scorer.lr", math.nan), "scorer.lr", "finite number"),
    ("inf scorer lr", _set("scorer.lr", math.inf), "scorer.lr", "finite number"),
    ("zero scorer lr", _set("scorer.lr", 0.0), "scorer.lr", "(0, 10.0]"),
    ("scorer lr 1e12", _set("scorer.lr", 1e12), "scorer.lr", "(0, 10.0]"),
    ("nan weight decay", _set("training.weight_decay", math.nan), "training.weight_decay", "finite number"),
    ("epochs true", _set("training.epochs", True), "training.epochs", "valid integer"),
    ("epochs '3'", _set("training.epochs", "3"), "training.epochs", "valid integer"),
    ("epochs 3.0", _set("training.epochs", 3.0), "training.epochs", "valid integer"),
    ("epochs 10**12", _set("training.epochs", 10**12), "training.epochs", "[1, 10000]"),
    ("target epochs 10**12", _set(f"{TARGET}.epochs", 10**12), f"{TARGET}.epochs", "[1, 10000]"),
    ("scorer epochs 10**12", _set("scorer.epochs", 10**12), "scorer.epochs", "[1, 10000]"),
    ("epochs_per_round 10**12", _set("irp.epochs_per_round", 10**12), "irp.epochs_per_round", "[1, 10000]"),
    ("num_rounds 10**6", _set("irp.num_rounds", 10**6), "irp.num_rounds", "[1, 100]"),
    ("num_rounds '4'", _set("irp.num_rounds", "4"), "irp.num_rounds", "[1, 100]"),
    ("width 10**6", _set("source.width", 10**6), "source.width", "[1, 1024]"),
    ("target width 10**6", _set(f"{TARGET}.width", 10**6), f"{TARGET}.width", "[1, 1024]"),
    ("warmup = epochs", _set("training.warmup_epochs", 5), "training.warmup_epochs", "allowed: 0..4"),
    ("warmup > epochs", _set("training.warmup_epochs", 50), "training.warmup_epochs", "allowed: 0..4"),
    ("target epochs within warmup", _set("training.warmup_epochs", 3), f"{TARGET}.epochs", "allowed: at least 4"),
    ("IRP round within warmup", _set("training.warmup_epochs", 4), "irp.epochs_per_round", "allowed: at least 5"),
    ("source.epochs", _set("source.epochs", 5), "source.epochs", "allowed: null"),
    ("local with address", _set("execution.address", "10.0.0.1:6379"), "execution.address",
     "allowed with 'local': null"),
    ("local with GPUs", _set("execution.num_gpus", 1), "execution.num_gpus", "allowed with 'local': 0"),
    ("local with retries", _set("execution.max_retries", 5), "execution.max_retries",
     "allowed with 'local': 2 (the default)"),
    ("no targets", _set("transfer.targets", {}), "transfer.targets", "at least one target"),
    ("target name ../", _set("transfer.targets", ESCAPE), "transfer.targets",
     "target name(s) '../../../escape_target' are not safe as folder names (data/.../<name>); allowed: letters"),
    ("target name with a dot", _set("transfer.targets", {"a.b": ESCAPE["../../../escape_target"]}),
     "transfer.targets", "'a.b'"),
    ("dataset name ../", _set("data.datasets", {**BASE["data"]["datasets"], "../x": {}}), "data.datasets",
     "dataset name(s) '../x' are not safe as folder names"),
    ("experiment 257 chars", _set("tracking.experiment", "x" * 257), "tracking.experiment", "at most 256"),
    ("empty experiment", _set("tracking.experiment", ""), "tracking.experiment", "must not be empty"),
    ("blank experiment", _set("tracking.experiment", "  \t"), "tracking.experiment", "must not be empty"),
    ("extra table /etc/passwd", _set("scorer.extra_tables", ["/etc/passwd"]), "scorer.extra_tables.0",
     "/etc/passwd is not a Parquet file"),
    ("extra table missing", _set("scorer.extra_tables", ["data/nope.parquet"]), "scorer.extra_tables.0",
     "nope.parquet does not exist"),
    ("extra table a folder", _set("scorer.extra_tables", ["/tmp"]), "scorer.extra_tables.0", "/tmp is not a file"),
    ("lr true", _set("training.lr", True), "training.lr", "valid number"),
    ("lr '0.1'", _set("training.lr", "0.1"), "training.lr", "valid number"),
    ("nesterov 'yes'", _set("training.nesterov", "yes"), "training.nesterov", "true, false"),
    ("augment 1", _set("training.augment", 1), "training.augment", "true, false"),
    ("empty topk", _set("scorer.topk_densities", []), "scorer.topk_densities", "at least one"),
    ("duplicate topk", _set("scorer.topk_densities", [0.5, 0.5]), "scorer.topk_densities", "listed once"),
    ("huge batch", _set("training.batch_size", MAX_BATCH_SIZE + 1), "training.batch_size", f"[1, {MAX_BATCH_SIZE}]"),
    ("zero batch", _set("training.batch_size", 0), "training.batch_size", f"[1, {MAX_BATCH_SIZE}]"),
    ("huge eval batch", _set("training.eval_batch_size", 10**9), "training.eval_batch_size",
     f"[1, {MAX_BATCH_SIZE}]"),
    ("huge gradient batch", _set("features.gradient_batch_size", 2**20), "features.gradient_batch_size",
     f"[1, {MAX_BATCH_SIZE}]"),
    ("huge scorer batch", _set("scorer.batch_size", MAX_SCORER_BATCH_SIZE + 1), "scorer.batch_size",
     f"[1, {MAX_SCORER_BATCH_SIZE}]"),
    ("duplicate extra", _set("features.extra", ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out",
                                                "log_fan_in"]), "features.extra", "listed twice"),
    ("scorer setting bool", _set("scorer.settings", {"hidden": [True]}), "scorer.settings.hidden.0",
     "valid integer"),
    ("unknown method", _set("transfer.methods", ["snip", "snap"]), "transfer.methods", "'snap'; allowed: "),
    ("unknown method setting", _set("transfer.method_settings", {"snip": {"bogus": 1}}),
     "transfer.method_settings.snip.bogus", "unknown key; allowed keys: "),
    ("method setting '3'", _set("transfer.method_settings", {"snip": {"num_batches": "3"}}),
     "transfer.method_settings.snip.num_batches", "valid integer"),
    ("method setting inf", _set("transfer.method_settings", {"prospr": {"inner_lr": math.inf}}),
     "transfer.method_settings.prospr.inner_lr", "finite number"),
    ("nested method setting nan", _set("transfer.method_settings",
                                       {"kstarts_dissipating": {"dissipating": {"eps": math.nan}}}),
     "transfer.method_settings.kstarts_dissipating.dissipating.eps", "(0, inf)"),
]


@pytest.mark.parametrize(("raw", "path", "allowed"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_nonsense_is_refused_with_path_and_allowed(raw: dict, path: str, allowed: str) -> None:
    text = _problems(raw)
    assert f"{path}:" in text and allowed in text, text


def test_undeclared_dataset_is_named() -> None:
    raw = copy.deepcopy(BASE)
    del raw["data"]["datasets"]["tiny_imagenet"]
    text = _problems(raw)
    assert f"{TARGET}.dataset: 'tiny_imagenet' is not prepared" in text and "declared: cifar10" in text


def test_what_does_apply_is_accepted() -> None:
    ray = _set("execution", {"backend": "ray", "address": "auto", "num_gpus": 0.25, "max_retries": 0, "num_cpus": 2})
    assert parse_study(ray).execution.num_gpus == 0.25
    assert parse_study(_set("execution.num_cpus", 2)).execution.num_cpus == 2  # CPUs per cell: local too
    cfg = parse_study(_set("training.warmup_epochs", 2, {f"{TARGET}.epochs": 3, "source.width": 1024}))
    assert cfg.training.warmup_epochs == 2 and cfg.source.width == 1024
    named = _set("transfer.targets", {"_T2": ESCAPE["../../../escape_target"]}, {"tracking.experiment": "a b " * 64})
    assert list(parse_study(named).transfer.targets) == ["_T2"]  # MLflow names may hold spaces


def test_path_names_are_checked_without_the_registries(tmp_path: Path) -> None:
    """Structure-only loading (no catalog) still refuses a target name that would write outside the study."""
    params = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    params.write_text(text.replace("    vgg16_cifar10:\n", "    ../../../escape_target:\n"))
    with pytest.raises(ConfigError, match=r"transfer\.targets: target name\(s\) '\.\./\.\./\.\./escape_target'"):
        load_config(params)


def test_an_epochs_override_is_checked_at_run_time_too() -> None:
    """Methods train with recipe.with_epochs(<their own setting>): an override within the warmup is a ConfigError."""
    recipe = TrainRecipe(epochs=10, warmup_epochs=3)
    assert recipe.with_epochs(4).epochs == 4 and recipe.with_epochs(None) is recipe
    with pytest.raises(ConfigError, match=r"epochs override 3: warmup_epochs: 3 is not shorter than the 3 epochs"):
        recipe.with_epochs(3)


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
    raw = _set("features.extra", extra)
    if settings is not None:
        raw["scorer"]["settings"] = settings
    text = _problems(raw)
    assert "scorer.settings.inputs:" in text and ", ".join(missing) in text
    assert f"the table has: {', '.join(['w0', 'g0', *extra])}" in text  # what features.extra produces today


def test_base_inputs_need_no_extra() -> None:
    raw = _set("features.extra", [], {"scorer.name": "paper", "scorer.settings": {"inputs": ["w0", "g0"]}})
    assert parse_study(raw).features.extra == []
