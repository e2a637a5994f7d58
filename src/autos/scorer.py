"""AutoS scorer networks: per-weight features -> predicted IRP survival; fit, evaluate, predict, save/load.

A scorer is a *pointwise* regressor. It maps one weight's feature vector (columns of the Parquet table of
``autos.features``) to one score, trained with MSE on ``label = survived / P`` (autos.md sections 1, 3, 5.2).
On a transfer target, the ``autos`` pruning method scores every prunable weight with ``score_layers`` and keeps
the global top-k (autos.md section 5.3).

Two scorers are registered in ``SCORERS``. Each is a class with a nested, strict ``Settings`` model (validated
by ``ScorerConfig.scorer_settings()``) and ``build(settings) -> ScorerNet``:

* ``paper``: the reference "resnet18" AutoS (autos.md section 5.1). It reads raw (w0, g0), with no normalisation,
  because that is faithful (autos.md section 4), and uses a CIFAR ResNet-18 backbone on a learned 3x32x32 "image".
* ``mlp``: our fast default. It reads per-layer standardised features plus layer descriptors, standardises
  them with training-row statistics kept as buffers, and feeds a small MLP.

Every net takes a float tensor [B, len(inputs)], with columns in ``settings.inputs`` order, and returns [B].
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from tqdm.auto import tqdm

from autos.config import ScorerConfig
from autos.errors import AutosError, DataError
from autos.features import EXTRA_FEATURES
from autos.files import atomic_write_text, save_torch, sha256_file
from autos.models.resnet import CifarResNet
from autos.registry import Registry

log = logging.getLogger(__name__)

BASE_INPUTS = ("w0", "g0")  # always present in a feature table (features.BASE_SCHEMA)
WEIGHTS_FILE = "scorer.pt"
META_FILE = "scorer.json"
FORMAT_VERSION = 1


class TrainingDiverged(AutosError):
    """The scorer's training loss became non-finite (lower ``scorer.lr``, or use normalised inputs)."""


# --------------------------------------------------------------------------- networks


class ScorerNet(nn.Module):
    """Base class of scorer networks: knows its input columns and how to prepare itself from training rows."""

    #: rows per forward pass in ``predict`` when the caller gives none (bounded activation memory)
    predict_batch_size: int = 65536

    def __init__(self, inputs: Sequence[str]) -> None:
        super().__init__()
        self.inputs: tuple[str, ...] = tuple(inputs)

    def prepare(self, x: Tensor) -> None:
        """Called once by ``fit_scorer`` with the training inputs [N, F] before the first step."""
        del x


class _InputsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[str]

    @field_validator("inputs")
    @classmethod
    def _known_columns(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one input column is required")
        if len(set(value)) != len(value):
            raise ValueError(f"input columns are listed twice: {value}")
        allowed = [*BASE_INPUTS, *EXTRA_FEATURES.names()]
        unknown = [c for c in value if c not in allowed]
        if unknown:
            raise ValueError(f"unknown feature column(s) {unknown}; allowed: {', '.join(allowed)}")
        return value


class ScorerSpec(Protocol):
    """What a ``SCORERS`` entry provides."""

    Settings: ClassVar[type[_InputsSettings]]

    @staticmethod
    def build(settings: Any) -> ScorerNet: ...


SCORERS: Registry = Registry("scorer")


class PaperNet(ScorerNet):
    """autos.md section 5.1 "resnet18".

    Linear(F->64)-BN-ReLU-Linear(64->3*32*32)-BN-ReLU, reshaped to a 3x32x32 "image", CIFAR ResNet-18 -> 1 output.
    """

    def __init__(self, inputs: Sequence[str], width: int, stem_hidden: int) -> None:
        super().__init__(inputs)
        self.stem = nn.Sequential(
            nn.Linear(len(self.inputs), stem_hidden),
            nn.BatchNorm1d(stem_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(stem_hidden, 3 * 32 * 32),
            nn.BatchNorm1d(3 * 32 * 32),
            nn.ReLU(inplace=True),
        )
        self.backbone = CifarResNet([2, 2, 2, 2], num_classes=1, width=width)
        # One ResNet forward per weight: the activations of a batch are ~ rows * width * 32 * 32 * 4 bytes per
        # tensor, so keep a chunk near 256 MiB per tensor (the reference scored in chunks of 8192 at width 64 on
        # a GPU, autos.md section 5.3).
        self.predict_batch_size = max(256, (1 << 28) // (width * 32 * 32 * 4))

    def forward(self, x: Tensor) -> Tensor:
        image = self.stem(x).view(-1, 3, 32, 32)
        return self.backbone(image).squeeze(-1)  # plain regression output, no activation (autos.md 5.1)


@SCORERS.register("paper")
class PaperScorer:
    """The reference AutoS (autos.md section 5.1), faithful: raw (w0, g0), no normalisation (section 4)."""

    class Settings(_InputsSettings):
        inputs: list[str] = Field(default_factory=lambda: ["w0", "g0"])
        width: int = Field(default=64, gt=0, description="ResNet-18 first-stage channels; 64 = paper")
        stem_hidden: int = Field(default=64, gt=0, description="hidden units of the MLP stem; 64 = paper")

    @staticmethod
    def build(settings: PaperScorer.Settings) -> ScorerNet:
        return PaperNet(settings.inputs, width=settings.width, stem_hidden=settings.stem_hidden)


class MLPNet(ScorerNet):
    """Standardise (training-row mean/std kept as buffers, so saved in the state_dict) -> MLP -> 1."""

    def __init__(self, inputs: Sequence[str], hidden: Sequence[int], activation: str) -> None:
        super().__init__(inputs)
        n_in = len(self.inputs)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        act = {"silu": nn.SiLU, "relu": nn.ReLU}[activation]
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def prepare(self, x: Tensor) -> None:
        # float64 statistics: 10M-row float32 sums lose digits. A constant column (e.g. log_fan_in on a
        # one-layer table) gets std 1 instead of 0, so it maps to 0 rather than to inf.
        x64 = x.detach().to(torch.float64)
        mean = x64.mean(0)
        std = x64.std(0) if x.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


@SCORERS.register("mlp")
class MLPScorer:
    """Our fast default: a small MLP on scale-free features (not in the paper; a labelled deviation).

    Why these default inputs: the raw w0 of a layer is drawn at the scale of its init (Kaiming fan-out for the
    ResNet source, fan-in for VGG, PyTorch's default for the classifier; autos.md sections 4 and 6.1), so a
    scorer keyed on raw values allocates per-layer density badly on a target whose layers have other scales
    (DESIGN.md "quick probe": VGG-16 collapsed). Per-layer standardised values (``w0_layer_z``, ``g0_layer_z``)
    are invariant to each layer's init scale and to g0's dependence on the dataset size (a sum over batches),
    so they transfer across init schemes and datasets. The layer descriptors (``log_fan_in``, ``log_fan_out``)
    let the scorer learn the per-layer density allocation that global IRP produced (wide layers are pruned
    harder), in a form that exists for any conv/linear layer of any architecture.
    """

    class Settings(_InputsSettings):
        inputs: list[str] = Field(default_factory=lambda: ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out"])
        hidden: list[int] = Field(default_factory=lambda: [64, 64], description="hidden layer widths")
        activation: Literal["silu", "relu"] = "silu"

        @field_validator("hidden")
        @classmethod
        def _positive(cls, value: list[int]) -> list[int]:
            if any(h <= 0 for h in value):
                raise ValueError(f"hidden widths must be positive, got {value}")
            return value

    @staticmethod
    def build(settings: MLPScorer.Settings) -> ScorerNet:
        return MLPNet(settings.inputs, settings.hidden, settings.activation)


def build_scorer(name: str, settings: BaseModel | Mapping[str, Any] | None = None) -> tuple[ScorerNet, BaseModel]:
    """Build a registered scorer from validated or raw settings; returns (net, validated settings)."""
    spec = SCORERS.get(name)
    if not isinstance(settings, spec.Settings):
        raw = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})
        settings = spec.Settings.model_validate(raw)
    return spec.build(settings), settings


def required_extra(settings: BaseModel) -> list[str]:
    """The extra feature columns (``features.weight_features(extra=...)``) a scorer needs on a target."""
    return [c for c in settings.inputs if c not in BASE_INPUTS]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- data


def split_rows(num_rows: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split into disjoint, sorted int64 (train, holdout) row indices covering every row.

    A real held-out split: the reference's "validation" was the first 10% of rows in layer order and overlapped
    the training rows (autos.md section 5.2, bug 5 of section 8.4). Both sides get at least one row.
    """
    if num_rows < 2:
        raise ValueError(f"need at least 2 rows to split, got {num_rows}")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    n_holdout = min(num_rows - 1, max(1, round(holdout_fraction * num_rows)))
    perm = np.random.default_rng(seed).permutation(num_rows)
    return np.sort(perm[n_holdout:]).astype(np.int64), np.sort(perm[:n_holdout]).astype(np.int64)


def input_matrix(table: pa.Table, inputs: Sequence[str], rows: np.ndarray | None = None) -> np.ndarray:
    """The [N, F] float32 matrix of ``inputs`` (in order) from a feature table, optionally at ``rows``."""
    missing = [c for c in inputs if c not in table.column_names]
    if missing:
        raise DataError(
            f"feature table lacks scorer input column(s) {missing}; present: {table.column_names} "
            "(add them to features.extra and re-run the features stage)"
        )
    cols = []
    for c in inputs:
        values = table.column(c).to_numpy()
        cols.append(values if rows is None else values[rows])
    x = np.stack(cols, axis=1).astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = [c for i, c in enumerate(inputs) if not np.isfinite(x[:, i]).all()]
        raise DataError(f"feature table has non-finite values in column(s) {bad}")
    return x


def _label_column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise DataError(f"feature table has no {name!r} column (an unlabelled table?); present: {table.column_names}")
    return table.column(name).to_numpy()


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_mse: float  # mean over the epoch's training rows (the reference divided by #batches, section 5.2)
    holdout_mse: float  # on ``FitResult.history_rows`` (a fixed subset of the holdout rows)
    seconds: float


@dataclass
class FitResult:
    model: ScorerNet  # eval mode
    settings: BaseModel
    train_idx: np.ndarray  # rows actually trained on (after the max_train_rows subsample), sorted
    holdout_idx: np.ndarray  # every held-out row, sorted
    history_rows: np.ndarray  # the holdout rows behind ``EpochStats.holdout_mse``, sorted
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fit_scorer(
    table: pa.Table,
    cfg: ScorerConfig,
    *,
    device: torch.device | str,
    log_every: int | None = None,
    max_history_rows: int | None = 200_000,
) -> FitResult:
    """Train ``cfg.name`` on ``table`` (features -> ``label``): MSE + Adam, seeded (autos.md section 5.2).

    The split is ``split_rows(len(table), cfg.holdout_fraction, cfg.seed)``; training rows are then subsampled to
    ``cfg.max_train_rows`` (seeded, logged; a budget deviation suggested in autos.md section 9). The per-epoch
    holdout MSE uses at most ``max_history_rows`` held-out rows (a fixed seeded subset) so that a large holdout
    does not dominate the run; the stage evaluates the full holdout with ``predict``/``evaluate_ranking``.
    ``log_every`` (steps) adds running-loss log lines inside an epoch. The returned model is the last epoch's
    (the reference kept the epoch with the lowest overlapping "validation" loss, section 5.2).
    """
    start = time.perf_counter()
    device = torch.device(device)
    settings = cfg.scorer_settings()
    inputs = list(settings.inputs)  # type: ignore[attr-defined]

    num_rows = table.num_rows
    train_idx, holdout_idx = split_rows(num_rows, cfg.holdout_fraction, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    if cfg.max_train_rows is not None and cfg.max_train_rows < train_idx.size:
        log.info("subsampling training rows: %d of %d (scorer.max_train_rows)", cfg.max_train_rows, train_idx.size)
        train_idx = np.sort(rng.choice(train_idx, size=cfg.max_train_rows, replace=False))
    history_rows = holdout_idx
    if max_history_rows is not None and holdout_idx.size > max_history_rows:
        history_rows = np.sort(rng.choice(holdout_idx, size=max_history_rows, replace=False))

    x_all = input_matrix(table, inputs)
    y_all = _label_column(table, "label").astype(np.float32, copy=False)
    if not np.isfinite(y_all).all():
        raise DataError("feature table has non-finite labels")
    # The whole training set lives on the device (11M rows x a few float32 columns is a few hundred MB), so a
    # step is a gather, not a host-to-device copy.
    x_train = torch.from_numpy(x_all[train_idx]).to(device)
    y_train = torch.from_numpy(y_all[train_idx]).to(device)
    x_hist = torch.from_numpy(x_all[history_rows])
    y_hist = y_all[history_rows]
    del x_all

    with torch.random.fork_rng(devices=[]):  # the init depends on cfg.seed only, not on earlier RNG use
        torch.manual_seed(cfg.seed)
        model, _ = build_scorer(cfg.name, settings)
    model.prepare(x_train)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    n_train = x_train.shape[0]
    # BatchNorm cannot train on a batch of one row: drop such a trailing batch (only ever one row per epoch).
    min_batch = 2 if _has_batchnorm(model) else 1
    steps_per_epoch = sum(
        1 for s in range(0, n_train, cfg.batch_size) if min(cfg.batch_size, n_train - s) >= min_batch
    )
    log.info(
        "fitting scorer %r on %d rows (holdout %d) with inputs %s: %d epochs x %d steps, batch %d, device %s",
        cfg.name, n_train, holdout_idx.size, inputs, cfg.epochs, steps_per_epoch, cfg.batch_size, device,
    )

    history: list[EpochStats] = []
    progress = tqdm(total=cfg.epochs * steps_per_epoch, desc=f"scorer {cfg.name}", unit="step", disable=None)
    try:
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n_train, generator=generator).to(device)
            sum_sq = torch.zeros((), dtype=torch.float64, device=device)
            seen = 0
            window_sq, window_n = 0.0, 0
            for step, s in enumerate(range(0, n_train, cfg.batch_size), start=1):
                idx = order[s : s + cfg.batch_size]
                if idx.numel() < min_batch:
                    continue
                pred = model(x_train[idx])
                loss = torch.mean((pred - y_train[idx]) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                batch_sq = loss.detach() * idx.numel()
                sum_sq += batch_sq
                seen += idx.numel()
                progress.update(1)
                if log_every is not None:
                    window_sq += float(batch_sq)
                    window_n += idx.numel()
                    if step % log_every == 0:
                        log.info("epoch %d step %d: running train mse %.6f", epoch, step, window_sq / window_n)
                        window_sq, window_n = 0.0, 0
            train_mse = float(sum_sq) / max(1, seen)
            if not math.isfinite(train_mse):
                raise TrainingDiverged(
                    f"scorer {cfg.name!r}: training mse is {train_mse} in epoch {epoch} (lr {cfg.lr})"
                )
            hist_pred = predict(model, x_hist, device=device)
            holdout_mse = float(np.mean((hist_pred.astype(np.float64) - y_hist) ** 2))
            stats = EpochStats(epoch, train_mse, holdout_mse, time.perf_counter() - epoch_start)
            history.append(stats)
            progress.set_postfix(train=f"{train_mse:.4g}", holdout=f"{holdout_mse:.4g}")
            log.info(
                "scorer epoch %d/%d: train mse %.6f, holdout mse %.6f (%.1f s)",
                epoch, cfg.epochs, train_mse, holdout_mse, stats.seconds,
            )
    finally:
        progress.close()
    model.eval()
    return FitResult(
        model=model,
        settings=settings,
        train_idx=train_idx,
        holdout_idx=holdout_idx,
        history_rows=history_rows,
        history=history,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- inference


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
    model.eval()  # BN running statistics: a weight's score depends on its own features only (autos.md 1)
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
    settings: BaseModel,
    features: Mapping[str, Mapping[str, Tensor]],
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Score every weight of a target: {layer: {column: tensor of the layer's shape}} -> {layer: scores}.

    All layers go through one chunked ``predict`` (autos.md section 5.3 scores layer by layer in chunks of 8192;
    one pass over the concatenation is the same function, with fewer tiny chunks). Scores are float32 CPU
    tensors of each layer's shape; higher = keep, raw signed regression outputs as in the reference.
    """
    inputs = list(settings.inputs)  # type: ignore[attr-defined]
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


# --------------------------------------------------------------------------- evaluation


def _descending_order(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Row indices by descending score; equal scores ordered by ``tiebreak`` (a random key, not the row index,
    which correlates with the layer and so would bias ties toward early layers)."""
    return np.lexsort((tiebreak, -scores.astype(np.float64)))


def evaluate_ranking(
    pred: np.ndarray,
    survived: np.ndarray,
    num_rounds: int,
    densities: Sequence[float],
    rng_seed: int,
) -> dict[str, float]:
    """How well ``pred`` ranks the weights like IRP did (autos.md section 10.3: ranking metrics matter more).

    Keys: ``mse`` (vs label = survived / num_rounds), ``spearman`` (rho with survived), ``topk_overlap_d<d>``
    (|top-k by pred & top-k by survived| / k with k = round(d * N); survived has massive ties, broken by one
    seeded random permutation, used for pred's ties too, so pred == survived scores exactly 1; chance is d),
    ``auc_all_rounds`` (ROC AUC of pred for "survived every round", nan when one class is absent).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    survived = np.asarray(survived).reshape(-1)
    n = pred.size
    if survived.size != n:
        raise ValueError(f"pred has {n} rows, survived {survived.size}")
    if n == 0:
        raise ValueError("no rows to evaluate")
    label = survived.astype(np.float64) / float(num_rounds)
    metrics: dict[str, float] = {"mse": float(np.mean((pred - label) ** 2))}
    if np.ptp(pred) == 0 or np.ptp(survived) == 0:
        metrics["spearman"] = float("nan")
    else:
        metrics["spearman"] = float(spearmanr(pred, survived).statistic)
    tiebreak = np.random.default_rng(rng_seed).permutation(n)
    order_pred = _descending_order(pred, tiebreak)
    order_true = _descending_order(survived, tiebreak)
    for d in densities:
        k = max(1, min(n, round(d * n)))
        common = np.intersect1d(order_pred[:k], order_true[:k], assume_unique=True).size
        metrics[f"topk_overlap_d{d:g}"] = float(common / k)
    all_rounds = survived == num_rounds
    if all_rounds.all() or not all_rounds.any():
        metrics["auc_all_rounds"] = float("nan")
    else:
        metrics["auc_all_rounds"] = float(roc_auc_score(all_rounds, pred))
    return metrics


def trivial_baselines(
    columns: Mapping[str, np.ndarray | Tensor],
    survived: np.ndarray,
    num_rounds: int,
    densities: Sequence[float],
    rng_seed: int,
) -> dict[str, dict[str, float]]:
    """Ranking metrics of trivial scorers on the same rows: |w0|, |g0|, |w0*g0| (SNIP's saliency) and random.

    DESIGN.md "quick probe": magnitude-IRP labels can be nearly |w0|, so a learned scorer means something only
    next to these. ``mse`` is left out: these scores are not on the label's scale.
    """
    w0 = np.asarray(columns["w0"], dtype=np.float64).reshape(-1)
    g0 = np.asarray(columns["g0"], dtype=np.float64).reshape(-1)
    candidates = {
        "abs_w0": np.abs(w0),
        "abs_g0": np.abs(g0),
        "abs_w0_x_g0": np.abs(w0 * g0),
        "random": np.random.default_rng([rng_seed, 2]).random(w0.size),
    }
    out = {}
    for name, scores in candidates.items():
        metrics = evaluate_ranking(scores, survived, num_rounds, densities, rng_seed)
        metrics.pop("mse")
        out[name] = metrics
    return out


# --------------------------------------------------------------------------- save / load


def save_scorer(
    directory: str | Path,
    model: nn.Module,
    name: str,
    settings: BaseModel,
    extra_meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``scorer.pt`` (state_dict only: loading never unpickles code, unlike the reference's pickled module,
    autos.md section 8.4 item 10) and then ``scorer.json`` (name, settings, inputs, metadata, the weights' sha256),
    each atomically; the JSON is written last, so a complete JSON implies matching weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    save_torch(state, weights)  # byte-reproducible: same seed, same bytes, same DVC hash
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "settings": settings.model_dump(mode="json"),
        "inputs": list(settings.inputs),  # type: ignore[attr-defined]
        "weights_sha256": sha256_file(weights),
        "meta": dict(extra_meta or {}),
    }
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    atomic_write_text(directory / META_FILE, text)


def load_scorer(directory: str | Path) -> tuple[ScorerNet, str, BaseModel, dict[str, Any]]:
    """Load what ``save_scorer`` wrote: (model in eval mode on CPU, name, settings, metadata). DataError if missing,
    corrupt or inconsistent (each message names the file)."""
    directory = Path(directory)
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DataError(f"no trained scorer at {directory}: {meta_path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"corrupt scorer metadata {meta_path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: not a scorer file of format_version {FORMAT_VERSION}")
    name = meta.get("name")
    if name not in SCORERS:
        raise DataError(f"{meta_path}: unknown scorer {name!r}; allowed: {', '.join(SCORERS.names())}")
    try:
        model, settings = build_scorer(name, meta.get("settings") or {})
    except ValidationError as exc:
        raise DataError(f"{meta_path}: invalid settings for scorer {name!r}: {exc}") from None
    if not weights_path.is_file():
        raise DataError(f"{weights_path} is missing (next to {meta_path})")
    if meta.get("weights_sha256") != sha256_file(weights_path):
        raise DataError(f"{weights_path} does not match the sha256 recorded in {meta_path} (corrupt or replaced)")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read the bytes is a data problem
        raise DataError(f"cannot load scorer weights {weights_path}: {exc}") from None
    model.eval()
    return model, name, settings, dict(meta.get("meta") or {})
