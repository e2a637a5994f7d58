"""The scorer and report packages: every re-exported name resolves, and looking the scorer registry up (which every
stage does when it validates its params) does not import the metrics' scipy / scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import pytest

import autos.report
import autos.scorer


@pytest.mark.parametrize("package", [autos.scorer, autos.report], ids=lambda p: p.__name__)
def test_every_exported_name_resolves(package) -> None:  # noqa: ANN001
    missing = [name for name in package.__all__ if getattr(package, name, None) is None]
    assert not missing


def test_lazy_metrics_are_the_metrics_module_functions() -> None:
    from autos.scorer import evaluate_ranking, metrics, trivial_baselines

    assert evaluate_ranking is metrics.evaluate_ranking and trivial_baselines is metrics.trivial_baselines
    with pytest.raises(AttributeError):
        autos.scorer.no_such_name  # noqa: B018


def test_registry_lookup_does_not_import_the_metrics_dependencies() -> None:
    code = (
        "import sys\n"
        "from autos.scorer import BASE_INPUTS, SCORERS, required_extra\n"
        "assert SCORERS.names() == ['mlp', 'paper'], SCORERS.names()\n"
        "heavy = sorted(m for m in ('scipy', 'sklearn', 'autos.scorer.metrics') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "from autos.scorer import evaluate_ranking\n"
        "assert 'autos.scorer.metrics' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
