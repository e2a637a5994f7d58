"""DVC stage: prune one target at init with every method x sparsity x seed, train, evaluate.

The stage's work is ``autos.pipeline.transfer.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.transfer import run

if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--target", required=True)
    run_stage("transfer", run, p)
