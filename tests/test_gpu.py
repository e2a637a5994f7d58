"""GPU-only checks (skipped without CUDA): the loop runs on a GPU in bf16 with masks held."""

from __future__ import annotations

import pytest
import torch

from autos.config import TrainRecipe
from autos.masking import nonzero_counts, prunable_parameters, select_mask
from autos.models import build_model
from autos.training import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_masked_training_on_gpu(tiny_data) -> None:
    model = build_model("resnet18", num_classes=4, width=8, input_size=32, seed=0)
    scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
    masks = select_mask(scores, 0.1)
    recipe = TrainRecipe(epochs=1, batch_size=16, precision="bf16")
    result = train(model, tiny_data, recipe, seed=0, device=torch.device("cuda"), masks=masks)
    assert 0.0 <= result.final_test_acc <= 1.0
    assert nonzero_counts(model, list(masks)) == {n: int(m.sum()) for n, m in masks.items()}
