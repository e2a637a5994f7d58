"""Run the CPU benchmarks on the default profile (about 2 hours on 2 cores: the default study alone is about one);
results in bench/results/. GPU-only: bench/gpu_check.py (on a CUDA machine). Longer studies, run on their own:
bench/paper_shape.py (the paper profile's shape), bench/seed_noise.py, bench/residual_label.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script, args in [("throughput.py", []), ("methods_cost.py", []), ("paper_cost.py", []),
                     ("study_time.py", ["configs/smoke.yaml"]), ("study_time.py", ["params.yaml"])]:
    print(f"== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)
