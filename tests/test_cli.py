"""`autos-prune`: any registered method prunes a registered model or a user's factory model at init from the
command line; the masks travel with the initial weights."""

from __future__ import annotations

import importlib
import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from autos.api.cli import main
from autos.models import build_model
from autos.scorer import build_scorer, save_scorer


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from autos.data import prepare_dataset

    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared offline data not found at {SHARED_DATA}")
    out = tmp_path_factory.mktemp("prepared") / "cifar10"  # prepared once for the module (read-only in the tests)
    prepare_dataset("cifar10", search_dirs=[SHARED_DATA], out_dir=out, download=False,
                    download_dir=None, max_train_per_class=8, max_test_per_class=4)
    return out


def _scorer(directory) -> None:
    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(512, len(settings.inputs)))
    save_scorer(directory, net.eval(), "mlp", settings, {})


def test_prunes_to_the_requested_sparsity(tmp_path, prepared, capsys) -> None:
    _scorer(tmp_path / "scorer")
    out = tmp_path / "masks.pt"
    code = main(["--scorer", str(tmp_path / "scorer"), "--model", "vgg16_bn", "--width", "4", "--data",
                 str(prepared), "--sparsity", "0.9", "--gradient-batches", "1", "--out", str(out)])
    assert code == 0
    checkpoint = torch.load(out, weights_only=True)
    assert sorted(checkpoint) == ["init_state_dict", "masks"]  # AutoS does not move weights: train from the init
    masks = checkpoint["masks"]
    init = build_model("vgg16_bn", num_classes=10, width=4, input_size=32, seed=0).state_dict()
    assert all(torch.equal(init[k], v) for k, v in checkpoint["init_state_dict"].items())
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert abs(1 - kept / total - 0.9) < 1e-4
    summary = json.loads(out.with_suffix(".json").read_text())
    assert np.isclose(summary["sparsity"], 1 - kept / total) and "effective_sparsity" in summary
    assert summary["method"] == "autos" and summary["settings"]["scorer_dir"] == str((tmp_path / "scorer").resolve())
    assert json.loads(capsys.readouterr().out)["collapsed"] in (True, False)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith("masks")) == ["masks.json", "masks.pt"]
    assert not list(out.parent.glob(".masks*"))  # written atomically: no temp left behind


@pytest.mark.parametrize("argv,message", [
    (["--sparsity", "1.0"], "sparsity must be in (0, 1)"),
    (["--sparsity", "0.5", "--model", "resnet1000"], "allowed: resnet18, vgg16_bn"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, prepared, capsys, argv, message) -> None:
    _scorer(tmp_path / "scorer")
    base = {"--scorer": str(tmp_path / "scorer"), "--model": "vgg16_bn", "--width": "4", "--data": str(prepared),
            "--out": str(tmp_path / "m.pt")}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    assert main([x for kv in base.items() for x in kv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- bad arguments and bad input files


def _argv(tmp_path, **overrides: str) -> list[str]:
    """Arguments that pass every check (the directories exist, though empty): each test breaks one."""
    (tmp_path / "scorer").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    base = {"--scorer": str(tmp_path / "scorer"), "--model": "vgg16_bn", "--data": str(tmp_path / "data"),
            "--sparsity": "0.9", "--out": str(tmp_path / "out" / "masks.pt")}
    base.update({f"--{k.replace('_', '-')}": v for k, v in overrides.items()})
    return [x for kv in base.items() for x in kv]


@pytest.mark.parametrize("overrides,message", [
    ({"width": "0"}, "--width must be a positive integer (>= 1), got 0"),
    ({"width": "-8"}, "--width must be a positive integer (>= 1), got -8"),
    ({"width": "abc"}, "argument --width: invalid int value: 'abc'"),
    ({"sparsity": "0"}, "--sparsity must be in (0, 1) (the fraction of weights removed), got 0.0"),
    ({"sparsity": "1.5"}, "--sparsity must be in (0, 1) (the fraction of weights removed), got 1.5"),
    ({"sparsity": "-0.1"}, "got -0.1"),
    ({"sparsity": "nan"}, "--sparsity must be in (0, 1)"),
    ({"gradient_batches": "0"}, "--gradient-batches must be a positive integer (>= 1) or omitted, got 0"),
    ({"model": "resnet1000"}, "unknown model 'resnet1000'; allowed: resnet18, vgg16_bn"),
    ({"scorer": "no/such/scorer"}, "--scorer no/such/scorer: no such directory"),
    ({"data": "no/such/data"}, "--data no/such/data: no such directory"),
    ({"out": "summary.json"}, "must not end in .json"),
    ({"model": "no_such_module_for_autos:build"}, "--model 'no_such_module_for_autos:build': cannot import"),
    ({"model": "json:no_such_factory"}, "--model 'json:no_such_factory': module 'json' has no attribute"),
    ({"model": "json:__doc__"}, "'__doc__' is not callable"),
    ({"model": "not a module:f"}, "expected a registered model (resnet18, vgg16_bn) or package.module:factory"),
    ({"model": "json:loads", "width": "4"}, "--width applies to registered models only"),
    ({"method": "snipp"}, "--method: unknown method 'snipp'; allowed: autos, dissipating"),
    ({"method": "snip"}, "--scorer applies to the methods that read the AutoS scorer, not to 'snip'"),
    ({"settings": "scorer_dirr=x"},
     "unknown setting 'scorer_dirr' (allowed: scope, iterations, invert, layer_floor, scorer_dir, within_layer)"),
    ({"settings": "iterations=0"}, "iterations: Input should be greater than or equal to 1"),
    ({"settings": "{not json"}, "--settings: --settings '{not json': not valid JSON"),
])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, overrides, message) -> None:
    argv = _argv(tmp_path, **overrides)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert _exit_status(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def _exit_status(argv: list[str]) -> int:
    """main's exit status, whether it returns it or argparse exits (a value it cannot even parse)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_autos_requires_a_scorer_and_other_methods_refuse_one(tmp_path, capsys) -> None:
    argv = _argv(tmp_path)
    without = [a for i, a in enumerate(argv) if "--scorer" not in (a, argv[i - 1] if i else "")]
    assert _exit_status(without) == 2
    assert "--scorer is required with --method autos" in capsys.readouterr().err
    assert _exit_status([*without, "--method", "snip", "--gradient-batches", "2"]) == 2
    assert "--gradient-batches applies to the methods that read the AutoS scorer, not to 'snip'" in \
        capsys.readouterr().err


def test_several_bad_arguments_are_all_named_on_one_line(tmp_path, capsys) -> None:
    assert main(_argv(tmp_path, width="0", sparsity="2", scorer="nowhere")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--width" in err and "--sparsity" in err and "--scorer nowhere" in err


def test_corrupt_scorer_exits_1_naming_the_file(tmp_path, capsys) -> None:
    from autos.scorer import META_FILE

    argv = _argv(tmp_path)
    (tmp_path / "scorer" / META_FILE).write_bytes(b"\x00\xff garbage")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "scorer" / META_FILE) in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_corrupt_scorer_weights_exit_1(tmp_path, capsys) -> None:
    from autos.scorer import WEIGHTS_FILE

    argv = _argv(tmp_path)
    _scorer(tmp_path / "scorer")
    (tmp_path / "scorer" / WEIGHTS_FILE).write_bytes(b"PK\x03\x04 truncated")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert WEIGHTS_FILE in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_prepared_files_exit_1(tmp_path, capsys) -> None:
    argv = _argv(tmp_path)
    _scorer(tmp_path / "scorer")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "meta.json" in err and "prepare" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- any method, a user's factory model


FACTORY = """
import torch
from torch import nn


def small_cnn(scale_second_conv: float = 1.0) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        model[2].weight.mul_(scale_second_conv)
    return model


def collapsing_cnn() -> nn.Module:
    return small_cnn(scale_second_conv=1e-6)  # its weights are the smallest: global magnitude removes them all
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch, request) -> str:
    """A module of the user's in the current directory; a name of its own per test (imports are cached)."""
    name = f"user_models_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.chdir(tmp_path)
    return name


def test_a_factory_model_pruned_with_snip_and_key_value_settings(tmp_path, prepared, factory_module, capsys) -> None:
    out = tmp_path / "out" / "snip.pt"
    code = main(["--model", f"{factory_module}:small_cnn", "--method", "snip", "--settings", "batch_size=16",
                 "num_batches=2", "--data", str(prepared), "--sparsity", "0.9", "--seed", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    checkpoint = torch.load(out, weights_only=True)
    torch.manual_seed(3)
    expected = importlib.import_module(factory_module).small_cnn().state_dict()  # the init under --seed
    assert all(torch.equal(expected[k], v) for k, v in checkpoint["init_state_dict"].items())
    masks = checkpoint["masks"]
    assert sorted(masks) == ["0.weight", "2.weight", "6.weight"]
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == int(0.1 * total + 0.5)  # select_mask's exact count
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["method"] == "snip" and summary["settings"]["batch_size"] == 16
    assert summary["settings"]["num_batches"] == 2 and summary["width"] is None
    assert not (tmp_path / "__pycache__").exists()  # importing the factory wrote nothing


def test_a_collapsed_mask_is_reported_on_stderr(tmp_path, prepared, factory_module, capsys) -> None:
    out = tmp_path / "collapse.pt"
    code = main(["--model", f"{factory_module}:collapsing_cnn", "--method", "magnitude", "--settings",
                 '{"scope": "global"}', "--data", str(prepared), "--sparsity", "0.9", "--on-collapse", "warn",
                 "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "autos-prune: warning:" in captured.err and "2.weight" in captured.err
    assert json.loads(captured.out)["collapsed"] is True
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["collapsed"] and "2.weight" in summary["collapsed_layers"]
