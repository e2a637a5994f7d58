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


@pytest.mark.parametrize("argv,message", [
    (["--sparsity", "1.0"], "sparsity must be in (0, 1)"),
    (["--sparsity", "0.5", "--model", "resnet1000"], "allowed: resnet18, vgg16_bn"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, prepared, capsys, argv, message) -> None:
    _scorer(tmp_path / "scorer")
    base = {"--scorer": str(tmp_path / "scorer"), "--model": "vgg16_bn", "--width": "4", "--data": str(prepared),
            "--out": str(tmp_path / "m.pt")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    assert main([x for kv in base.items() for x in kv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
