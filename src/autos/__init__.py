"""AutoS: learned pruning at initialization from iterative rewind pruning.

Start at `docs/architecture.md` for where each concept lives.
"""

__version__ = "0.1.0"
