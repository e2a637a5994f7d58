"""Scorer networks, fitting, ranking metrics and persistence on a synthetic labelled feature table (CPU)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from autos.config import ScorerConfig
from autos.errors import DataError
from autos.features import EXTRA_FEATURES, LayerInfo, feature_table
from autos.scorer import (
    SCORERS,
    build_scorer,
    evaluate_ranking,
    fit_scorer,
    input_matrix,
    load_scorer,
    predict,
    required_extra,
    save_scorer,
    score_layers,
    split_rows,
    ticket_diagnostics,
    trivial_baselines,
)
from autos.scorer.fit import batch_loss
from autos.study import RegistryCatalog, scorer_config

P = 5  # IRP rounds of the synthetic labels
EXTRA = ["w0_layer_z", "g0_layer_z", "log_fan_in", "log_fan_out"]
SHAPES = [(16, 3, 3, 3), (32, 16, 3, 3), (32, 32, 3, 3), (10, 32)]  # 432 + 4608 + 9216 + 320 = 14,576 rows


def _synthetic(seed: int = 0) -> tuple[list[LayerInfo], dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Layers with different init scales; survived = quantile bucket (0..P) of |w0_layer_z|, a known function."""
    gen = torch.Generator().manual_seed(seed)
    infos, features = [], {}
    for i, shape in enumerate(SHAPES):
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        info = LayerInfo(f"l{i}.weight", i, len(SHAPES), "conv" if len(shape) == 4 else "linear", shape,
                         shape[1] * receptive, shape[0] * receptive)
        w0 = torch.randn(shape, generator=gen) * math.sqrt(2.0 / info.fan_out)  # per-layer scale differs
        g0 = torch.randn(shape, generator=gen) * 1e-3 * (i + 1)
        layer = {"w0": w0, "g0": g0}
        for column in EXTRA:
            layer[column] = EXTRA_FEATURES.get(column)(w0, g0, info)
        infos.append(info)
        features[info.name] = layer
    magnitude = torch.cat([features[i.name]["w0_layer_z"].abs().flatten() for i in infos])
    edges = torch.quantile(magnitude, torch.linspace(0, 1, P + 2)[1:-1])
    survived = {i.name: torch.bucketize(features[i.name]["w0_layer_z"].abs(), edges) for i in infos}
    return infos, features, survived


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # noqa: ANN202
    """These nets are tiny: one intra-op thread is as fast alone and far faster on a busy shared CPU, where
    spinning OpenMP workers of concurrent test runs slowed this module ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[LayerInfo], dict[str, dict[str, torch.Tensor]], pa.Table]:
    infos, features, survived = _synthetic()
    return infos, features, feature_table(infos, features, EXTRA, survived=survived, num_rounds=P)


@pytest.fixture(scope="module")
def fitted_mlp(synthetic):  # noqa: ANN001, ANN201
    _, _, table = synthetic
    cfg = scorer_config(name="mlp", settings={"hidden": [32, 32]}, epochs=8, batch_size=256, lr=3e-3, seed=0)
    return fit_scorer(table, cfg, device="cpu")


def test_synthetic_table_labels(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    survived = table.column("survived").to_numpy()
    assert survived.min() == 0 and survived.max() == P
    np.testing.assert_allclose(table.column("label").to_numpy(), survived / P, rtol=1e-6)


# --------------------------------------------------------------------------- split


def test_split_rows_disjoint_covering_deterministic() -> None:
    train, hold = split_rows(1000, 0.1, seed=3)
    assert train.dtype == np.int64 and hold.dtype == np.int64
    assert hold.size == 100 and train.size == 900
    assert np.intersect1d(train, hold).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, hold])), np.arange(1000))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(hold) > 0)
    train2, hold2 = split_rows(1000, 0.1, seed=3)
    np.testing.assert_array_equal(hold, hold2)
    np.testing.assert_array_equal(train, train2)
    _, hold_other = split_rows(1000, 0.1, seed=4)
    assert not np.array_equal(hold, hold_other)


def test_split_rows_edges() -> None:
    train, hold = split_rows(2, 0.01, seed=0)
    assert train.size == 1 and hold.size == 1
    with pytest.raises(ValueError):
        split_rows(1, 0.5, seed=0)


# --------------------------------------------------------------------------- ranking metrics


def test_evaluate_ranking_perfect_and_random() -> None:
    rng = np.random.default_rng(0)
    survived = rng.integers(0, P + 1, size=50_000)
    densities = [0.5, 0.2, 0.05]
    perfect = evaluate_ranking(survived.astype(np.float32), survived, P, densities, rng_seed=1)
    assert perfect["spearman"] == pytest.approx(1.0)
    for d in densities:
        assert perfect[f"topk_overlap_d{d:g}"] == 1.0  # ties of survived broken identically for pred
    assert perfect["auc_all_rounds"] == pytest.approx(1.0)

    label_scaled = evaluate_ranking(survived / P, survived, P, densities, rng_seed=1)
    assert label_scaled["mse"] == pytest.approx(0.0, abs=1e-12)

    random = evaluate_ranking(rng.random(survived.size), survived, P, densities, rng_seed=1)
    assert abs(random["spearman"]) < 0.03
    assert abs(random["auc_all_rounds"] - 0.5) < 0.03
    for d in densities:
        assert abs(random[f"topk_overlap_d{d:g}"] - d) < 0.05  # chance overlap is d

    inverted = evaluate_ranking(-survived.astype(np.float64), survived, P, densities, rng_seed=1)
    assert inverted["spearman"] == pytest.approx(-1.0)
    assert inverted["topk_overlap_d0.05"] == 0.0


def test_ticket_diagnostics_layer_densities_and_overlap() -> None:
    """A scorer equal to the label reproduces the ticket in every layer; |w0| does when the ticket is the largest
    |w0| per layer profile; random keeps about the density; no survivor gives None; ragged inputs are refused."""
    rng = np.random.default_rng(0)
    layer_idx = np.repeat([0, 1, 2], [5_000, 20_000, 1_000])
    survived = np.where(layer_idx == 0, rng.integers(0, P + 1, layer_idx.size), rng.integers(0, P, layer_idx.size))
    w0 = rng.normal(size=layer_idx.size)
    names = ["a.weight", "b.weight", "c.weight"]
    out = ticket_diagnostics(survived.astype(np.float32), w0, survived, layer_idx, names, P, rng_seed=1)
    assert out is not None
    ticket = survived == P
    assert out["density"] == pytest.approx(ticket.mean())
    assert out["overlap"]["autos"] == 1.0
    assert abs(out["overlap"]["random"] - out["density"]) < 0.02
    by_layer = {row["layer"]: row for row in out["layers"]}
    assert [row["weights"] for row in out["layers"]] == [5_000, 20_000, 1_000]
    for i, name in enumerate(names):
        assert by_layer[name]["autos"] == by_layer[name]["irp_ticket"] == pytest.approx(ticket[layer_idx == i].mean())
    assert by_layer["b.weight"]["irp_ticket"] == 0.0 and by_layer["a.weight"]["irp_ticket"] > 0.1
    # |w0| spreads its mask over every layer (w0 is i.i.d. here), so it misses the ticket's layer profile
    assert all(abs(row["abs_w0"] - out["density"]) < 0.02 for row in out["layers"])
    assert out["overlap"]["abs_w0"] < 0.5

    assert ticket_diagnostics(np.zeros(3), np.zeros(3), np.zeros(3, dtype=int), np.zeros(3, dtype=int), ["a"], P,
                              rng_seed=0) is None
    with pytest.raises(ValueError, match="row counts differ"):
        ticket_diagnostics(np.zeros(3), np.zeros(2), np.zeros(3, dtype=int), np.zeros(3, dtype=int), ["a"], P, 0)


def test_evaluate_ranking_one_class_auc_is_nan() -> None:
    survived = np.array([0, 1, 2, 3])
    metrics = evaluate_ranking(np.arange(4.0), survived, num_rounds=5, densities=[0.5], rng_seed=0)
    assert math.isnan(metrics["auc_all_rounds"])
    assert metrics["spearman"] == pytest.approx(1.0)


def test_trivial_baselines(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    cols = {c: table.column(c).to_numpy() for c in ("w0", "g0")}
    survived = table.column("survived").to_numpy()
    base = trivial_baselines(cols, survived, P, [0.5, 0.1], rng_seed=0)
    assert set(base) == {"abs_w0", "abs_g0", "abs_w0_x_g0", "random"}
    assert all("mse" not in m and "spearman" in m for m in base.values())
    # |w0| is monotone in |w0_layer_z| within a layer, so it ranks the synthetic labels well; |g0| is noise here
    assert base["abs_w0"]["spearman"] > 0.6
    assert abs(base["abs_g0"]["spearman"]) < 0.1
    assert abs(base["random"]["spearman"]) < 0.1


# --------------------------------------------------------------------------- settings


def test_unknown_settings_key_is_rejected() -> None:
    for name in SCORERS:
        with pytest.raises(ValidationError):
            SCORERS.get(name).Settings(not_a_setting=1)
    with pytest.raises(ValidationError):
        SCORERS.get("mlp").Settings(inputs=["w0", "no_such_column"])
    with pytest.raises(ValidationError):
        SCORERS.get("mlp").Settings(inputs=[])
    with pytest.raises(ValidationError):  # with the registries' catalog, ScorerConfig validates its settings too
        ScorerConfig.model_validate({"name": "mlp", "settings": {"widht": 3}}, context={"catalog": RegistryCatalog()})
    ScorerConfig.model_validate({"name": "mlp", "settings": {"widht": 3}})  # structure only: names are not checked


def test_defaults() -> None:
    paper = SCORERS.get("paper").Settings()
    assert paper.inputs == ["w0", "g0"] and paper.width == 64
    assert required_extra(paper) == []
    mlp = SCORERS.get("mlp").Settings()
    assert mlp.inputs == EXTRA and mlp.hidden == [64, 64]
    assert required_extra(mlp) == EXTRA


# --------------------------------------------------------------------------- fitting


def test_mlp_learns_the_known_function(synthetic, fitted_mlp) -> None:  # noqa: ANN001
    _, _, table = synthetic
    result = fitted_mlp
    assert not result.model.training
    assert len(result.history) == 8
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].holdout_mse < 0.02
    # standardisation buffers hold the training-row statistics
    x_train = input_matrix(table, EXTRA, result.train_idx)
    np.testing.assert_allclose(result.model.mean.numpy(), x_train.mean(0), rtol=1e-4, atol=1e-5)

    hold = result.holdout_idx
    pred = predict(result.model, input_matrix(table, EXTRA, hold))
    survived = table.column("survived").to_numpy()[hold]
    metrics = evaluate_ranking(pred, survived, P, [0.5, 0.2], rng_seed=0)
    random = trivial_baselines(
        {c: table.column(c).to_numpy()[hold] for c in ("w0", "g0")}, survived, P, [0.5, 0.2], rng_seed=0
    )["random"]
    assert metrics["spearman"] > 0.9
    assert metrics["spearman"] > random["spearman"] + 0.5
    assert metrics["topk_overlap_d0.2"] > random["topk_overlap_d0.2"] + 0.3
    assert metrics["auc_all_rounds"] > 0.9


def test_pairwise_loss_rewards_the_right_order_and_ignores_ties() -> None:
    label = torch.tensor([3.0, 1.0, 2.0, 0.0, 1.0, 2.0])  # pairs (0,3) (1,4) (2,5): one order, one tie, one tie
    right = torch.tensor([1.0, 0.0, 0.0, -1.0, 0.0, 0.0])
    wrong = -right
    assert batch_loss(right, label, "pairwise") < math.log(2) < batch_loss(wrong, label, "pairwise")
    # only the informative pair counts: its softplus(-(1 - -1)) alone
    assert math.isclose(float(batch_loss(right, label, "pairwise")), math.log1p(math.exp(-2.0)), rel_tol=1e-6)
    scale_free = batch_loss(right * 10, label * 10, "pairwise")
    assert scale_free < batch_loss(right, label, "pairwise")  # the label's scale does not enter, only the order
    assert math.isclose(float(batch_loss(right, label, "mse")), float(torch.mean((right - label) ** 2)))


def test_pairwise_scorer_learns_the_ranking(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    cfg = scorer_config(name="mlp", settings={"hidden": [32, 32]}, epochs=4, batch_size=256, lr=3e-3, seed=0,
                       loss="pairwise")
    result = fit_scorer(table, cfg, device="cpu")
    assert result.history[-1].train_loss < result.history[0].train_loss < math.log(2)
    hold = result.holdout_idx
    pred = predict(result.model, input_matrix(table, EXTRA, hold))
    metrics = evaluate_ranking(pred, table.column("survived").to_numpy()[hold], P, [0.5, 0.2], rng_seed=0)
    assert metrics["spearman"] > 0.9  # as the MSE scorer on the same function


def test_fit_is_deterministic_and_subsamples(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    cfg = scorer_config(name="mlp", settings={"hidden": [8]}, epochs=1, batch_size=512, max_train_rows=3000, seed=5)
    a = fit_scorer(table, cfg, device="cpu", max_history_rows=500)
    b = fit_scorer(table, cfg, device="cpu", max_history_rows=500)
    assert a.train_idx.size == 3000 and a.history_rows.size == 500
    assert np.intersect1d(a.train_idx, a.holdout_idx).size == 0
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    assert a.history[0].train_loss == b.history[0].train_loss
    for pa_, pb_ in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa_, pb_)


def test_fit_reports_missing_columns(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    cfg = scorer_config(name="mlp", settings={"inputs": ["abs_w0"]}, epochs=1)
    with pytest.raises(DataError, match="abs_w0"):
        fit_scorer(table, cfg, device="cpu")
    unlabelled = table.drop_columns(["survived", "label"])
    with pytest.raises(DataError, match="label"):
        fit_scorer(unlabelled, scorer_config(name="mlp", epochs=1), device="cpu")


def test_paper_scorer_tiny_width_trains(synthetic) -> None:  # noqa: ANN001
    _, _, table = synthetic
    small = table.take(np.random.default_rng(0).choice(table.num_rows, 600, replace=False))
    cfg = scorer_config(
        name="paper", settings={"width": 4, "stem_hidden": 16}, epochs=2, batch_size=64, lr=1e-3, seed=0
    )
    result = fit_scorer(small, cfg, device="cpu")
    assert all(math.isfinite(h.train_loss) and math.isfinite(h.holdout_mse) for h in result.history)
    assert result.history[-1].train_loss < result.history[0].train_loss
    pred = predict(result.model, {c: small.column(c).to_numpy() for c in ("w0", "g0")})
    assert pred.shape == (600,) and pred.dtype == np.float32 and np.isfinite(pred).all()
    # eval mode is pointwise: a row's score does not depend on the other rows in its batch
    one_by_one = predict(result.model, input_matrix(small, ["w0", "g0"], np.arange(5)), batch_size=1)
    np.testing.assert_allclose(one_by_one, pred[:5], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- inference on a target


def test_score_layers_reshapes_per_layer(synthetic, fitted_mlp) -> None:  # noqa: ANN001
    infos, features, table = synthetic
    scores = score_layers(fitted_mlp.model, fitted_mlp.settings, features)
    assert list(scores) == [i.name for i in infos]
    for info in infos:
        assert scores[info.name].shape == info.shape and scores[info.name].dtype == torch.float32
    flat = torch.cat([scores[i.name].flatten() for i in infos]).numpy()
    np.testing.assert_allclose(flat, predict(fitted_mlp.model, input_matrix(table, EXTRA)), rtol=1e-6)
    without = {name: {k: v for k, v in layer.items() if k != "log_fan_in"} for name, layer in features.items()}
    with pytest.raises(DataError, match="log_fan_in"):
        score_layers(fitted_mlp.model, fitted_mlp.settings, without)


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path, synthetic, fitted_mlp) -> None:  # noqa: ANN001
    _, _, table = synthetic
    save_scorer(tmp_path / "s", fitted_mlp.model, "mlp", fitted_mlp.settings, {"source": "synthetic", "rows": 7})
    model, name, settings, meta = load_scorer(tmp_path / "s")
    assert name == "mlp" and settings == fitted_mlp.settings and meta == {"source": "synthetic", "rows": 7}
    assert not model.training
    x = input_matrix(table, EXTRA)
    np.testing.assert_array_equal(predict(model, x), predict(fitted_mlp.model, x))
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["scorer.json", "scorer.pt"]


def test_save_load_paper_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model, settings = build_scorer("paper", {"width": 2, "stem_hidden": 8})
    model.train()
    model(torch.randn(32, 2))  # move the BN running statistics away from their init
    save_scorer(tmp_path, model, "paper", settings)
    loaded, _, loaded_settings, _ = load_scorer(tmp_path)
    assert loaded_settings == settings
    x = torch.randn(50, 2)
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))


def test_load_scorer_errors_name_the_path(tmp_path, fitted_mlp) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="scorer.json"):
        load_scorer(tmp_path / "nowhere")
    save_scorer(tmp_path, fitted_mlp.model, "mlp", fitted_mlp.settings)
    weights = tmp_path / "scorer.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(DataError, match="scorer.pt"):
        load_scorer(tmp_path)
    (tmp_path / "scorer.json").write_text("{not json")
    with pytest.raises(DataError, match="scorer.json"):
        load_scorer(tmp_path)
