"""`autos-prune`: a trained scorer prunes a registered model at init from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autos.cli import main
from autos.scorer import build_scorer, save_scorer


@pytest.fixture
def prepared(tmp_path, shared_data):
    from autos.data import prepare_dataset

    prepare_dataset("cifar10", search_dirs=[shared_data], out_dir=tmp_path / "cifar10", download=False,
                    download_dir=None, max_train_per_class=8, max_test_per_class=4)
    return tmp_path / "cifar10"


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
    masks = torch.load(out, weights_only=True)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert abs(1 - kept / total - 0.9) < 1e-4
    summary = json.loads(out.with_suffix(".json").read_text())
    assert np.isclose(summary["sparsity"], 1 - kept / total) and "effective_sparsity" in summary
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
    base = {"--scorer": str(tmp_path / "scorer"), "--model": "vgg16_bn", "--width": "4",
            "--data": str(tmp_path / "data"),
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
