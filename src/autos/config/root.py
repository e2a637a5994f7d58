"""The study's root folder: where the stages write and what relative paths in the params (``scorer.extra_tables``)
are relative to. Here, in a leaf module, so that config validation can resolve paths without importing
``autos.paths`` (which reads ``paths.yaml`` through this package); ``autos.paths`` re-exports it."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "AUTOS_ROOT"


def project_root() -> Path:
    """The study's root: ``$AUTOS_ROOT`` when set (tests and benches run a stage against another folder), else
    the current directory.

    DVC runs every stage in its ``wdir`` (here the folder holding dvc.yaml), so the current directory is the
    study's own copy also for ``dvc exp run --temp`` and ``--queue``. ``$DVC_ROOT`` is deliberately not read:
    for those runs DVC points it at the parent workspace, and a stage reading it wrote its outputs and MLflow
    runs there instead of into the experiment's copy.
    """
    return Path(os.environ.get(ROOT_ENV) or Path.cwd()).resolve()
