"""The one definition of per-weight features, used for the source table AND on every transfer target.

Base features (AutoS reference, docs/reference/autos.md §4): ``w0``, the signed initial weight, and ``g0``, the signed
initial loss gradient: per-batch gradients of the batch-mean cross-entropy, summed over one pass of the training
set (``gradient_reduction='sum'``; 'mean' divides by the number of batches, removing the dependence on the
dataset size), taken with BN in eval mode and the training augmentation, as the reference code does.

Extra columns (``EXTRA_FEATURES``) are pure functions of a layer's (w0, g0) and its shape. They exist because
the raw features are not comparable across initialisation schemes (VGG's fan-in vs the ResNet's fan-out
Kaiming init, docs/reference/autos.md §4; in an early probe a scorer on raw-scale features, moved from ResNet-18
to VGG-16, allocated per-layer density badly): per-layer standardised values and layer descriptors let a scorer
transfer across architectures. Which columns a scorer reads is the scorer's setting.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor, nn

from autos.config import FeaturesConfig
from autos.errors import DataError
from autos.files import atomic_path
from autos.masking import prunable_parameters
from autos.registry import Registry
from autos.saliency import summed_gradients
from autos.training.batches import ImageData, Normalizer, iterate_batches

SCHEMA_VERSION = 1
BASE_SCHEMA = pa.schema(
    [
        pa.field("layer", pa.dictionary(pa.int16(), pa.string())),
        pa.field("layer_idx", pa.int16()),
        pa.field("flat_idx", pa.int32()),
        pa.field("w0", pa.float32()),
        pa.field("g0", pa.float32()),
    ]
)
LABEL_FIELDS = [pa.field("survived", pa.int8()), pa.field("label", pa.float32())]


@dataclass(frozen=True)
class LayerInfo:
    name: str
    index: int
    num_layers: int
    kind: str  # "conv" | "linear"
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def layer_infos(model: nn.Module, names: list[str]) -> list[LayerInfo]:
    params = dict(model.named_parameters())
    infos = []
    for i, name in enumerate(names):
        shape = tuple(params[name].shape)
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        infos.append(
            LayerInfo(
                name=name,
                index=i,
                num_layers=len(names),
                kind="conv" if len(shape) == 4 else "linear",
                shape=shape,
                fan_in=shape[1] * receptive,
                fan_out=shape[0] * receptive,
            )
        )
    return infos


# --------------------------------------------------------------------------- extra feature columns

ExtraFeature = Callable[[Tensor, Tensor, LayerInfo], Tensor]
EXTRA_FEATURES: Registry = Registry("feature")


def _extra(name: str) -> Callable[[ExtraFeature], ExtraFeature]:
    return EXTRA_FEATURES.register(name)


def _layer_z(x: Tensor) -> Tensor:
    return x / x.std().clamp_min(1e-12)


_extra("abs_w0")(lambda w0, g0, info: w0.abs())
_extra("abs_g0")(lambda w0, g0, info: g0.abs())
_extra("w0_x_g0")(lambda w0, g0, info: w0 * g0)  # SNIP's saliency before the absolute value
_extra("w0_layer_z")(lambda w0, g0, info: _layer_z(w0))  # invariant to the layer's init scale
_extra("g0_layer_z")(lambda w0, g0, info: _layer_z(g0))
def _constant(like: Tensor, value: float) -> Tensor:
    """A layer-wide descriptor column: one value broadcast to the layer's shape (a read-only view, no memory per
    weight; it flattens to a view too). ``full_like`` held 400 MB per column on a 10^8-weight layer."""
    return like.new_full((), value).expand_as(like)


_extra("log_fan_in")(lambda w0, g0, info: _constant(w0, math.log(info.fan_in)))
_extra("log_fan_out")(lambda w0, g0, info: _constant(w0, math.log(info.fan_out)))
_extra("log_numel")(lambda w0, g0, info: _constant(w0, math.log(info.numel)))
_extra("depth")(lambda w0, g0, info: _constant(w0, info.index / max(1, info.num_layers - 1)))
_extra("is_linear")(lambda w0, g0, info: _constant(w0, float(info.kind == "linear")))


# --------------------------------------------------------------------------- computing features


def initial_gradients(
    model: nn.Module, data: ImageData, names: list[str], cfg: FeaturesConfig, *, device: torch.device, seed: int
) -> dict[str, Tensor]:
    """g0 per prunable weight: per-batch mean-loss gradients summed (or averaged) over the pass
    (``autos.saliency.summed_gradients``, the accumulation SNIP and GraSP share)."""
    was_training = model.training
    model.eval()  # reference: BN in eval mode, i.e. init running stats (docs/reference/autos.md §4)
    norm = Normalizer.of(data, device)
    generator = torch.Generator().manual_seed(seed)
    batches = (
        (norm(xb.to(device), False), yb.to(device))
        for xb, yb in iterate_batches(
            data.train_x, data.train_y, cfg.gradient_batch_size, generator=generator, augment=cfg.gradient_augment
        )
    )
    summed, num_batches = summed_gradients(model, itertools.islice(batches, cfg.gradient_max_batches), names)
    scale = 1.0 / num_batches if cfg.gradient_reduction == "mean" else 1.0
    grads = {n: (summed[n] * scale).cpu().clone() for n in names}
    model.train(was_training)
    return grads


def iter_weight_features(
    model: nn.Module,
    data: ImageData,
    cfg: FeaturesConfig,
    *,
    device: torch.device,
    seed: int,
    include_classifier: bool = True,
    extra: list[str] | None = None,
) -> Iterator[tuple[LayerInfo, dict[str, Tensor]]]:
    """``weight_features`` one layer at a time, in layer order: (info, {'w0', 'g0', <extra columns>}).

    Why a generator: a caller that reduces each layer to something small (AutoS's scores) holds one layer's
    columns at a time instead of every layer's, which bounds memory on large targets (torchvision's VGG has one
    102M-weight Linear). g0 comes from one pass for all layers, before the first layer is yielded; each layer's
    g0 is released as it is yielded. The values are those of ``weight_features``, which is built on this.
    """
    names = list(prunable_parameters(model, include_classifier))
    infos = layer_infos(model, names)
    model.to(device)
    grads = initial_gradients(model, data, names, cfg, device=device, seed=seed)
    params = dict(model.named_parameters())
    columns = cfg.extra if extra is None else extra
    for info in infos:
        w0 = params[info.name].detach().cpu().float()
        g0 = grads.pop(info.name).float()
        layer = {"w0": w0, "g0": g0}
        for column in columns:
            layer[column] = EXTRA_FEATURES.get(column)(w0, g0, info)
        yield info, layer
        del w0, g0, layer  # nothing of this layer is kept here while the next one is built


def weight_features(
    model: nn.Module,
    data: ImageData,
    cfg: FeaturesConfig,
    *,
    device: torch.device,
    seed: int,
    include_classifier: bool = True,
    extra: list[str] | None = None,
) -> tuple[list[LayerInfo], dict[str, dict[str, Tensor]]]:
    """Per prunable layer: {'w0', 'g0', <extra columns>} tensors of the layer's shape. The model is not modified
    (beyond moving it to ``device``). All layers at once; ``iter_weight_features`` streams them."""
    layers = list(iter_weight_features(model, data, cfg, device=device, seed=seed,
                                       include_classifier=include_classifier, extra=extra))
    return [info for info, _ in layers], {info.name: columns for info, columns in layers}


# --------------------------------------------------------------------------- the Parquet table


def table_schema(extra: list[str], labelled: bool) -> pa.Schema:
    fields = list(BASE_SCHEMA) + [pa.field(c, pa.float32()) for c in extra]
    return pa.schema(fields + (LABEL_FIELDS if labelled else []))


def feature_table(
    infos: list[LayerInfo],
    features: Mapping[str, Mapping[str, Tensor]],
    extra: list[str],
    survived: Mapping[str, Tensor] | None = None,
    num_rounds: int | None = None,
) -> pa.Table:
    """One row per prunable weight, in layer order then flat (C-order) index."""
    schema = table_schema(extra, labelled=survived is not None)
    names = [i.name for i in infos]
    batches = []
    for info in infos:
        layer = features[info.name]
        n = info.numel
        cols: dict[str, pa.Array] = {
            "layer": pa.DictionaryArray.from_arrays(
                pa.array(np.full(n, info.index, dtype=np.int16)), pa.array(names, pa.string())
            ),
            "layer_idx": pa.array(np.full(n, info.index, dtype=np.int16)),
            "flat_idx": pa.array(np.arange(n, dtype=np.int32)),
        }
        for column in ["w0", "g0", *extra]:
            cols[column] = pa.array(layer[column].flatten().numpy().astype(np.float32))
        if survived is not None:
            if num_rounds is None:
                raise ValueError("num_rounds is required with survival counts (the label is survived / num_rounds)")
            count = survived[info.name].flatten().numpy().astype(np.int8)
            cols["survived"] = pa.array(count)
            cols["label"] = pa.array((count / float(num_rounds)).astype(np.float32))
        batches.append(pa.record_batch([cols[f.name] for f in schema], schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def write_table(table: pa.Table, path: Path, metadata: Mapping[str, object]) -> None:
    """Write atomically (temp file + rename) with our metadata; one row group per layer (bounded size)."""
    ours = json.dumps({"schema_version": SCHEMA_VERSION, **metadata}).encode()
    meta = {**(table.schema.metadata or {}), b"autos": ours}
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=1 << 20, compression="zstd")


def table_metadata(path: Path) -> dict[str, object]:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"cannot read feature table {path}: {exc}") from None
    raw = (schema.metadata or {}).get(b"autos")
    if raw is None:
        raise DataError(f"{path} is not an autos feature table (no 'autos' metadata)")
    meta = json.loads(raw)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {meta.get('schema_version')} != {SCHEMA_VERSION}")
    return meta


def pool_tables(primary: pa.Table, extra_paths: list[Path], columns: list[str]) -> pa.Table:
    """``primary``'s ``columns`` with the same columns of every labelled table at ``extra_paths`` appended after it
    (so primary row i stays row i). The label is each table's own survival / num_rounds, so sources pruned in a
    different number of rounds pool on one scale."""
    tables = [primary.select(columns)]
    for path in extra_paths:
        if not path.is_file():
            raise DataError(f"scorer.extra_tables: {path} does not exist (a labelled feature table, e.g. another "
                            "study's data/features/<source>/source.parquet)")
        table_metadata(path)  # a damaged or foreign file: a DataError naming it, before its schema is read
        if "label" not in pq.read_schema(path).names:
            raise DataError(f"scorer.extra_tables: {path} has no 'label' column (an unlabelled table?)")
        tables.append(read_table(path, columns).select(columns).cast(tables[0].schema))
    return pa.concat_tables(tables)


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read (projecting ``columns``) after checking the metadata and that the base columns are present."""
    table_metadata(path)
    schema = pq.read_schema(path)
    missing = [f.name for f in BASE_SCHEMA if f.name not in schema.names]
    wanted_missing = [c for c in (columns or []) if c not in schema.names]
    if missing or wanted_missing:
        raise DataError(f"{path}: missing columns {missing + wanted_missing}; present: {schema.names}")
    return pq.read_table(path, columns=columns)
