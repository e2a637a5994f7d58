"""The one training loop: masks hold through training, runs are deterministic under a seed, it learns."""

from __future__ import annotations

import torch

from autos.batches import augment_batch
from autos.config import TrainRecipe
from autos.masking import nonzero_counts, select_mask
from autos.models import build_model
from autos.training import Callback, lr_factor, train

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
