"""The report's figures on synthetic rows: PNG + SVG written and byte-identical across builds, chance and dense
lines, a log density axis labelled in sparsity, error bars only where there is more than one seed, per-method
offsets, the per-layer density figure in network order, the sanity-check panels, a legend entry for the
layer-collapse marker and the source named in every title."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from autos.registry import MethodRecord
from autos.report import (
    CHANCE_GID,
    COLLAPSE_LABEL,
    DENSE_GID,
    Source,
    TargetResults,
    accuracy_figure,
    build_report,
    irp_curve_figure,
    irp_curve_frame,
    layer_density_figure,
    layer_density_frame,
    relative_links,
    sanity_figure,
    source_ticket_figure,
    target_title,
)
from autos.sweep.records import RunRow

LAYERS = ["features.0.weight", "features.3.weight", "features.7.weight", "classifier.weight"]
METHODS = {"autos": 0.60, "synflow": 0.55, "snip": 0.50, "random": 0.40, "irp": 0.65}
SPARSITIES = [0.9, 0.98, 0.995]
SEEDS = [0, 1, 2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TITLES = {"autos": "AutoS", "synflow": "SynFlow", "snip": "SNIP", "random": "Random", "irp": "IRP"}
RECORDS = {name: MethodRecord(name=name, title=title, kind="trained" if name == "irp" else "pai", needs_data=False,
                              reads_scorer=False, settings=object, module="tests") for name, title in TITLES.items()}
SOURCE = Source(model="resnet18", dataset="tiny_imagenet", width=8)
SOURCE_TITLE = "ResNet-18 (width 8) on Tiny ImageNet"


def _density(method: str, sparsity: float, index: int) -> float:
    """Per-layer density: AutoS keeps more in the first layer, SNIP empties the last one at 99.5%."""
    if method == "snip" and sparsity == 0.995 and index == len(LAYERS) - 1:
        return 0.0
    return min(1.0, (1 - sparsity) * (1 + index if method == "autos" else 1 + 0.5 * (len(LAYERS) - index)))


def _row(method: str, sparsity: float, seed: int, modifier: str = "") -> dict[str, Any]:
    acc = METHODS[method] - (sparsity - 0.9) * 3 + 0.01 * seed - (0.2 if modifier else 0.0)
    return {"target": "vgg", "method": method, "modifier": modifier, "sparsity": sparsity, "seed": seed,
            "final_test_acc": acc, "best_test_acc": acc + 0.01, "best_epoch": 1, "final_test_loss": 1.0, "epochs": 2,
            "achieved_sparsity": sparsity, "effective_sparsity": sparsity,
            "collapsed": method == "snip" and sparsity == 0.995,
            "layer_density": {name: _density(method, sparsity, i) for i, name in enumerate(LAYERS)}}


def _raw(with_modifiers: bool = True) -> dict[str, Any]:
    rows = [{"target": "vgg", "method": "dense", "modifier": "", "sparsity": 0.0, "seed": s,
             "final_test_acc": 0.9 + 0.005 * s, "best_test_acc": 0.91, "best_epoch": 2, "final_test_loss": 0.5,
             "epochs": 2} for s in SEEDS]
    for method in METHODS:
        seeds = SEEDS[:1] if method == "irp" else SEEDS  # one seed: no error bar, no ± 0
        rows += [_row(method, sparsity, seed) for sparsity in SPARSITIES for seed in seeds]
    if with_modifiers:
        rows += [_row("autos", sparsity, seed, modifier) for modifier in ("shuffle", "invert")
                 for sparsity in SPARSITIES for seed in SEEDS]
    return {"target": "vgg", "spec": {"model": "vgg16_bn", "width": 64, "dataset": "cifar10", "epochs": None},
            "dataset": {"name": "cifar10", "train_images": 100, "test_images": 50, "num_classes": 10,
                        "image_size": 32}, "rows": rows}


def _payload(with_modifiers: bool = True) -> TargetResults:
    return TargetResults.from_json(_raw(with_modifiers))


def _rows(with_modifiers: bool = True) -> tuple[RunRow, ...]:
    return _payload(with_modifiers).rows


def _legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_target_title_from_spec() -> None:
    assert target_title("vgg", _payload().spec) == "VGG-16 on CIFAR-10"
    spec = {"model": "resnet18", "width": 16, "dataset": "tiny_imagenet"}
    assert target_title("r", spec) == "ResNet-18 (width 16) on Tiny ImageNet"
    assert target_title("r", None) == "r"


def test_accuracy_figure_axes_and_reference_lines() -> None:
    fig = accuracy_figure(_rows(), title="VGG-16 on CIFAR-10", records=RECORDS, num_classes=10)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left > right  # density decreases to the right: sparser to the right
    assert [t.get_text() for t in ax.get_xticklabels()] == ["90%", "98%", "99.5%"]
    assert list(ax.get_xticks()) == pytest.approx([0.1, 0.02, 0.005])
    lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    chance = lines[CHANCE_GID]
    assert list(chance.get_ydata()) == [10.0, 10.0] and chance.get_linestyle() == "--"
    assert list(lines[DENSE_GID].get_ydata()) == pytest.approx([90.5, 90.5])
    assert ax.get_title() == "VGG-16 on CIFAR-10"
    labels = ax.get_legend().get_texts()
    assert {"AutoS", "SynFlow", "SNIP", "Random", "IRP"} <= {t.get_text() for t in labels}
    assert not any("+" in t.get_text() for t in labels)  # modifier variants live in the sanity figure
    assert "one seed (no error bar)" in {t.get_text() for t in labels}
    # one error-bar container per method with more than one seed (IRP ran one seed: no bar, not a ± 0 bar)
    assert len(ax.containers) == len(METHODS) - 1
    # methods at the same sparsity are drawn at distinct x offsets, with distinct markers
    series = [line for line in ax.get_lines() if line.get_label() in {"AutoS", "SynFlow", "SNIP", "Random"}]
    firsts = [line.get_xdata()[0] for line in series]
    assert len(set(firsts)) == len(series) and all(abs(x / 0.1 - 1) < 0.2 for x in firsts)
    assert len({line.get_marker() for line in series}) == len(series)


def test_no_chance_line_without_class_count() -> None:
    fig = accuracy_figure(_rows(), title="t", records=RECORDS)
    assert CHANCE_GID not in {line.get_gid() for line in fig.axes[0].get_lines()}


def test_layer_density_figure_in_network_order() -> None:
    rows = _rows()
    frame = layer_density_frame(rows)
    assert list(frame[(frame["label"] == "autos") & (frame["sparsity"] == 0.9)]["layer"]) == LAYERS
    fig = layer_density_figure(rows, title="VGG-16 on CIFAR-10", records=RECORDS)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == [n.removesuffix(".weight") for n in LAYERS]
    assert "99.5% sparsity" in ax.get_title()
    autos = next(line for line in ax.get_lines() if line.get_label() == "AutoS")
    assert list(autos.get_ydata()) == pytest.approx([_density("autos", 0.995, i) for i in range(len(LAYERS))])
    assert [round(x) for x in autos.get_xdata()] == list(range(len(LAYERS)))
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert "empty layer (density 0)" in legend and "uniform (0.5% kept)" in legend
    assert layer_density_figure([r for r in rows if r.method == "dense"], title="t", records=RECORDS) is None


def test_sanity_figure_only_with_modifiers() -> None:
    fig = sanity_figure(_rows(), title="t", records=RECORDS, num_classes=10)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["AutoS"]
    assert {t.get_text() for t in visible[0].get_legend().get_texts()} == {"own mask", "shuffle", "invert"}
    assert sanity_figure(_rows(with_modifiers=False), title="t", records=RECORDS) is None


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*")) if p.is_file()}


def test_figures_written_as_png_and_svg_and_reproducible(tmp_path: Path) -> None:
    curve = {"rounds": [{"round": r, "density": 0.5 ** r, "final_test_acc": 0.9 - 0.05 * r} for r in range(3)]}
    first = build_report({"vgg": _payload()}, curve, None, tmp_path / "a", records=RECORDS, source=SOURCE)
    build_report({"vgg": _payload()}, curve, None, tmp_path / "b", records=RECORDS, source=SOURCE)
    names = {p.relative_to(tmp_path / "a").as_posix() for p in first}
    for stem in ("vgg", "vgg_layers", "vgg_sanity", "irp_curve"):
        png, svg = tmp_path / "a" / "figures" / f"{stem}.png", tmp_path / "a" / "svg" / f"{stem}.svg"
        assert f"figures/{stem}.png" in names and f"svg/{stem}.svg" in names
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5_000
        text = svg.read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 5_000
        assert "<dc:date>" not in text  # no timestamp
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")  # every file, SVG and PNG included
    page = (tmp_path / "a" / "vgg.md").read_text()
    assert page.startswith("# vgg — VGG-16 on CIFAR-10")
    assert {"figures/vgg.png", "svg/vgg.svg", "figures/vgg_layers.png", "svg/vgg_layers.svg",
            "figures/vgg_sanity.png"} <= set(relative_links(page))
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert all((tmp_path / "a" / link).is_file() for link in relative_links(summary))
    assert "figures/vgg_layers.png" in relative_links(summary) and "vgg_layers.csv" in relative_links(summary)


def test_layer_collapse_has_a_legend_entry() -> None:
    # SNIP collapsed at 99.5% (every seed): an x over its point, and one legend entry saying what the x means
    ax = accuracy_figure(_rows(), title="t", records=RECORDS, num_classes=10).axes[0]
    assert _legend(ax).count(COLLAPSE_LABEL) == 1
    assert _legend(ax)[-2:] == [COLLAPSE_LABEL, "one seed (no error bar)"]  # after the methods, before the notes
    marks = [c for c in ax.collections if c.get_label() == COLLAPSE_LABEL]
    assert len(marks) == 1 and len(marks[0].get_offsets()) == 1  # one collapsed cell: SNIP at 99.5%
    # no collapse, no entry
    rows = [r.model_copy(update={"collapsed": False}) for r in _rows()]
    assert COLLAPSE_LABEL not in _legend(accuracy_figure(rows, title="t", records=RECORDS).axes[0])
    # the sanity panels too: AutoS + shuffle collapsed at 99.5%
    rows = [r.model_copy(update={"collapsed": r.modifier == "shuffle" and r.sparsity == 0.995}) for r in _rows()]
    (panel,) = [a for a in sanity_figure(rows, title="t", records=RECORDS).axes if a.get_visible()]
    assert _legend(panel) == ["own mask", "shuffle", "invert", COLLAPSE_LABEL]


def test_figures_name_the_source() -> None:
    rows = _rows()
    accuracy = accuracy_figure(rows, title="VGG-16 on CIFAR-10", records=RECORDS, source=SOURCE).axes[0]
    assert accuracy.get_title() == f"VGG-16 on CIFAR-10\nAutoS source: {SOURCE_TITLE}"
    layers = layer_density_figure(rows, title="VGG-16 on CIFAR-10", records=RECORDS, source=SOURCE).axes[0]
    assert layers.get_title().endswith(f"99.5% sparsity\nAutoS source: {SOURCE_TITLE}")
    sanity = sanity_figure(rows, title="VGG-16 on CIFAR-10", records=RECORDS, source=SOURCE)
    assert sanity._suptitle.get_text().endswith(f"\nAutoS source: {SOURCE_TITLE}")


def test_report_figures_name_the_source(tmp_path: Path) -> None:
    curve = {"rounds": [{"round": r, "density": 0.5 ** r, "final_test_acc": 0.9 - 0.05 * r} for r in range(3)]}
    ticket = {"density": 0.1, "overlap": {"autos": 0.61, "abs_w0": 0.6, "random": 0.1},
              "layers": [{"layer": "conv1.weight", "weights": 432, "irp_ticket": 0.4, "autos": 0.1, "abs_w0": 0.2}]}
    curve_ax = irp_curve_figure(irp_curve_frame(curve), SOURCE).axes[0]
    assert curve_ax.get_title() == f"source IRP curve: {SOURCE_TITLE}"
    assert source_ticket_figure(ticket, SOURCE).axes[0].get_title() == (
        f"Source: per-layer density at the IRP ticket's 10% density\n{SOURCE_TITLE}")
    # build_report hands the source to every figure: each SVG differs from the one built without it (the SVG's text
    # is drawn as paths, so the title itself cannot be searched for in it)
    build_report({"vgg": _payload()}, curve, None, tmp_path / "named", ticket, records=RECORDS, source=SOURCE)
    build_report({"vgg": _payload()}, curve, None, tmp_path / "bare", ticket, records=RECORDS)
    svgs = sorted((tmp_path / "named" / "svg").glob("*.svg"))
    assert [p.stem for p in svgs] == ["irp_curve", "source_ticket", "vgg", "vgg_layers", "vgg_sanity"]
    for svg in svgs:
        assert svg.read_bytes() != (tmp_path / "bare" / "svg" / svg.name).read_bytes(), svg.name
