"""Inference: a trained scorer's scores for feature columns (``predict``) or for every layer of a target
(``score_layers``), and the extra feature columns a scorer needs (``required_extra``).

Memory is bounded by one layer's features plus one chunk of rows: rows are assembled chunk by chunk from the
columns (``_row_chunks``), never as one [N, F] matrix, because targets reach 10^8 weights (torchvision VGG-11's
classifier) and a full matrix plus its copies took ~9 GB there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

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


def _default_batch_size(model: nn.Module) -> int:
    return int(getattr(model, "predict_batch_size", 65536))


def _row_chunks(layers: Iterable[Sequence[Tensor]], batch_size: int) -> Iterator[Tensor]:
    """[batch_size, F] float32 matrices of consecutive rows, across layer boundaries.

    ``layers`` yields, per layer, its F flat columns of equal length. The chunks are exactly those that slicing the
    concatenation of every layer's [n, F] matrix into ``batch_size`` rows would give (so scores are bitwise those
    of one pass over the concatenation), but that concatenation is never built: at most one chunk of rows is held
    beyond the columns of the layer being read, and a layer's columns can be dropped as soon as its rows are taken.
    Each chunk is filled column by column (a strided copy per column: ``torch.stack(dim=1)`` is ~50x slower on
    the broadcast constant columns of the layer descriptors).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunk: Tensor | None = None
    rows = 0
    for cols in layers:
        n = cols[0].numel()
        start = 0
        while start < n:
            if chunk is None:
                chunk = torch.empty(batch_size, len(cols), dtype=torch.float32)
            take = min(batch_size - rows, n - start)
            for j, col in enumerate(cols):
                chunk[rows : rows + take, j] = col[start : start + take]
            rows += take
            start += take
            if rows == batch_size:
                yield chunk
                chunk, rows = None, 0
        del cols  # released before the next layer's columns are built
    if chunk is not None:
        yield chunk[:rows]


def _forward_chunks(
    model: nn.Module, chunks: Iterable[Tensor], device: torch.device | str | None, emit: Callable[[Tensor], None]
) -> None:
    """``emit(scores)`` for every chunk, in eval mode and without autograd.

    Inference mode is entered around each forward only, not around the loop: the chunks may be produced lazily by
    code that needs autograd (the target's g0 pass runs when the first layer is requested).
    """
    if device is not None:
        model.to(device)
    target = _model_device(model)
    was_training = model.training
    # BN running statistics: a weight's score depends on its own features only (docs/reference/autos.md §1)
    model.eval()
    try:
        for chunk in chunks:
            with torch.inference_mode():
                out = model(chunk.to(target, non_blocking=True)).float().cpu()
            emit(out)
    finally:
        model.train(was_training)


def predict(
    model: nn.Module,
    columns: Mapping[str, np.ndarray | Tensor] | Tensor | np.ndarray,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Scores [N] (float32 numpy) in eval mode, in chunks, without autograd.

    ``columns``: a mapping holding at least the model's input columns (rows are assembled chunk by chunk in
    ``model.inputs`` order, so no [N, F] copy is made), or an [N, F] matrix already in that order. ``batch_size``
    None uses the model's ``predict_batch_size`` (65536 for the MLP; smaller for the paper net, whose activation
    memory grows with width). ``device`` None keeps the model where it is; otherwise the model is moved there (in
    place) and rows are sent chunk by chunk.
    """
    size = _default_batch_size(model) if batch_size is None else batch_size
    if isinstance(columns, Mapping):
        inputs = getattr(model, "inputs", None)
        if inputs is None:
            raise TypeError("a column mapping needs a ScorerNet (with .inputs); pass an [N, F] matrix instead")
        missing = [c for c in inputs if c not in columns]
        if missing:
            raise DataError(f"missing scorer input column(s) {missing}; given: {sorted(columns)}")
        cols = [_float_tensor(columns[c]).reshape(-1) for c in inputs]
        if len({c.numel() for c in cols}) > 1:
            raise ValueError(f"input columns differ in length: {[c.numel() for c in cols]}")
        n, chunks = cols[0].numel(), _row_chunks([cols], size)
    else:
        x = _float_tensor(columns)
        if x.dim() != 2:
            raise ValueError(f"expected an [N, F] matrix, got shape {tuple(x.shape)}")
        n, chunks = x.shape[0], (x[s : s + size] for s in range(0, x.shape[0], size))
    out = torch.empty(n, dtype=torch.float32)
    offset = 0

    def emit(scores: Tensor) -> None:
        nonlocal offset
        out[offset : offset + scores.shape[0]] = scores
        offset += scores.shape[0]

    _forward_chunks(model, chunks, device, emit)
    return out.numpy()


LayerColumns = Mapping[str, Tensor]


class _LayerScores:
    """Receives chunk scores in row order and fills each layer's flat scores tensor in turn."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.flat: dict[str, Tensor] = {}
        self._queue: list[str] = []  # layers announced whose scores are not complete yet
        self._filled = 0  # rows of self._queue[0] already written

    def announce(self, name: str, shape: tuple[int, ...]) -> None:
        if name in self.shapes:
            raise ValueError(f"layer {name!r} is given twice")
        self.shapes[name] = shape
        self.flat[name] = torch.empty(math.prod(shape), dtype=torch.float32)
        self._queue.append(name)

    def write(self, scores: Tensor) -> None:
        done = 0
        while done < scores.shape[0]:
            target = self.flat[self._queue[0]]
            take = min(target.numel() - self._filled, scores.shape[0] - done)
            target[self._filled : self._filled + take] = scores[done : done + take]
            done += take
            self._filled += take
            if self._filled == target.numel():
                self._queue.pop(0)
                self._filled = 0

    def result(self) -> dict[str, Tensor]:
        return {name: self.flat[name].view(shape) for name, shape in self.shapes.items()}


def _layer_columns(
    name: str, layer: LayerColumns, inputs: list[str], settings: ScorerSettings
) -> tuple[tuple[int, ...], list[Tensor]]:
    """(the layer's shape, its scorer inputs as flat float32 CPU columns: views where possible), checked for
    presence and shape."""
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
    return shape, cols


def score_layers(
    model: nn.Module,
    settings: ScorerSettings,
    features: Mapping[str, LayerColumns] | Iterable[tuple[str, LayerColumns]],
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Score every weight of a target: {layer: {column: tensor of the layer's shape}} -> {layer: scores}.

    ``features`` is a mapping, or an iterable of (layer, columns) pairs read lazily (e.g. from
    ``features.iter_weight_features``): each layer's columns are read, cut into rows, scored and dropped before the
    next layer is requested, so memory holds one layer's features plus one chunk of rows, not the whole target's
    (docs/reference/autos.md §5.3 scores layer by layer in chunks of 8192). Chunks run across layer boundaries,
    exactly as one chunked pass over the concatenation of all layers would, so the scores do not depend on how the
    features were delivered. Scores are float32 CPU tensors of each layer's shape; higher = keep, raw signed
    regression outputs as in the reference.
    """
    inputs = list(settings.inputs)
    model_inputs = list(getattr(model, "inputs", inputs))
    if model_inputs != inputs:
        raise ValueError(f"model inputs {model_inputs} differ from the settings' inputs {inputs}")
    layers = features.items() if isinstance(features, Mapping) else features
    sink = _LayerScores()

    def columns() -> Iterator[list[Tensor]]:
        for name, layer in layers:
            shape, cols = _layer_columns(name, layer, inputs, settings)
            del layer  # only the columns are kept: the caller's iterator can release the rest of the layer
            sink.announce(name, shape)
            yield cols
            del cols

    size = _default_batch_size(model) if batch_size is None else batch_size
    _forward_chunks(model, _row_chunks(columns(), size), device, sink.write)
    return sink.result()
