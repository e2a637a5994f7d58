"""DVC stage: train the AutoS scorer on the source feature table; evaluate it against trivial scorers.

The stage's work is ``autos.pipeline.train_scorer.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.train_scorer import run

if __name__ == "__main__":
    run_stage("train_scorer", run, parser(__doc__, source_seed=True))
