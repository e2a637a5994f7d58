"""bench/paper_cost.py turns a profile's structure into training images: the counts it multiplies by the measured
rates are checked here against a hand count on a small profile."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from paper_cost import cost, scenario, target_epochs  # noqa: E402

PROFILE = REPO_ROOT / "configs" / "paper.yaml"
SMALL = ["transfer.methods=[autos, snip, irp]", "transfer.sparsities=[0.9, 0.99]", "transfer.seeds=[0, 1]",
         "sources.seeds=[0, 1]", "transfer.modifiers=[shuffle]", "transfer.modifier_methods=[snip]",
         "report.under_test=[autos]", "training.epochs=10",
         "transfer.method_settings={irp: {schedule: fraction, prune_fraction: 0.2, epochs_per_round: 2}}"]


def test_training_epochs_are_counted_by_hand() -> None:
    cfg = scenario(PROFILE, SMALL)
    epochs = target_epochs(cfg, "vgg16_cifar10")
    # 3 methods x 2 sparsities x 2 seeds cells of 10 epochs (sources paired: AutoS once per seed)
    assert epochs["cells"] == 3 * 2 * 2 * 10
    assert epochs["modifiers"] == 1 * 2 * 2 * 10  # shuffle on snip only
    assert epochs["dense"] == 2 * 10
    # IRP on the target, shared: one run per seed to 1% density at 20% a round: ceil(log .01 / log .8) = 21 rounds
    assert epochs["methods' own"] == 2 * 21 * 2


def test_crossed_sources_multiply_autos_cells_and_unshared_irp_costs_more() -> None:
    crossed = target_epochs(scenario(PROFILE, [*SMALL, "sources.pairing=crossed"]), "vgg16_cifar10")
    assert crossed["cells"] == (2 + 1 + 1) * 2 * 2 * 10  # AutoS: 2 sources x 2 seeds per sparsity
    unshared = SMALL[:-1] + ["transfer.method_settings={irp: {schedule: fraction, prune_fraction: 0.2, "
                             "epochs_per_round: 2, shared_run: false}}"]
    own = target_epochs(scenario(PROFILE, unshared), "vgg16_cifar10")["methods' own"]
    assert own == 2 * (11 + 21) * 2  # a run per sparsity: 11 rounds to 10%, 21 to 1%, per seed


def test_a_rate_never_measured_makes_the_total_unknown_and_packing_falls_back_to_fewer_cells() -> None:
    cfg = scenario(PROFILE, SMALL)
    out = cost(cfg, {"32px/fp32/eager/1": 1000.0})
    assert out["total_gpu_hours"] is None and out["targets"]["resnet18_tiny_imagenet"]["gpu_hours"] is None
    vgg = out["targets"]["vgg16_cifar10"]
    assert vgg["rate_key"] == "32px/fp32/eager/1 (packing x2 not measured)"  # paper.yaml packs 2 cells per GPU
    assert vgg["gpu_hours"] == pytest.approx(vgg["train_images"] / 1000.0 / 3600)
