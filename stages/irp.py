"""DVC stage: iterative rewind pruning on the source model -> survival counts and the IRP curve.

The stage's work is ``autos.pipeline.irp.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.irp import run

if __name__ == "__main__":
    run_stage("irp", run, parser(__doc__, source_seed=True))
