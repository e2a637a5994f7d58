"""IRP on a toy model: nested masks, survivors rewound to init, counts in 0..P, resume gives the same result."""

from __future__ import annotations

import pytest
import torch

from autos.config import IRPConfig
from autos.irp import run_irp
from autos.masking import kept_count
from autos.models import build_model

CPU = torch.device("cpu")


def _irp(tiny_data, recipe, tmp_path=None, on_round=None, **overrides):
    cfg = IRPConfig(num_rounds=3, final_density=0.2, schedule="linear", epochs_per_round=1, **overrides)
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_irp(model, tiny_data, cfg, recipe, device=CPU, seed=0, resume_dir=tmp_path, on_round=on_round)
    return cfg, init, result


def test_nested_masks_counts_and_curve(tiny_data, quick_recipe) -> None:
    cfg, init, result = _irp(tiny_data, quick_recipe)
    total = sum(m.numel() for m in result.masks[0].values())
    assert [r["round"] for r in result.curve] == [0, 1, 2, 3]  # dense first, then P rounds
    for earlier, later in zip(result.masks, result.masks[1:]):
        for n in earlier:
            assert not (later[n] & ~earlier[n]).any()  # pruned weights stay pruned
    for k, masks in enumerate(result.masks, start=1):
        density = 1 - 0.8 * k / 3
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, density)
    for n, count in result.survived.items():
        assert count.dtype == torch.int8 and int(count.min()) >= 0 and int(count.max()) <= cfg.num_rounds
        assert torch.equal(count, sum(m[n].to(torch.int8) for m in result.masks))
        assert torch.equal(count == cfg.num_rounds, result.masks[-1][n])  # the final ticket survived every round
    assert all(torch.equal(result.init_state[k], init[k]) for k in init)


def test_survivors_rewound_to_init(tiny_data, quick_recipe) -> None:
    """Right after the last rewind the ticket equals the init weights on its support (checked via round hook)."""
    snapshots = []
    cfg = IRPConfig(num_rounds=2, final_density=0.3, epochs_per_round=1)
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0)
    init = {k: v.clone() for k, v in model.state_dict().items()}

    import autos.irp as irp_module

    real_train = irp_module.train

    def spy(m, *args, **kwargs):
        if kwargs.get("masks") is not None:
            snapshots.append(({k: v.detach().clone() for k, v in m.named_parameters()}, kwargs["masks"]))
        return real_train(m, *args, **kwargs)

    irp_module.train = spy
    try:
        run_irp(model, tiny_data, cfg, quick_recipe, device=CPU, seed=0)
    finally:
        irp_module.train = real_train
    assert len(snapshots) == 2
    for weights, masks in snapshots:
        for n, m in masks.items():
            assert torch.equal(weights[n][m], init[n][m])  # survivors at their initial values
            assert (weights[n][~m] == 0).all()
    # BN is not rewound by default (reference): its state after round 1 differs from init
    assert not torch.equal(model.bn1.weight.detach(), init["bn1.weight"])


def test_resume_gives_the_same_result(tiny_data, quick_recipe, tmp_path) -> None:
    _, _, full = _irp(tiny_data, quick_recipe)

    class Killed(Exception):
        pass

    def kill_after_round_1(record, result) -> None:
        if record["round"] == 1:
            raise Killed

    with pytest.raises(Killed):
        _irp(tiny_data, quick_recipe, tmp_path, on_round=kill_after_round_1)
    rounds_run = []
    _, _, resumed = _irp(tiny_data, quick_recipe, tmp_path, on_round=lambda r, _: rounds_run.append(r["round"]))
    assert rounds_run == [2, 3]  # rounds 0 and 1 came from the checkpoint
    for n in full.survived:
        assert torch.equal(full.survived[n], resumed.survived[n])
    assert [r["final_test_acc"] for r in full.curve] == [r["final_test_acc"] for r in resumed.curve]


def test_reference_mode_scores_init_and_snip_criterion(tiny_data, quick_recipe) -> None:
    cfg, _, result = _irp(tiny_data, quick_recipe, train_dense_first=False, criterion="snip", snip_batches=1)
    assert [r["round"] for r in result.curve] == [1, 2, 3]
    assert max(int(c.max()) for c in result.survived.values()) == cfg.num_rounds
