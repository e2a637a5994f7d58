"""DVC stage: locate (or download) a dataset, check it, decode once to uint8 arrays + metadata.

The stage's work is ``autos.pipeline.prepare_data.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.prepare_data import run

if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--dataset", required=True)
    run_stage("prepare_data", run, p)
