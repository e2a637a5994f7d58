"""Fitting a scorer: the seeded train/holdout split, the input matrix of a feature table, and ``fit_scorer``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from tqdm.auto import tqdm

from autos.config import ScorerConfig
from autos.errors import DataError, TrainingDiverged
from autos.scorer.nets import ScorerNet, ScorerSettings, build_scorer
from autos.scorer.predict import predict

log = logging.getLogger("autos.scorer")  # the package's name, as before the split: log lines read the same


class ScorerDiverged(TrainingDiverged):
    """The scorer's training loss became non-finite (lower ``scorer.lr``, or use normalised inputs)."""


# --------------------------------------------------------------------------- data


def split_rows(num_rows: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split into disjoint, sorted int64 (train, holdout) row indices covering every row.

    A real held-out split: the reference's "validation" was the first 10% of rows in layer order and overlapped
    the training rows (docs/reference/autos.md §5.2, bug 5 of §8.4). Both sides get at least one row.
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


def batch_loss(pred: torch.Tensor, label: torch.Tensor, kind: str) -> torch.Tensor:
    """The training loss of one batch.

    ``mse``: mean squared error against the survival label (the paper, docs/reference/autos.md §5.2).
    ``pairwise``: RankNet's logistic loss (Burges et al. 2005) over the pairs (i, i + n/2) of the batch (rows come
    in a random order, so these are random pairs across layers), counting only pairs whose labels differ: for the
    pair with y_i > y_j the loss is softplus(-(s_i - s_j)). Selection ranks all layers together (``select_mask``
    with global scope), so the order of any two weights is what matters, not the label's scale.
    """
    if kind == "mse":
        return torch.mean((pred - label) ** 2)
    half = pred.shape[0] // 2
    if half == 0:
        return pred.sum() * 0.0
    sign = torch.sign(label[:half] - label[half : 2 * half])
    margin = (pred[:half] - pred[half : 2 * half]) * sign
    informative = sign != 0
    count = informative.sum().clamp(min=1)
    return (torch.nn.functional.softplus(-margin) * informative).sum() / count




@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float  # scorer.loss, mean over the epoch's training rows (the reference divided by #batches, §5.2)
    holdout_mse: float  # on ``FitResult.history_rows`` (a fixed subset of the holdout rows)
    seconds: float


@dataclass
class FitResult:
    model: ScorerNet  # eval mode
    settings: ScorerSettings
    train_idx: np.ndarray  # rows actually trained on (after the max_train_rows subsample), sorted
    holdout_idx: np.ndarray  # every held-out row, sorted
    history_rows: np.ndarray  # the holdout rows behind ``EpochStats.holdout_mse``, sorted
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _split(cfg: ScorerConfig, num_rows: int, max_history_rows: int | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training rows, held-out rows, the held-out rows of the per-epoch history), seeded by ``cfg.seed``."""
    train_idx, holdout_idx = split_rows(num_rows, cfg.holdout_fraction, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    if cfg.max_train_rows is not None and cfg.max_train_rows < train_idx.size:
        log.info("subsampling training rows: %d of %d (scorer.max_train_rows)", cfg.max_train_rows, train_idx.size)
        train_idx = np.sort(rng.choice(train_idx, size=cfg.max_train_rows, replace=False))
    history_rows = holdout_idx
    if max_history_rows is not None and holdout_idx.size > max_history_rows:
        history_rows = np.sort(rng.choice(holdout_idx, size=max_history_rows, replace=False))
    return train_idx, holdout_idx, history_rows


@dataclass
class _Epochs:
    """What every epoch of one fit uses: the training rows on the device, the history rows, the optimizer."""

    cfg: ScorerConfig
    model: ScorerNet
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_hist: torch.Tensor
    y_hist: np.ndarray
    device: torch.device
    log_every: int | None
    optimizer: torch.optim.Optimizer = field(init=False)
    generator: torch.Generator = field(init=False)
    min_batch: int = field(init=False)

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        # BatchNorm cannot train on a batch of one row: drop such a trailing batch (only ever one row per epoch).
        self.min_batch = 2 if _has_batchnorm(self.model) else 1

    def steps_per_epoch(self) -> int:
        n, size = self.x_train.shape[0], self.cfg.batch_size
        return sum(1 for s in range(0, n, size) if min(size, n - s) >= self.min_batch)

    def run(self, epoch: int, progress: Any) -> EpochStats:
        cfg, model, n_train = self.cfg, self.model, self.x_train.shape[0]
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=self.generator).to(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        window_sum, window_n = 0.0, 0
        for step, s in enumerate(range(0, n_train, cfg.batch_size), start=1):
            idx = order[s : s + cfg.batch_size]
            if idx.numel() < self.min_batch:
                continue
            loss = batch_loss(model(self.x_train[idx]), self.y_train[idx], cfg.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            batch_total = loss.detach() * idx.numel()
            loss_sum += batch_total
            seen += idx.numel()
            progress.update(1)
            if self.log_every is not None:
                window_sum += float(batch_total)
                window_n += idx.numel()
                if step % self.log_every == 0:
                    log.info("epoch %d step %d: running train loss %.6f", epoch, step, window_sum / window_n)
                    window_sum, window_n = 0.0, 0
        train_loss = float(loss_sum) / max(1, seen)
        if not math.isfinite(train_loss):
            raise ScorerDiverged(f"scorer {cfg.name!r}: training loss is {train_loss} in epoch {epoch} (lr {cfg.lr})")
        hist_pred = predict(model, self.x_hist, device=self.device)
        holdout_mse = float(np.mean((hist_pred.astype(np.float64) - self.y_hist) ** 2))
        return EpochStats(epoch, train_loss, holdout_mse, time.perf_counter() - epoch_start)


def fit_scorer(
    table: pa.Table,
    cfg: ScorerConfig,
    *,
    device: torch.device | str,
    log_every: int | None = None,
    max_history_rows: int | None = 200_000,
) -> FitResult:
    """Train ``cfg.name`` on ``table`` (features -> ``label``): ``cfg.loss`` (MSE as the paper, or a pairwise
    ranking loss, ``batch_loss``) + Adam, seeded (docs/reference/autos.md §5.2).

    The split is ``split_rows(len(table), cfg.holdout_fraction, cfg.seed)``; training rows are then subsampled to
    ``cfg.max_train_rows`` (seeded, logged; a budget deviation suggested in docs/reference/autos.md §9). The per-epoch
    holdout MSE uses at most ``max_history_rows`` held-out rows (a fixed seeded subset) so that a large holdout
    does not dominate the run; the stage evaluates the full holdout with ``predict``/``evaluate_ranking``.
    ``log_every`` (steps) adds running-loss log lines inside an epoch. The returned model is the last epoch's
    (the reference kept the epoch with the lowest overlapping "validation" loss, section 5.2).
    """
    start = time.perf_counter()
    device = torch.device(device)
    settings = cast(ScorerSettings, cfg.typed_settings)  # validated once, at load (autos.study.scorer_config)
    inputs = list(settings.inputs)
    train_idx, holdout_idx, history_rows = _split(cfg, table.num_rows, max_history_rows)
    x_all = input_matrix(table, inputs)
    y_all = _label_column(table, "label").astype(np.float32, copy=False)
    if not np.isfinite(y_all).all():
        raise DataError("feature table has non-finite labels")
    # The whole training set lives on the device (11M rows x a few float32 columns is a few hundred MB), so a
    # step is a gather, not a host-to-device copy.
    x_train = torch.from_numpy(x_all[train_idx]).to(device)
    y_train = torch.from_numpy(y_all[train_idx]).to(device)
    x_hist, y_hist = torch.from_numpy(x_all[history_rows]), y_all[history_rows]
    del x_all
    with torch.random.fork_rng(devices=[]):  # the init depends on cfg.seed only, not on earlier RNG use
        torch.manual_seed(cfg.seed)
        model, _ = build_scorer(cfg.name, settings)
    model.prepare(x_train)
    model.to(device)
    epochs = _Epochs(cfg, model, x_train, y_train, x_hist, y_hist, device, log_every)
    steps = epochs.steps_per_epoch()
    log.info("fitting scorer %r on %d rows (holdout %d) with inputs %s: %d epochs x %d steps, batch %d, device %s",
             cfg.name, x_train.shape[0], holdout_idx.size, inputs, cfg.epochs, steps, cfg.batch_size, device)
    history: list[EpochStats] = []
    progress = tqdm(total=cfg.epochs * steps, desc=f"scorer {cfg.name}", unit="step", disable=None)
    try:
        for epoch in range(1, cfg.epochs + 1):
            stats = epochs.run(epoch, progress)
            history.append(stats)
            progress.set_postfix(train=f"{stats.train_loss:.4g}", holdout=f"{stats.holdout_mse:.4g}")
            log.info("scorer epoch %d/%d: train loss %.6f, holdout mse %.6f (%.1f s)", epoch, cfg.epochs,
                     stats.train_loss, stats.holdout_mse, stats.seconds)
    finally:
        progress.close()
    model.eval()
    return FitResult(model=model, settings=settings, train_idx=train_idx, holdout_idx=holdout_idx,
                     history_rows=history_rows, history=history, seconds=time.perf_counter() - start)
