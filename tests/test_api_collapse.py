"""autos.prune on masks that cut the network (on_collapse: repair by default, warn, error; the warning names the
layer that cut it, not the layers downstream of it), on bad input (one sentence naming the problem and the fix),
and the CLI's data-free methods, which need no --data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import autos
from autos.api.cli import EXIT_COLLAPSE, EXIT_USAGE, main
from autos.api.collapse import CollapseError, LayerCollapseWarning
from autos.masking import kept_count


class Bottleneck(nn.Module):
    """A CNN whose middle conv has weights 1000x smaller than the others: global |w| pruning empties it, and every
    layer after it then carries no input -> output path."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)
        with torch.no_grad():
            self.b.weight.mul_(1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x))))))
        return self.head(x.mean((2, 3)))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return Bottleneck()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(20, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 10


def test_warn_names_the_layer_that_cut_the_network_not_the_ones_after_it() -> None:
    with pytest.warns(LayerCollapseWarning) as caught:
        result = autos.prune(_model(), "magnitude", 0.9, _data(), on_collapse="warn")
    message = str(caught[0].message)
    # the layers before and after it keep weights, but none on a path: they are counted, not listed
    assert "layer 'b.weight' keeps no weight" in message and "3 other layer(s) are left without a path" in message
    assert "c.weight" not in message and "head.weight" not in message
    assert result.collapsed and result.cut_layer == "b.weight" and result.repair_layer_floor is None
    assert set(result.collapsed_layers) == {"a.weight", "b.weight", "c.weight", "head.weight"}


def test_error_refuses_the_mask() -> None:
    with pytest.raises(CollapseError, match="layer 'b.weight' keeps no weight"):
        autos.prune(_model(), "magnitude", 0.9, _data(), on_collapse="error")


@pytest.mark.parametrize("method", ["magnitude", "snip"])
def test_repair_is_the_default_keeps_the_budget_and_says_what_it_did(method: str) -> None:
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerCollapseWarning)  # repaired: no warning
        result = autos.prune(model, method, 0.9, _data(), settings={"batch_size": 10} if method == "snip" else None)
    total = sum(m.numel() for m in result.values())
    assert not result.collapsed and result.cut_layer is None and all(bool(m.any()) for m in result.values())
    assert sum(int(m.sum()) for m in result.values()) == kept_count(total, 0.1)  # the same budget
    assert result.info["repair_layer_floor"] == result.repair_layer_floor in (0.25, 0.5, 1.0)
    with pytest.warns(LayerCollapseWarning):  # the method's own mask: cut, so the repair above was needed
        assert autos.prune(model, method, 0.9, _data(), settings={"batch_size": 10} if method == "snip" else None,
                           on_collapse="warn").collapsed
    assert result.repair_layer_floor is not None


def test_a_selection_a_floor_cannot_repair_warns_that_it_cannot() -> None:
    # layer-wise magnitude keeps a few weights in every layer, on no common path at 98%: no floor applies
    with pytest.warns(LayerCollapseWarning, match="has no layer_floor to repair it with .or selects layer-wise."):
        result = autos.prune(_model(), "magnitude", 0.98, _data(), settings={"scope": "layerwise"})
    assert result.collapsed and result.cut_layer == "a.weight" and result.repair_layer_floor is None


def test_bad_on_collapse_is_named() -> None:
    with pytest.raises(ValueError, match="on_collapse must be one of 'repair', 'warn', 'error', got 'ignore'"):
        autos.prune(_model(), "magnitude", 0.9, _data(), on_collapse="ignore")  # type: ignore[arg-type]


BAD_INPUT = {
    "no prunable weight": (lambda: nn.Sequential(nn.BatchNorm2d(3), nn.ReLU()), None,
                           "has no prunable weight"),
    "channels-last images": (_model, (torch.randn(20, 8, 8, 3), torch.arange(20) % 10),
                             r"look channels-last \(N, H, W, C\): pass images.permute\(0, 3, 1, 2\)"),
    "grayscale for an RGB model": (_model, (torch.randn(20, 1, 8, 8), torch.arange(20) % 10),
                                   r"images.repeat\(1, 3, 1, 1\) for grayscale"),
    "labels past the outputs": (_model, (torch.randn(20, 3, 8, 8), torch.arange(20)),
                                r"labels must be class indices in \[0, 10\) .* got labels from 0 to 19"),
    "negative labels": (_model, (torch.randn(20, 3, 8, 8), torch.arange(20) % 10 - 1),
                        r"got labels from -1 to 8"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_sentence_naming_problem_and_fix(case: str) -> None:
    model, data, message = BAD_INPUT[case]
    with pytest.raises(ValueError, match=message):
        autos.prune(model(), "magnitude", 0.9, data)


def test_cli_data_free_methods_need_no_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "masks.pt"
    assert main(["--model", "vgg16_bn", "--width", "4", "--method", "synflow", "--settings", "iterations=2",
                 "--num-classes", "10", "--input-shape", "3", "16", "16", "--sparsity", "0.9",
                 "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["method"] == "synflow" and summary["collapsed"] is False and summary["cut_layer"] is None
    assert main(["--model", "vgg16_bn", "--method", "snip", "--num-classes", "10", "--sparsity", "0.9",
                 "--out", str(tmp_path / "x.pt")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--data is required with --method snip" in err and "magnitude" in err and not (tmp_path / "x.pt").exists()


def test_cli_on_collapse_error_exits_3_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factory = tmp_path / "bottleneck_model.py"
    factory.write_text("from tests.test_api_collapse import _model\n\ndef make():\n    return _model()\n")
    out = tmp_path / "m.pt"
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        code = main(["--model", "bottleneck_model:make", "--method", "magnitude", "--input-shape", "3", "8", "8",
                     "--sparsity", "0.9", "--on-collapse", "error", "--out", str(out)])
    finally:
        sys.path.remove(str(tmp_path))
    assert code == EXIT_COLLAPSE and not out.exists()
    assert "layer 'b.weight' keeps no weight" in capsys.readouterr().err
