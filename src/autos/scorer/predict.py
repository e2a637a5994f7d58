"""Inference: a trained scorer's scores for feature columns (``predict``) or for every layer of a target
(``score_layers``), and the extra feature columns a scorer needs (``required_extra``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from autos.errors import DataError
from autos.scorer.nets import BASE_INPUTS, ScorerSettings


def required_extra(settings: ScorerSettings) -> list[str]:
    """The extra feature columns (``features.weight_features(extra=...)``) a scorer needs on a target."""
    return [c for c in settings.inputs if c not in BASE_INPUTS]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _float_tensor(values: np.ndarray | Tensor) -> Tensor:
    if isinstance(values, Tensor):
        return values.detach().float()
    # Arrow-backed arrays are read-only; torch must not alias them (copy, as float32)
    return torch.from_numpy(np.array(values, dtype=np.float32))


def predict(
    model: nn.Module,
    columns: Mapping[str, np.ndarray | Tensor] | Tensor | np.ndarray,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Scores [N] (float32 numpy) in eval mode, in chunks, without autograd.

    ``columns``: a mapping holding at least the model's input columns (stacked in ``model.inputs`` order), or an
    [N, F] matrix already in that order. ``batch_size`` None uses the model's ``predict_batch_size`` (65536 for
    the MLP; smaller for the paper net, whose activation memory grows with width). ``device`` None keeps the
    model where it is; otherwise the model is moved there (in place) and rows are sent chunk by chunk.
    """
    if isinstance(columns, Mapping):
        inputs = getattr(model, "inputs", None)
        if inputs is None:
            raise TypeError("a column mapping needs a ScorerNet (with .inputs); pass an [N, F] matrix instead")
        missing = [c for c in inputs if c not in columns]
        if missing:
            raise DataError(f"missing scorer input column(s) {missing}; given: {sorted(columns)}")
        x = torch.stack([_float_tensor(columns[c]).reshape(-1) for c in inputs], dim=1)
    else:
        x = _float_tensor(columns)
    if x.dim() != 2:
        raise ValueError(f"expected an [N, F] matrix, got shape {tuple(x.shape)}")
    if device is not None:
        model.to(device)
    target = _model_device(model)
    if batch_size is None:
        batch_size = int(getattr(model, "predict_batch_size", 65536))
    was_training = model.training
    # BN running statistics: a weight's score depends on its own features only (docs/reference/autos.md §1)
    model.eval()
    out = np.empty(x.shape[0], dtype=np.float32)
    try:
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                chunk = x[s : s + batch_size].to(target, non_blocking=True)
                out[s : s + chunk.shape[0]] = model(chunk).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def score_layers(
    model: nn.Module,
    settings: ScorerSettings,
    features: Mapping[str, Mapping[str, Tensor]],
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Score every weight of a target: {layer: {column: tensor of the layer's shape}} -> {layer: scores}.

    All layers go through one chunked ``predict`` (docs/reference/autos.md §5.3 scores layer by layer in chunks of
    8192; one pass over the concatenation is the same function, with fewer tiny chunks). Scores are float32 CPU
    tensors of each layer's shape; higher = keep, raw signed regression outputs as in the reference.
    """
    inputs = list(settings.inputs)
    model_inputs = list(getattr(model, "inputs", inputs))
    if model_inputs != inputs:
        raise ValueError(f"model inputs {model_inputs} differ from the settings' inputs {inputs}")
    blocks, shapes = [], {}
    for name, layer in features.items():
        missing = [c for c in inputs if c not in layer]
        if missing:
            raise DataError(
                f"layer {name!r} lacks scorer input column(s) {missing}; compute the target's features with "
                f"extra={required_extra(settings)}"
            )
        shape = tuple(layer[inputs[0]].shape)
        cols = []
        for c in inputs:
            if tuple(layer[c].shape) != shape:
                raise ValueError(f"layer {name!r}: column {c!r} has shape {tuple(layer[c].shape)}, expected {shape}")
            cols.append(layer[c].detach().reshape(-1).float().cpu())
        blocks.append(torch.stack(cols, dim=1))
        shapes[name] = shape
    if not blocks:
        return {}
    scores = torch.from_numpy(predict(model, torch.cat(blocks), batch_size=batch_size, device=device))
    out: dict[str, Tensor] = {}
    offset = 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = scores[offset : offset + n].reshape(shape).clone()
        offset += n
    return out
