"""GPU-only checks (skipped without CUDA): the loop at GPU speed keeps its promises.

Masks hold (pruned weights stay exactly zero) in bf16; the data-on-device path is deterministic under a seed and
draws the same batches as on CPU; the step loop never synchronises with the host; ``compile_model=True`` trains;
``cuda_graph`` captures the step, agrees with eager to rounding, keeps pruned weights at zero and never syncs.
"""

from __future__ import annotations

import math

import pytest
import torch

from autos.config import TrainRecipe
from autos.masking import nonzero_counts, prunable_parameters, select_mask
from autos.models import build_model
from autos.training import Callback, train
from autos.training.batches import device_batches, on_device

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")


def _masked(arch: str = "resnet18", width: int = 8, density: float = 0.1):
    model = build_model(arch, num_classes=4, width=width, input_size=32, seed=0)
    scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
    return model, select_mask(scores, density)


def _pruned_are_zero(model, masks) -> bool:
    params = dict(model.named_parameters())
    return all(bool((params[n].detach()[~m.to(params[n].device)] == 0).all()) for n, m in masks.items())


def test_bf16_masked_training_on_gpu(tiny_data) -> None:
    model, masks = _masked()
    recipe = TrainRecipe(epochs=2, batch_size=16, precision="bf16", weight_decay=5e-3, momentum=0.9)
    result = train(model, tiny_data, recipe, seed=0, device=CUDA, masks=masks)
    assert 0.0 <= result.final_test_acc <= 1.0
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["test_loss"]) for h in result.history)
    assert nonzero_counts(model, list(masks)) == {n: int(m.sum()) for n, m in masks.items()}
    assert _pruned_are_zero(model, masks)  # exactly zero, not merely small: momentum and decay revived nothing


def test_same_seed_same_run_on_gpu(tiny_data) -> None:
    runs = []
    for _ in range(2):
        model, masks = _masked("vgg16_bn", width=8, density=0.3)
        recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.05, augment=True)
        result = train(model, tiny_data, recipe, seed=7, device=CUDA, masks=masks)
        runs.append((result.history, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_gpu_batches_equal_cpu_batches(tiny_data) -> None:
    """The draws come from a CPU generator and the crop/flip are integer gathers: the same images on both."""
    gpu = on_device(tiny_data, CUDA)
    cpu_b = list(device_batches(tiny_data.train_x, tiny_data.train_y, 24, generator=torch.Generator().manual_seed(1),
                                augment=True))
    gpu_b = list(device_batches(gpu.train_x, gpu.train_y, 24, generator=torch.Generator().manual_seed(1), augment=True))
    assert gpu_b[0][0].device.type == "cuda"
    assert all(torch.equal(a.cpu(), c) and torch.equal(b.cpu(), d) for (a, b), (c, d) in zip(gpu_b, cpu_b, strict=True))


class _NoSyncInSteps(Callback):
    """CUDA's sync debug mode set to raise for the step loop proper (from each epoch's start to its last step)."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch

    def on_train_begin(self, state) -> None:
        torch.cuda.set_sync_debug_mode("error")

    def on_step_end(self, state) -> None:
        if state.step % self.steps_per_epoch == 0:
            torch.cuda.set_sync_debug_mode("default")  # the loop reads the epoch's sums next: one sync per epoch

    def on_epoch_end(self, state) -> None:
        torch.cuda.set_sync_debug_mode("error")


def test_step_loop_never_syncs_on_gpu(tiny_data) -> None:
    model, masks = _masked()
    recipe = TrainRecipe(epochs=2, batch_size=16, precision="bf16", augment=True)  # 64 images: 4 steps per epoch
    try:
        result = train(model, tiny_data, recipe, seed=0, device=CUDA, masks=masks, callbacks=[_NoSyncInSteps(4)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.epochs == 2


def test_compile_model_trains_on_gpu(tiny_data) -> None:
    model, masks = _masked()
    recipe = TrainRecipe(epochs=3, batch_size=16, lr=0.05, precision="bf16")
    result = train(model, tiny_data, recipe, seed=0, device=CUDA, masks=masks, compile_model=True)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert _pruned_are_zero(model, masks)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_agrees_with_eager_and_keeps_pruned_weights_zero(tiny_data, precision: str, caplog) -> None:
    """64 images at batch 24: two full batches and a partial one per epoch, so the run takes warm-up steps, the
    capture, replays and eager partial steps. Fused SGD rounds unlike the eager foreach SGD: agreement to rounding."""
    runs = []
    for graph in (False, True):
        model, masks = _masked()
        recipe = TrainRecipe(epochs=3, batch_size=24, lr=0.05, precision=precision, cuda_graph=graph)
        with caplog.at_level("INFO", logger="autos.training"):
            result = train(model, tiny_data, recipe, seed=0, device=CUDA, masks=masks)
        assert _pruned_are_zero(model, masks)
        runs.append((result, {k: v.detach().float().cpu() for k, v in model.state_dict().items()}))
    assert "training step captured in a CUDA graph (batch 24)" in caplog.text
    (eager, eager_state), (graphed, graph_state) = runs
    tol = 1e-3 if precision == "fp32" else 3e-2
    for a, b in zip(eager.history, graphed.history, strict=True):
        assert math.isclose(a["train_loss"], b["train_loss"], rel_tol=tol), (a, b)
    assert all(torch.allclose(eager_state[k], graph_state[k], rtol=tol, atol=tol) for k in eager_state)


def test_cuda_graph_steps_never_sync(tiny_data) -> None:
    model, masks = _masked()
    recipe = TrainRecipe(epochs=2, batch_size=16, precision="bf16", cuda_graph=True)  # 4 full steps per epoch
    try:
        result = train(model, tiny_data, recipe, seed=0, device=CUDA, masks=masks, callbacks=[_NoSyncInSteps(4)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.epochs == 2
