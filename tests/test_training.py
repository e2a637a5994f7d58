"""The one training loop: masks hold through training, runs are deterministic under a seed, it learns; the GPU-speed
path (data on the device, no host sync per step, lazy loss, optional torch.compile) runs and is checked on CPU."""

from __future__ import annotations

import pytest
import torch

from autos.config import TrainRecipe
from autos.errors import TrainingDiverged
from autos.masking import nonzero_counts, select_mask
from autos.models import build_model
from autos.training import Callback, evaluate, lr_factor, train
from autos.training.batches import augment_batch, device_batches, iterate_batches, on_device

CPU = torch.device("cpu")


def _masked_model(seed: int = 0):
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=seed)
    params = dict(model.named_parameters())
    names = [n for n in params if n.endswith("weight") and params[n].dim() in (2, 4)]
    scores = {n: params[n].detach().abs() for n in names}
    return model, select_mask(scores, 0.2, scope="layerwise")


def test_nonzero_count_unchanged_after_training(tiny_data, quick_recipe) -> None:
    model, masks = _masked_model()
    recipe = quick_recipe.model_copy(update={"epochs": 2, "weight_decay": 5e-3, "momentum": 0.9})
    before = {n: int(m.sum()) for n, m in masks.items()}
    train(model, tiny_data, recipe, seed=0, device=CPU, masks=masks)
    after = nonzero_counts(model, list(masks))
    assert after == before  # momentum and weight decay did not revive pruned weights
    params = dict(model.named_parameters())
    assert all((params[n][~m] == 0).all() for n, m in masks.items())


def test_deterministic_under_seed(tiny_data, quick_recipe) -> None:
    results = []
    for _ in range(2):
        model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=1)
        r = train(model, tiny_data, quick_recipe, seed=5, device=CPU)
        results.append((r.history[-1]["train_loss"], model.fc.weight.detach().clone()))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])


def test_learns_a_learnable_task(tiny_data) -> None:
    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
    recipe = TrainRecipe(epochs=6, batch_size=16, lr=0.05, augment=False)
    result = train(model, tiny_data, recipe, seed=0, device=CPU)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_test_acc >= result.final_test_acc - 1e-9
    assert 0.0 <= result.final_test_acc <= 1.0 and len(result.history) == 6


def test_callbacks_and_early_stop(tiny_data, quick_recipe) -> None:
    seen = []

    class Stopper(Callback):
        def on_step_end(self, state) -> None:
            seen.append(state.step)

        def on_epoch_end(self, state) -> None:
            state.stop = True

    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
    result = train(model, tiny_data, quick_recipe.model_copy(update={"epochs": 3}), seed=0, device=CPU,
                   callbacks=[Stopper()])
    assert result.epochs == 1 and seen == list(range(1, 5))  # 64 images / batch 16


def test_augmentation_shapes_and_flip() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0), padding=0)
    for i in range(2):  # with no padding, a crop is the identity, so each image is itself or its mirror
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    assert augment_batch(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_lr_schedules() -> None:
    cosine = TrainRecipe(epochs=10, schedule="cosine")
    assert lr_factor(cosine, 0) == 1.0 and abs(lr_factor(cosine, 5) - 0.5) < 1e-9 and lr_factor(cosine, 10) < 1e-9
    step = TrainRecipe(epochs=10, schedule="multistep", milestones=[0.5, 0.75], gamma=0.1)
    assert lr_factor(step, 4.9) == 1.0
    assert abs(lr_factor(step, 5) - 0.1) < 1e-12 and abs(lr_factor(step, 8) - 0.01) < 1e-12


# --------------------------------------------------------------------------- the GPU-speed path, checked on CPU


class _SyncTrap(Callback):
    """Arms ``trap`` from the start of each epoch to the end of its last step: the step loop proper."""

    def __init__(self, trap: dict[str, bool], steps_per_epoch: int) -> None:
        self.trap, self.steps_per_epoch = trap, steps_per_epoch

    def on_train_begin(self, state) -> None:
        self.trap["armed"] = True

    def on_step_end(self, state) -> None:
        if state.step % self.steps_per_epoch == 0:
            self.trap["armed"] = False  # the loop reads its per-epoch sums next: the one sync per epoch

    def on_epoch_end(self, state) -> None:
        self.trap["armed"] = True


def _install_sync_trap(monkeypatch) -> dict[str, bool]:
    """Every Python-level way of reading a tensor's value on the host raises while the trap is armed."""
    trap = {"armed": False}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, _original=original, _name=name, **kwargs):
            if trap["armed"]:
                raise AssertionError(f"host sync in the step loop: Tensor.{_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    return trap


def test_step_loop_never_reads_a_tensor_on_the_host(tiny_data, monkeypatch) -> None:
    """The device-resident path (data, augmentation, loss and accuracy sums) runs on CPU too, with no host read
    inside the step loop while no callback reads ``state.loss``: on a GPU that means no sync per step."""
    model, masks = _masked_model()
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.05, augment=True)  # 64 images: 4 steps per epoch
    trap = _install_sync_trap(monkeypatch)
    result = train(model, tiny_data, recipe, seed=0, device=CPU, masks=masks, callbacks=[_SyncTrap(trap, 4)])
    trap["armed"] = False
    assert result.epochs == 2 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)

    class LossReader(Callback):  # the control: a reader of state.loss does sync, and the trap sees it
        def on_after_backward(self, state) -> None:
            assert state.loss == state.loss

    with pytest.raises(AssertionError, match="Tensor.item"):
        train(model, tiny_data, recipe, seed=0, device=CPU, masks=masks, callbacks=[_SyncTrap(trap, 4), LossReader()])
    trap["armed"] = False


def test_state_loss_is_lazy_and_exact(tiny_data, monkeypatch) -> None:
    """``state.loss`` is the step's loss as a float when read, read from the device once however many readers."""
    calls = []
    original_item = torch.Tensor.item

    def counting_item(self):
        calls.append(1)
        return original_item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    losses: list[float] = []

    class Reader(Callback):
        def on_after_backward(self, state) -> None:
            losses.append(state.loss)

        def on_step_end(self, state) -> None:
            assert state.loss == losses[-1]  # a second reader: cached, no second read

    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.05)  # one step per epoch: train_loss is that step's loss
    calls.clear()
    result = train(model, tiny_data, recipe, seed=0, device=CPU, callbacks=[Reader()])
    assert all(isinstance(v, float) for v in losses) and len(losses) == 2
    assert [h["train_loss"] for h in result.history] == losses  # (loss * 64) / 64 is exact in float64
    # per epoch: one lazy loss read + the loop's two sums + evaluate's two sums
    assert len(calls) == 2 * 5


def test_device_batches_match_iterate_batches(tiny_data) -> None:
    """The loop's batches (drawn for the epoch up front) are iterate_batches' batches: same draws, same order."""
    for augment in (False, True):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        for _ in range(2):  # two epochs: the generators must stay in step
            a = list(iterate_batches(tiny_data.train_x, tiny_data.train_y, 24, generator=g1, augment=augment))
            b = list(device_batches(tiny_data.train_x, tiny_data.train_y, 24, generator=g2, augment=augment))
            assert len(a) == len(b) == 3  # 64 images: a partial last batch
            assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True))


def test_data_is_not_copied_on_its_own_device(tiny_data) -> None:
    assert on_device(tiny_data, CPU) is tiny_data
    moved = on_device(tiny_data, torch.device("meta"))
    assert moved.train_x.device.type == "meta" and tuple(moved.mean) == tuple(tiny_data.mean)


def test_compile_model_trains_the_original_module(tiny_data, monkeypatch) -> None:
    """``compile_model=True`` runs the forward through ``torch.compile`` (here dynamo's eager backend: no C++
    toolchain or compile time on CPU) while masks and the optimizer keep acting on the original module."""
    compiled = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    model, masks = _masked_model()
    before = {n: int(m.sum()) for n, m in masks.items()}
    result = train(model, tiny_data, TrainRecipe(epochs=1, batch_size=32, lr=0.05), seed=0, device=CPU, masks=masks,
                   compile_model=True)
    assert compiled == [model]
    assert nonzero_counts(model, list(masks)) == before
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    loss, acc = evaluate(model, tiny_data, device=CPU, compile_model=True)
    assert len(compiled) == 2 and loss == loss and 0.0 <= acc <= 1.0


class _PrunedStayZero(Callback):
    """Checks after every step that each pruned weight is exactly zero; counts the steps checked."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks, self.steps = masks, 0

    def on_step_end(self, state) -> None:  # noqa: ANN001
        params = dict(state.model.named_parameters())
        assert all(int(torch.count_nonzero(params[n].detach()[~m])) == 0 for n, m in self.masks.items())
        self.steps += 1


class _TouchesGradients(Callback):
    """A callback with an ``on_after_backward`` (that leaves the gradients as they are): the loop then zeroes the
    pruned weights after each step as well, as it must when a callback may change gradients."""

    def on_after_backward(self, state) -> None:  # noqa: ANN001
        pass


@pytest.mark.parametrize("momentum,nesterov,weight_decay", [(0.9, True, 5e-4), (0.9, False, 5e-4), (0.0, False, 0.0)])
def test_masked_gradients_alone_keep_pruned_weights_zero_under_sgd(tiny_data, momentum: float, nesterov: bool,
                                                                   weight_decay: float) -> None:
    """With the recipe's SGD, zeroing the pruned gradients before the step is enough: momentum, Nesterov and weight
    decay leave a zero weight with a zero gradient at zero, so the loop skips the multiply after the step. Proven by
    the weights after every step, and by the same run with the post-step multiply: bit-identical."""
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.1, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)
    runs = []
    for extra in ([], [_TouchesGradients()]):
        model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
        masks = select_mask({n: p.detach().abs() for n, p in model.named_parameters() if p.dim() > 1}, 0.2)
        check = _PrunedStayZero(masks)
        train(model, tiny_data, recipe, seed=0, device=torch.device("cpu"), masks=masks, callbacks=[check, *extra])
        assert check.steps == 8
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_diverged_run_fails_naming_itself_instead_of_reporting_chance(tiny_data) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4))
    with torch.no_grad():
        model[1].weight.fill_(float("inf"))  # as a learning rate far too high ends: non-finite logits and loss
    with pytest.raises(TrainingDiverged, match=r"t / snip / s=90% / seed 0: the training loss is nan in epoch 1 "
                                               r"\(lr 0.05\): the run diverged; lower the learning rate"):
        train(model, tiny_data, TrainRecipe(epochs=2, batch_size=16, lr=0.05), seed=0, device=torch.device("cpu"),
              desc="t / snip / s=90% / seed 0")


def test_cuda_graph_on_a_cpu_trains_eagerly_says_why_and_changes_nothing(tiny_data, caplog) -> None:
    """``training.cuda_graph`` is a GPU setting (its capture is checked in tests/test_gpu.py): on a CPU the run is
    the eager run, bit for bit, with one warning naming the reason."""
    runs = []
    for graph in (False, True):
        model, masks = _masked_model()
        recipe = TrainRecipe(epochs=2, batch_size=24, lr=0.05, cuda_graph=graph)
        with caplog.at_level("WARNING", logger="autos.training"):
            result = train(model, tiny_data, recipe, seed=3, device=CPU, masks=masks)
        runs.append((result.history, model.state_dict()))
    assert "training.cuda_graph: training eagerly: the device is cpu" in caplog.text
    assert runs[0][0] == runs[1][0] and all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
