"""The paper profile's slice runs through `dvc repro` here: configs/paper.yaml with only its sizes shrunk
(bench/paper_shape.py: widths 4, one training image per class, one epoch, one seed and source), one target (VGG-16 on
CIFAR-10) with every method and every sanity check at two sparsities. A GPU-day run of the paper profile that would
fail on a code path only it takes (the `paper` scorer, IRP from the untrained init, SynFlow's 100 rounds, the methods
that train, every modifier) fails here first."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, SHARED_DATA

sys.path.insert(0, str(REPO_ROOT / "bench"))
from paper_shape import run, shape_params  # noqa: E402

pytestmark = pytest.mark.slow


def test_the_paper_shape_is_the_paper_profile_with_only_sizes_shrunk() -> None:
    paper = yaml.safe_load((REPO_ROOT / "configs" / "paper.yaml").read_text())
    shape = shape_params()
    for key in ("methods", "sparsities", "modifiers", "modifier_methods", "targets"):
        want = paper["transfer"][key]
        got = shape["transfer"][key]
        assert (list(got) == list(want)) if key == "targets" else (got == want), key
    assert shape["irp"]["num_rounds"] == paper["irp"]["num_rounds"] and shape["scorer"]["name"] == "paper"
    assert shape["training"]["schedule"] == "multistep"
    assert "image_size" not in shape["data"]["datasets"]["tiny_imagenet"]  # its native 64 px (10 classes: a size)
    assert shape["transfer"]["method_settings"]["synflow"]["iterations"] == 100


def test_the_slice_runs_every_method_and_modifier_through_dvc_repro(tmp_path: Path) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared offline data not found at {SHARED_DATA}")
    params = shape_params(slice_=True)
    outcome = run(params, tmp_path / "study")
    assert list(outcome["targets"]) == ["vgg16_cifar10"]
    rows = json.loads((tmp_path / "study" / "data" / "transfer" / "vgg16_cifar10" / "results.json").read_text())["rows"]
    ran: dict[str, set[tuple[str, float]]] = {}
    for row in rows:
        ran.setdefault(row["method"], set()).add((row["modifier"] or "-", row["sparsity"]))
    assert ran.pop("dense") == {("-", 0.0)}
    assert sorted(ran) == sorted(params["transfer"]["methods"])
    for method, done in ran.items():  # shuffle and reinit apply to every mask, at every sparsity
        assert {(m, s) for m in ("-", "shuffle", "reinit") for s in (0.5, 0.99)} <= done, method
    # invert needs one-shot scores: the score-based methods run it; iterative ones (SynFlow, IRP) cannot
    inverted = {method for method, done in ran.items() if ("invert", 0.5) in done and ("invert", 0.99) in done}
    assert {"autos", "magnitude", "snip", "grasp", "prospr"} <= inverted and "synflow" not in inverted
