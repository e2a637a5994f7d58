"""DVC stage: per-weight initial features of the source model, labelled with IRP survival -> Parquet.

The stage's work is ``autos.pipeline.features.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.features import run

if __name__ == "__main__":
    run_stage("features", run, parser(__doc__, source_seed=True))
