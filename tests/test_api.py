"""The public API: ``autos.prune`` / ``autos.apply`` / ``autos.remove`` on any nn.Module (a torchvision ResNet-18,
a small CNN of the user's), the AutoS scorer's stored features config, and AutoS's layer-by-layer scoring."""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings

import pytest
import torch
import torchvision
from fast_settings import FAST_SETTINGS, fast_settings
from torch import nn
from torch.nn.utils import prune as torch_prune

import autos
from autos.api.adapters import as_image_data
from autos.config import FeaturesConfig, TrainRecipe
from autos.features import weight_features
from autos.masking import kept_count, prunable_parameters
from autos.pruners import PRUNERS
from autos.pruners.autos_scorer import AutoS, AutoSSettings
from autos.pruners.base import PruneContext
from autos.scorer import build_scorer, load_scorer, predict, required_extra, save_scorer

SPARSITY = 0.8
# the one table of fast method settings (tests/fast_settings.py), with one override: SynFlow in one round (the API
# is under test here, not the iterative schedule, which test_pruners_selection.py checks)
FAST = {**FAST_SETTINGS, "synflow": fast_settings("synflow", iterations=1)}
SINGLE_SHOT = ["random", "random_erk", "magnitude", "snip", "grasp", "synflow", "prospr", "autos"]


class SmallCNN(nn.Module):
    """A user's own model: nothing in it is registered with autos."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _narrow_resnet18(divisor: int = 8) -> nn.Module:
    """torchvision's ResNet-18 (its ResNet and BasicBlock classes: module names, in-place ReLUs, downsample
    shortcuts, ``fc``) with every conv, BN and linear ``divisor`` times narrower: 8 to 64 channels, ~1/64 of the
    11.7 M weights, so that every method runs on torchvision's graph in well under a second."""
    model = torchvision.models.resnet18(num_classes=10)
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.Conv2d):
            cin = m.in_channels if m.in_channels == 3 else m.in_channels // divisor  # the RGB input stays
            new: nn.Module = nn.Conv2d(cin, m.out_channels // divisor, m.kernel_size, m.stride, m.padding,
                                       bias=m.bias is not None)
        elif isinstance(m, nn.BatchNorm2d):
            new = nn.BatchNorm2d(m.num_features // divisor)
        elif isinstance(m, nn.Linear):
            new = nn.Linear(m.in_features // divisor, m.out_features)  # the 10 classes stay
        else:
            continue
        model.set_submodule(name, new)
    return model


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return _narrow_resnet18() if kind == "resnet18" else SmallCNN()


def _images(n: int = 40, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images, as a user's normalised loader yields them; every class 4 times (GraSP samples per class)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 10


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A tiny untrained-but-valid scorer, saved with the features config it stands for (g0 from one batch)."""
    directory = tmp_path_factory.mktemp("scorer")
    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    save_scorer(directory, net.eval(), "mlp", settings, {"source": "test"},
                features=FeaturesConfig(gradient_max_batches=1, gradient_batch_size=16))
    return directory


def _settings(method: str, scorer_dir) -> dict:  # noqa: ANN001
    return {"scorer_dir": str(scorer_dir)} if method == "autos" else dict(FAST.get(method, {}))


def _expected_kept(method: str, masks: dict[str, torch.Tensor], sparsity: float) -> int:
    """select_mask's convention: round-half-up of density * N, globally, or per layer for a layer-wise method."""
    density = 1.0 - sparsity
    if method == "random":  # uniform random is layer-wise by definition
        return sum(kept_count(m.numel(), density) for m in masks.values())
    return kept_count(sum(m.numel() for m in masks.values()), density)  # ERK too: its counts sum to this


# --------------------------------------------------------------------------- every single-shot method, two models


@pytest.fixture(scope="module")
def pruned(scorer_dir):  # noqa: ANN001, ANN201
    """Each (model, method) pruned once, with the model's state before and after (shared by the checks below)."""
    cache: dict[tuple[str, str], tuple[nn.Module, dict, autos.PrunedMasks]] = {}

    def get(kind: str, method: str) -> tuple[nn.Module, dict, autos.PrunedMasks]:
        if (kind, method) not in cache:
            model = _model(kind)
            before = {k: v.clone() for k, v in model.state_dict().items()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", autos.LayerCollapseWarning)  # e.g. SynFlow may empty a shortcut
                result = autos.prune(model, method, SPARSITY, data=_images(), settings=_settings(method, scorer_dir))
            cache[kind, method] = (model, before, result)
        return cache[kind, method]

    return get


@pytest.mark.parametrize("kind", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("method", SINGLE_SHOT)
def test_exact_sparsity_and_the_model_is_untouched(pruned, kind: str, method: str) -> None:  # noqa: ANN001
    model, before, result = pruned(kind, method)
    assert list(result) == list(prunable_parameters(model))  # a mapping name -> mask, the classifier included
    assert all(m.dtype == torch.bool and m.shape == model.get_parameter(n).shape for n, m in result.items())
    kept = sum(int(m.sum()) for m in result.values())
    assert kept == _expected_kept(method, dict(result), SPARSITY)
    assert math.isclose(result.sparsity, 1 - kept / sum(m.numel() for m in result.values()))
    assert result.method == method and result.requested_sparsity == SPARSITY
    assert set(result.layer_density) == set(result) and result.effective_sparsity is not None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # not modified


def _train_a_little(model: nn.Module, steps: int = 2) -> None:
    """A plain user loop: SGD with momentum and weight decay, nothing autos-specific."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = _images(8)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("kind,method", [("small_cnn", m) for m in SINGLE_SHOT] + [("resnet18", "snip")])
def test_masks_hold_through_a_plain_training_loop_and_remove(pruned, kind: str, method: str) -> None:  # noqa: ANN001
    model, before, masks = pruned(kind, method)
    autos.apply(model, masks)
    _train_a_little(model)
    for name, mask in masks.items():
        module, param = model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]
        assert torch_prune.is_pruned(module) and hasattr(module, f"{param}_orig")
        assert int(torch.count_nonzero(getattr(module, param)[~mask])) == 0  # the effective weight
    trained = dict(model.named_parameters())
    assert any(not torch.equal(trained[f"{n}_orig"], before[n]) for n in masks)  # it did train
    autos.remove(model)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert isinstance(params[name], nn.Parameter) and f"{name}_orig" not in params
        assert int(torch.count_nonzero(params[name].detach()[~mask])) == 0
    assert not any(torch_prune.is_pruned(m) for m in model.modules())


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("sparsity", [0, 1, 1.5, -0.1, float("nan")])
def test_sparsity_outside_the_open_unit_interval_is_refused(sparsity: float) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\).*got " + str(sparsity).replace(".", r"\.")):
        autos.prune(SmallCNN(), "magnitude", sparsity)


def test_unknown_method_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'snipp'; allowed: autos, dissipating, grasp"):
        autos.prune(SmallCNN(), "snipp", 0.5)


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'batchsize' \(allowed: scope, iterations, invert, "
                                         r"layer_floor, num_batches, batch_size, train_mode\)"):
        autos.prune(SmallCNN(), "snip", 0.5, data=_images(), settings={"batchsize": 8})
    with pytest.raises(ValueError, match="scope: .*'everywhere'"):
        autos.prune(SmallCNN(), "magnitude", 0.5, settings={"scope": "everywhere"})
    with pytest.raises(ValueError, match="num_batches"):
        autos.prune(SmallCNN(), "snip", 0.5, data=_images(), settings={"num_batches": 0})


@pytest.mark.parametrize("method", sorted(name for name in PRUNERS.names() if PRUNERS.get(name).needs_data))
def test_methods_that_need_data_say_so(method: str) -> None:
    with pytest.raises(ValueError, match=f"method '{method}' needs data"):
        autos.prune(SmallCNN(), method, 0.5)


def test_a_data_free_method_that_needs_the_input_shape_asks_for_it() -> None:
    with pytest.raises(ValueError, match=r"input_shape=\(channels, height, width\)"):
        autos.prune(SmallCNN(), "synflow", 0.5, settings={"iterations": 1})
    result = autos.prune(SmallCNN(), "synflow", 0.5, settings={"iterations": 1}, input_shape=(3, 32, 32))
    assert result.effective_sparsity is not None
    assert autos.prune(SmallCNN(), "magnitude", 0.5).effective_sparsity is None  # no shape: not computed


def test_apply_refuses_masks_that_do_not_fit() -> None:
    model = SmallCNN()
    with pytest.raises(KeyError, match="no module 'nope'"):
        autos.apply(model, {"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        autos.apply(model, {"head.weight": torch.ones(3, 3, dtype=torch.bool)})
    assert not any(torch_prune.is_pruned(m) for m in model.modules())  # nothing applied


# --------------------------------------------------------------------------- collapse, classifier, data forms


def test_collapse_warns_naming_the_layer_and_is_recorded() -> None:
    model = SmallCNN()
    with torch.no_grad():
        model.features[4].weight.mul_(1e-6)  # its 1152 magnitudes are the lowest of 1528: 80% removes them all
    with pytest.warns(autos.LayerCollapseWarning, match=r"features\.4\.weight"):
        result = autos.prune(model, "magnitude", 0.8, input_shape=(3, 32, 32), on_collapse="warn")
    assert result.collapsed and "features.4.weight" in result.collapsed_layers
    assert result.layer_density["features.4.weight"] == 0.0 and result.effective_sparsity == 1.0


def test_include_classifier_false_leaves_the_last_linear_out() -> None:
    result = autos.prune(SmallCNN(), "magnitude", 0.5, include_classifier=False)
    assert "head.weight" not in result and "features.0.weight" in result


def test_data_forms_are_equivalent() -> None:
    x, y = _images(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    model = SmallCNN()
    from_pair = autos.prune(model, "snip", 0.5, data=(x, y), settings={"batch_size": 16})
    from_loader = autos.prune(model, "snip", 0.5, data=loader, settings={"batch_size": 16})
    from_splits = autos.prune(model, "snip", 0.5, data=(loader, (x[:8], y[:8])), settings={"batch_size": 16})
    for other in (from_loader, from_splits):
        assert all(torch.equal(from_pair[n], other[n]) for n in from_pair)


def test_float_images_reach_the_model_unchanged_and_uint8_as_unit_range() -> None:
    from autos.training.batches import Normalizer

    x, y = _images(4)
    data = as_image_data((x, y))
    assert torch.equal(Normalizer.of(data, torch.device("cpu"))(data.train_x, False), x)
    raw = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    data = as_image_data((raw, y))
    assert torch.allclose(Normalizer.of(data, torch.device("cpu"))(data.train_x, False), raw.float() / 255)


def test_a_method_that_trains_runs_through_the_api() -> None:
    x, y = _images(32)
    result = autos.prune(SmallCNN(), "kstarts", 0.5, data=((x, y), (x[:8], y[:8])),
                         settings={"k": 2, "select_epochs": 1}, recipe=TrainRecipe(epochs=1, batch_size=16))
    assert result.state_dict is None or set(result.state_dict) >= set(result)  # weights to train from, if moved
    kept = sum(int(m.sum()) for m in result.values())
    assert abs(kept - _expected_kept("kstarts", dict(result), 0.5)) <= len(result)  # layer-wise rounding


# --------------------------------------------------------------------------- AutoS: the stored features config


def test_autos_uses_the_features_config_stored_with_the_scorer(scorer_dir, tmp_path, caplog) -> None:  # noqa: ANN001
    x, y = _images(8)
    ctx = PruneContext(model=SmallCNN(), data=as_image_data((x, y)), recipe=TrainRecipe(), device=torch.device("cpu"),
                       seed=0, num_classes=10)
    method = AutoS(AutoSSettings(scorer_dir=str(scorer_dir)))
    assert method.features_config(ctx) == FeaturesConfig(gradient_max_batches=1, gradient_batch_size=16)
    capped = dataclasses.replace(ctx, features=FeaturesConfig(gradient_max_batches=3))
    assert method.features_config(capped).gradient_max_batches == 3  # an explicit cap on the g0 pass wins
    assert method.features_config(capped).gradient_batch_size == 16  # the definition stays the scorer's
    net, name, settings, meta = load_scorer(scorer_dir)
    old = tmp_path / "old"
    save_scorer(old, net, name, settings, {k: v for k, v in meta.items() if k != "features"})
    with caplog.at_level(logging.WARNING):
        assert AutoS(AutoSSettings(scorer_dir=str(old))).features_config(ctx) == FeaturesConfig()
    assert "records no features config" in caplog.text


def test_autos_scores_stream_layer_by_layer_with_identical_results(scorer_dir) -> None:  # noqa: ANN001
    """The streamed scores equal, bit for bit, the all-layers-at-once computation they replaced: every layer's
    features built, one [N, F] matrix, one chunked predict (chunks of 1000 rows here, so chunks span layers)."""
    net, _, settings, meta = load_scorer(scorer_dir)
    net.predict_batch_size = 1000
    x, y = _images(16)
    data, cfg = as_image_data((x, y)), FeaturesConfig(**meta["features"])
    model = _model("small_cnn")
    _, features = weight_features(model, data, cfg, device=torch.device("cpu"), seed=0,
                                  extra=required_extra(settings))
    matrix = torch.cat([torch.stack([f[c].reshape(-1).float() for c in settings.inputs], dim=1)
                        for f in features.values()])
    reference = torch.from_numpy(predict(net, matrix, batch_size=1000))
    ctx = PruneContext(model=model, data=data, recipe=TrainRecipe(), device=torch.device("cpu"), seed=0,
                       num_classes=10, scorer=(net, "mlp", settings, meta))
    streamed = AutoS().score(ctx)
    assert torch.equal(torch.cat([s.flatten() for s in streamed.values()]), reference)
    assert [tuple(s.shape) for s in streamed.values()] == [tuple(f["w0"].shape) for f in features.values()]


def test_autos_within_layer_random_keeps_the_scorers_layer_counts_with_random_positions(scorer_dir) -> None:  # noqa: ANN001
    x, y = _images(16)
    ctx = PruneContext(model=_model("small_cnn"), data=as_image_data((x, y)), recipe=TrainRecipe(),
                       device=torch.device("cpu"), seed=3, num_classes=10)
    by_score = AutoS(AutoSSettings(scorer_dir=str(scorer_dir))).prune(ctx, 0.1)
    method = AutoS(AutoSSettings(scorer_dir=str(scorer_dir), within_layer="random"))
    drawn = method.prune(ctx, 0.1)
    assert {n: int(m.sum()) for n, m in drawn.masks.items()} == {n: int(m.sum()) for n, m in by_score.masks.items()}
    assert any(not torch.equal(drawn.masks[n], by_score.masks[n]) for n in drawn.masks)  # other weights
    again = method.prune(ctx, 0.1)
    assert all(torch.equal(again.masks[n], drawn.masks[n]) for n in drawn.masks)  # seeded by the context
    other_seed = method.prune(dataclasses.replace(ctx, seed=4), 0.1)
    assert any(not torch.equal(other_seed.masks[n], drawn.masks[n]) for n in drawn.masks)
    assert drawn.scores is None and by_score.scores is not None  # nothing for the invert modifier to re-rank
    assert AutoSSettings().model_dump() == {"scope": "global", "scorer_dir": "data/scorer/0"}  # defaults unrecorded


def test_progress_reaches_stderr_when_logging_is_not_configured_and_only_then(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from autos.api.progress import visible_progress

    root, autos_logger = logging.getLogger(), logging.getLogger("autos")
    monkeypatch.setattr(root, "handlers", [])  # as in a plain script: nothing configured (pytest adds its own)
    with visible_progress():
        logging.getLogger("autos.pruners.synflow").info("round 3/100")
    assert "round 3/100" in capsys.readouterr().err
    assert autos_logger.handlers == [] and autos_logger.level == logging.NOTSET  # as it was
    autos_logger.setLevel(logging.WARNING)  # a user who configured it keeps their setup
    try:
        with visible_progress():
            logging.getLogger("autos.pruners.synflow").info("round 4/100")
        assert "round 4/100" not in capsys.readouterr().err
    finally:
        autos_logger.setLevel(logging.NOTSET)
