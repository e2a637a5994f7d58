"""Valid result rows with made-up numbers, for tests of what consumes rows (the cell store, MLflow, the report)."""

from __future__ import annotations

from typing import Any

from autos.sweep.cells import DENSE, CellKey
from autos.sweep.records import RunKey, RunRow


def make_row(key: CellKey, acc: float = 0.5, modifier: str | None = None, **fields: Any) -> RunRow:
    """A row of cell ``key`` (its ``modifier`` variant) at final accuracy ``acc``; mask fields unless dense."""
    values: dict[str, Any] = {
        **RunKey(key.target, key.method, key.sparsity, key.seed, modifier).row_fields(),
        "final_test_acc": acc, "best_test_acc": min(1.0, acc + 0.01), "best_epoch": 2, "final_test_loss": 1.0,
        "train_seconds": 0.5, "train_images_per_second": 100.0, "select_seconds": 0.25, "info": {"kind": "pai"},
        "epochs": 2,
    }
    if key.method != DENSE:
        values.update(achieved_sparsity=key.sparsity, achieved_density=1 - key.sparsity, min_layer_density=0.1,
                      empty_layers=[], layer_density={"features.0.weight": 1 - key.sparsity,
                                                      "fc.weight": 1 - key.sparsity / 2},
                      effective_sparsity=key.sparsity, collapsed=False,
                      layer_effective_density={"features.0.weight": 1 - key.sparsity, "fc.weight": 0.5},
                      pruned_nonzero_after_training=0)
    return RunRow.model_validate({**values, **fields})
