"""bench/controls_contrasts.py: the reference is averaged over its source runs within each seed before it is paired
with a control that reads no source; the interval is over seeds."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from controls_contrasts import contrasts  # noqa: E402


def _row(method: str, modifier: str, seed: int, source: str, acc: float) -> dict[str, str]:
    return {"method": method, "modifier": modifier, "sparsity": "0.98", "seed": str(seed), "source": source,
            "final_test_acc": str(acc)}


def test_reference_is_averaged_over_sources_then_paired_by_seed() -> None:
    rows = [_row("autos_densities", "", seed, str(src), 0.40 + 0.01 * seed + 0.02 * src)  # source mean: +0.02
            for seed in range(3) for src in range(3)]
    rows += [_row("magnitude_floor", "shuffle", seed, "", 0.40 + 0.01 * seed + d) for seed, d in enumerate(
        [0.00, 0.01, 0.02])]
    rows += [_row("magnitude_floor", "", 0, "", 0.9)]  # not a control of the reference: ignored
    (found,) = contrasts(rows, "autos_densities")
    assert found["other"] == "magnitude_floor+shuffle" and found["n_seeds"] == 3
    assert found["diff_pp"] == pytest.approx(1.0)  # differences 2, 1, 0 points
    assert found["ci_low_pp"] < 1.0 < found["ci_high_pp"]
