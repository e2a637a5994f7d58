"""AutoS: learned pruning at initialization from iterative rewind pruning.

Start at `docs/architecture.md` for where each concept lives.

Prune any PyTorch model (``autos.api``)::

    import autos
    masks = autos.prune(model, "snip", 0.9, data=loader)
    autos.apply(model, masks)    # masks hold through your own training loop
    autos.remove(model)          # make them permanent

``import autos`` stays cheap (no torch): the names above load ``autos.api`` on first use. It is loaded with
``importlib`` rather than an import statement on purpose: no pipeline stage uses this API, and the stages' DVC code
dependencies are the static import closure of their modules, this file included (tests/test_dvc_deps.py; for the
same reason there is no ``TYPE_CHECKING`` import of it here: type checkers see these names as ``Any``, import
them from ``autos.api`` for precise types).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("prune", "apply", "remove", "PrunedMasks", "LayerCollapseWarning", "CollapseError")

__all__ = ["CollapseError", "LayerCollapseWarning", "PrunedMasks", "__version__", "apply", "prune", "remove"]


def __getattr__(name: str) -> Any:
    """``autos.prune`` and the other ``autos.api`` names on first access (PEP 562), then cached here."""
    if name in _API:
        value = getattr(importlib.import_module("autos.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
