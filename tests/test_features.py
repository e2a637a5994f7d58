"""Feature table: schema, metadata, one row per prunable weight, and the same function on any target."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch

from autos.config import FeaturesConfig
from autos.errors import DataError
from autos.features import (
    BASE_SCHEMA,
    EXTRA_FEATURES,
    feature_table,
    pool_tables,
    read_table,
    table_metadata,
    weight_features,
    write_table,
)
from autos.masking import prunable_parameters
from autos.models import build_model

CPU = torch.device("cpu")


def test_features_match_definition(tiny_data) -> None:
    model = build_model("vgg16_bn", num_classes=4, width=4, input_size=32, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = FeaturesConfig(gradient_batch_size=16, gradient_max_batches=2, gradient_augment=False,
                         extra=["w0_layer_z", "log_fan_in"])
    infos, feats = weight_features(model, tiny_data, cfg, device=CPU, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model untouched
    params = prunable_parameters(model)
    assert [i.name for i in infos] == list(params)
    name = "features.0.weight"
    assert torch.equal(feats[name]["w0"], params[name].detach())
    # g0 = sum over the two batches of the batch-mean loss gradient, BN in eval mode, no augmentation
    model.eval()
    norm = lambda x: (x.float() / 255 - 0.5) / 0.25  # noqa: E731 (tiny_data mean/std)
    model.zero_grad()
    for lo in (0, 16):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(0))[lo: lo + 16]
        torch.nn.functional.cross_entropy(model(norm(tiny_data.train_x[order])), tiny_data.train_y[order]).backward()
    assert torch.allclose(feats[name]["g0"], params[name].grad, atol=1e-6, rtol=1e-4)
    z = feats[name]["w0_layer_z"]
    assert abs(float(z.std()) - 1.0) < 1e-4
    assert torch.allclose(feats[name]["log_fan_in"], torch.full_like(z, torch.log(torch.tensor(27.0)).item()))
    mean_cfg = cfg.model_copy(update={"gradient_reduction": "mean"})
    _, feats_mean = weight_features(model, tiny_data, mean_cfg, device=CPU, seed=0)
    assert torch.allclose(feats_mean[name]["g0"] * 2, feats[name]["g0"], atol=1e-6, rtol=1e-4)


def test_table_schema_rows_and_metadata(tiny_data, tmp_path) -> None:
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0)
    extra = ["g0_layer_z", "abs_w0"]
    cfg = FeaturesConfig(gradient_batch_size=32, gradient_max_batches=1, extra=extra)
    infos, feats = weight_features(model, tiny_data, cfg, device=CPU, seed=0)
    survived = {i.name: torch.randint(0, 4, i.shape, dtype=torch.int8) for i in infos}
    table = feature_table(infos, feats, extra, survived=survived, num_rounds=3)
    path = tmp_path / "f.parquet"
    write_table(table, path, {"source": "toy", "num_rounds": 3})
    schema = pq.read_schema(path)
    assert schema.names == [f.name for f in BASE_SCHEMA] + extra + ["survived", "label"]
    assert str(schema.field("layer").type) == "dictionary<values=string, indices=int16, ordered=0>"
    assert str(schema.field("survived").type) == "int8" and str(schema.field("flat_idx").type) == "int32"
    assert table.num_rows == sum(i.numel for i in infos)
    assert table_metadata(path)["source"] == "toy" and table_metadata(path)["schema_version"] == 1
    back = read_table(path, columns=["layer_idx", "flat_idx", "w0", "survived", "label"])
    first = infos[3]
    rows = back.filter(pq.ParquetFile(path).read(columns=["layer_idx"]).column(0).to_numpy() == 3)
    assert torch.equal(torch.from_numpy(rows.column("w0").to_numpy()).view(first.shape), feats[first.name]["w0"])
    assert torch.equal(torch.from_numpy(rows.column("survived").to_numpy()).view(first.shape), survived[first.name])
    assert abs(rows.column("label").to_numpy()[0] - rows.column("survived").to_numpy()[0] / 3) < 1e-7


def test_pool_tables_appends_other_sources_after_this_one(tiny_data, tmp_path) -> None:
    cfg = FeaturesConfig(gradient_batch_size=32, gradient_max_batches=1, extra=[])
    paths = {}
    for arch, rounds in (("resnet18", 3), ("vgg16_bn", 5)):
        infos, feats = weight_features(build_model(arch, num_classes=4, width=4, input_size=32, seed=0), tiny_data,
                                       cfg, device=CPU, seed=0)
        survived = {i.name: torch.randint(0, rounds + 1, i.shape, dtype=torch.int8) for i in infos}
        paths[arch] = tmp_path / f"{arch}.parquet"
        write_table(feature_table(infos, feats, [], survived=survived, num_rounds=rounds), paths[arch],
                    {"source": arch, "num_rounds": rounds})
    own = read_table(paths["resnet18"])
    pooled = pool_tables(own, [paths["vgg16_bn"]], ["w0", "g0", "label", "survived"])
    other = read_table(paths["vgg16_bn"])
    assert pooled.num_rows == own.num_rows + other.num_rows and pooled.column_names == ["w0", "g0", "label", "survived"]
    assert pooled.slice(0, own.num_rows).column("w0").equals(own.column("w0"))  # this source's rows first, in order
    assert min(pooled.column("label").to_numpy()) >= 0.0 and max(pooled.column("label").to_numpy()) <= 1.0
    with pytest.raises(DataError, match="does not exist"):
        pool_tables(own, [tmp_path / "nope.parquet"], ["w0"])
    infos, feats = weight_features(build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0), tiny_data,
                                   cfg, device=CPU, seed=0)
    write_table(feature_table(infos, feats, []), tmp_path / "unlabelled.parquet", {"source": "x"})
    with pytest.raises(DataError, match="no 'label' column"):
        pool_tables(own, [tmp_path / "unlabelled.parquet"], ["w0"])


def test_read_rejects_foreign_and_corrupt_files(tmp_path) -> None:
    import pyarrow as pa

    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.raises(DataError, match="not an autos feature table"):
        read_table(foreign)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read"):
        read_table(corrupt)


@pytest.mark.parametrize("name", EXTRA_FEATURES.names())
def test_every_extra_feature_has_layer_shape(name: str) -> None:
    from autos.features import LayerInfo

    w0, g0 = torch.randn(4, 3, 3, 3), torch.randn(4, 3, 3, 3)
    out = EXTRA_FEATURES.get(name)(w0, g0, LayerInfo("l", 0, 2, "conv", (4, 3, 3, 3), 27, 36))
    assert out.shape == w0.shape and torch.isfinite(out).all()
