"""Run every benchmark on the default profile (about 40 minutes on 2 cores); results in bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script, args in [("throughput.py", []), ("methods_cost.py", []), ("study_time.py", ["configs/smoke.yaml"]),
                     ("study_time.py", ["params.yaml"])]:
    print(f"== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)
