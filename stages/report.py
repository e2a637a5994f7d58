"""DVC stage: the study report from every target's results, the IRP curve and the scorer metrics.

The stage's work is ``autos.pipeline.report.run`` (outputs, MLflow runs and details are documented there).
"""

from __future__ import annotations

from autos.pipeline.context import parser, run_stage
from autos.pipeline.report import run

if __name__ == "__main__":
    run_stage("report", run, parser(__doc__))
