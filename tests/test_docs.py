"""docs/methods.md is generated from the registry and must be in sync with the code."""

from __future__ import annotations

from pathlib import Path

from autos.api.methods_doc import render
from autos.pruners import PRUNERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "methods.md"


def test_methods_doc_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: python -m autos.api.methods_doc > docs/methods.md"


def test_every_method_documented_with_its_settings() -> None:
    text = DOC.read_text()
    for name in PRUNERS.names():
        assert f"\n## {name}\n" in text
        for field in PRUNERS.get(name).Settings.model_fields:
            assert f"`{field}" in text or f".{field}`" in text
