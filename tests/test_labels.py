"""The scorer's label (``scorer.label``): the residual rank after |w0| isolates what survival holds beyond
magnitude, a scorer can learn it, and AutoS turns a residual scorer's outputs back into scores (autos.scorer.labels).
"""

from __future__ import annotations

import math
import typing

import numpy as np
import pyarrow as pa
import pytest
import torch
from scipy.stats import spearmanr

from autos.config import ScorerConfig, TrainRecipe
from autos.errors import DataError
from autos.features import EXTRA_FEATURES, LayerInfo, feature_table
from autos.models import build_model
from autos.pruners import PRUNERS
from autos.pruners.base import PruneContext
from autos.scorer import build_scorer, fit_scorer, input_matrix, predict, split_rows
from autos.scorer.labels import (
    LABELS,
    compose_score,
    label_record,
    layer_percentiles,
    magnitude_curve,
    read_label_record,
    source_label,
    within_layer_percentiles,
)
from autos.scorer.metrics import residual_metrics
from autos.study import scorer_config

P = 4
SHAPES = [(32, 16, 3, 3), (64, 32, 3, 3), (10, 64)]
EXTRA = ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out"]


def _table(beyond_w0: float) -> pa.Table:
    """Layers of different init scales; survival = bucket of (|w0| within-layer z + beyond_w0 * g0 z): with
    beyond_w0 > 0 survival holds something |w0| does not (the sign-free g0 direction), like SNIP-flavoured IRP."""
    gen = torch.Generator().manual_seed(0)
    infos, features, survived = [], {}, {}
    for i, shape in enumerate(SHAPES):
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        info = LayerInfo(f"l{i}.weight", i, len(SHAPES), "conv" if len(shape) == 4 else "linear", shape,
                         shape[1] * receptive, shape[0] * receptive)
        w0 = torch.randn(shape, generator=gen) * math.sqrt(2.0 / info.fan_in) * (i + 1)
        g0 = torch.randn(shape, generator=gen) * 1e-3
        layer = {"w0": w0, "g0": g0, **{c: EXTRA_FEATURES.get(c)(w0, g0, info) for c in EXTRA}}
        signal = layer["w0_layer_z"].abs() + beyond_w0 * layer["g0_layer_z"]
        edges = torch.quantile(signal.flatten(), torch.linspace(0, 1, P + 2)[1:-1])
        infos.append(info)
        features[info.name] = layer
        survived[info.name] = torch.bucketize(signal, edges)
    return feature_table(infos, features, EXTRA, survived=survived, num_rounds=P)


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202 - tiny nets: one thread is fastest, and spares a busy CI machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_within_layer_percentiles_rank_per_layer_with_averaged_ties() -> None:
    values = np.array([3.0, 1.0, 2.0, 5.0, 5.0, 0.0])
    layer = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(within_layer_percentiles(values, layer),
                               [2.5 / 3, 0.5 / 3, 1.5 / 3, 2.0 / 3, 2.0 / 3, 0.5 / 3])
    torch.testing.assert_close(layer_percentiles(torch.tensor([[3.0, 1.0], [2.0, 0.0]])),
                               torch.tensor([[3.5, 1.5], [2.5, 0.5]], dtype=torch.float64) / 4)


def test_magnitude_curve_uses_only_the_given_rows_and_fills_empty_bins() -> None:
    p_w = np.array([0.05, 0.15, 0.95, 0.96])
    p_s = np.array([0.1, 0.3, 0.9, 0.0])
    curve = magnitude_curve(p_w, p_s, np.array([0, 1, 2]), bins=10)  # row 3 is held out: it must not count
    assert curve[0] == pytest.approx(0.1) and curve[1] == pytest.approx(0.3) and curve[9] == pytest.approx(0.9)
    assert curve[5] == pytest.approx(0.3 + (0.9 - 0.3) * 4 / 8)  # interpolated between bins 1 and 9
    with pytest.raises(ValueError, match="bins must be >= 2"):
        magnitude_curve(p_w, p_s, np.array([0]), bins=1)


def test_residual_of_a_pure_magnitude_label_is_small_and_of_a_mixed_one_carries_the_rest() -> None:
    pure, mixed = _table(0.0), _table(0.3)  # mixed: survival mostly |w0|, partly g0 (like magnitude IRP + a bit)
    train, _ = split_rows(pure.num_rows, 0.2, 0)
    a, b = source_label(pure, "residual_rank", 50, train), source_label(mixed, "residual_rank", 50, train)
    p_s = within_layer_percentiles(mixed.column("survived").to_numpy(), mixed.column("layer_idx").to_numpy())
    g0z, abs_w0 = mixed.column("g0_layer_z").to_numpy(), np.abs(mixed.column("w0").to_numpy())
    # survival that is a function of |w0| leaves only bin noise; the g0 part lands in the residual, |w0|'s does not
    assert a.values.std() < 0.01 < 0.1 < b.values.std()
    assert spearmanr(b.values, g0z).statistic > 0.8 > 0.5 > spearmanr(p_s, g0z).statistic
    assert abs(spearmanr(b.values, abs_w0).statistic) < 0.1 < 0.7 < spearmanr(p_s, abs_w0).statistic
    # the scores on the source add the curve back: c(p_w) + residual is the survival percentile itself
    np.testing.assert_allclose(b.scores(b.values.astype(np.float64)), p_s, atol=1e-6)
    survival = source_label(mixed, "survival", 50, train)
    assert survival.with_label(mixed) is mixed and survival.base is None
    assert b.with_label(mixed).column("label").to_numpy().tolist() == b.values.tolist()


def test_a_scorer_learns_the_residual_where_w0_and_random_do_not() -> None:
    table = _table(0.3)
    cfg = scorer_config(name="mlp", settings={"inputs": EXTRA, "hidden": [32, 32]}, epochs=6, batch_size=256,
                       lr=3e-3, seed=0, label="residual_rank", holdout_fraction=0.2)
    train, held = split_rows(table.num_rows, cfg.holdout_fraction, cfg.seed)
    label = source_label(table, cfg.label, cfg.label_bins, train)
    fit = fit_scorer(label.with_label(table), cfg, device="cpu")
    assert np.array_equal(fit.holdout_idx, held)
    output = predict(fit.model, input_matrix(table, EXTRA, held), device="cpu")
    columns = {c: table.column(c).to_numpy()[held] for c in ("w0", "g0")}
    metrics = residual_metrics(output, label.values[held], columns)
    assert metrics["spearman_scorer"] > 0.6 and abs(metrics["spearman_random"]) < 0.1
    # the composed scores rank held-out survival better than |w0| alone, which misses the g0 part
    survived = table.column("survived").to_numpy()[held]
    composed = label.scores(output, held)
    assert spearmanr(composed, survived).statistic > spearmanr(np.abs(columns["w0"]), survived).statistic + 0.1


def test_compose_score_adds_the_curve_back_and_leaves_survival_scores_alone() -> None:
    w0 = torch.tensor([[0.3, -0.1], [0.05, -0.9]])
    predicted = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    assert compose_score(predicted, w0, {"kind": "survival"}) is predicted
    record = label_record("residual_rank", np.array([0.1, 0.2, 0.6, 0.8]))  # 4 bins of the |w0| percentile
    # |w0| percentiles: 0.3 -> 5/8 (bin 2), 0.1 -> 3/8 (bin 1), 0.05 -> 1/8 (bin 0), 0.9 -> 7/8 (bin 3)
    torch.testing.assert_close(compose_score(predicted, w0, record), torch.tensor([[0.6, 0.7], [0.1, 0.8]]))
    with pytest.raises(ValueError, match="shape"):
        compose_score(predicted.flatten(), w0, record)


def test_label_record_errors_name_the_scorer_and_the_allowed_labels() -> None:
    assert read_label_record({}, "scorer x") == {"kind": "survival"}  # saved before labels were recorded
    with pytest.raises(DataError, match=r"scorer x: unknown label 'rank'.*allowed: survival, residual_rank"):
        read_label_record({"label": {"kind": "rank"}}, "scorer x")
    with pytest.raises(DataError, match="scorer x: a residual_rank scorer needs a magnitude_curve"):
        read_label_record({"label": {"kind": "residual_rank"}}, "scorer x")
    with pytest.raises(ValueError, match="unknown label 'rank'; allowed: survival, residual_rank"):
        source_label(_table(0.0), "rank", 50, np.arange(10))


def test_the_config_offers_exactly_the_labels_the_library_builds() -> None:
    assert typing.get_args(ScorerConfig.model_fields["label"].annotation) == LABELS


def test_config_rejects_an_unknown_label_and_residual_with_pooled_tables() -> None:
    with pytest.raises(ValueError, match="'survival' or 'residual_rank'"):
        ScorerConfig(label="rank")
    with pytest.raises(ValueError, match="cannot pool extra_tables; with extra_tables the allowed label is 'survival'"):
        ScorerConfig(label="residual_rank", extra_tables=["other.parquet"])
    with pytest.raises(ValueError, match="label_bins"):
        ScorerConfig(label_bins=1)


def test_autos_prunes_with_a_residual_scorer_through_its_magnitude_curve(tiny_data) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net, settings = build_scorer("mlp", {"hidden": [8]})
        net.prepare(torch.randn(256, len(settings.inputs)))
    net.eval()
    record = label_record("residual_rank", np.linspace(0.0, 1.0, 20))
    model = build_model("vgg16_bn", num_classes=4, width=16, input_size=32, seed=0)

    def scores(meta: dict) -> dict[str, torch.Tensor]:
        ctx = PruneContext(model=model, data=tiny_data, recipe=TrainRecipe(epochs=1, batch_size=16),
                           device=torch.device("cpu"), seed=0, num_classes=4, scorer=(net, "mlp", settings, meta))
        pruner = PRUNERS.get("autos")()
        return pruner.score(ctx)

    raw, composed = scores({}), scores({"label": record})
    weights = dict(model.named_parameters())
    assert set(raw) == set(composed)
    for name, s in composed.items():
        torch.testing.assert_close(s, compose_score(raw[name], weights[name], record))
        assert not torch.equal(s, raw[name])
