"""The DVC stage entry points (``python -m stages.<name>``).

Each stage imports the ``autos`` library from the ``src/`` folder beside it, ahead of the installed copy: the
editable install points at the workspace, while ``dvc exp run --temp`` / ``--queue`` run the stages in a copy of the
repository whose code is the experiment's own and must be the code that runs.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
