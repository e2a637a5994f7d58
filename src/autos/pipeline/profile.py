"""Run another study profile as a DVC experiment, leaving the workspace's params.yaml as it is:
``make study PROFILE=configs/controls.yaml`` (``python -m autos.pipeline.profile configs/controls.yaml``).

DVC reads a study's params from params.yaml; a profile is another set of values for the same keys. This runs
``dvc exp run --temp -n <profile> -S <section>=<values> ...`` with every top-level section of the profile that
differs from params.yaml (DVC's own mechanism: the experiment runs in a temporary copy, its params, metrics and
outputs are kept as an experiment ref), so the working tree stays clean. MLflow: unless ``MLFLOW_TRACKING_URI`` is
set, the experiment logs into this workspace's store (``mlflow.db`` here, by its absolute path), next to every other
experiment's runs. Then: ``dvc exp show``, and ``dvc exp apply <profile>`` + ``dvc checkout`` to bring its outputs,
report included, into the workspace.

The profile is validated first (``autos.study.load_study``): a bad profile fails here, in one message, before DVC
starts anything.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from autos.config import read_params
from autos.errors import AutosError
from autos.study import load_study
from autos.tracking import DB_NAME

EXIT_USAGE = 2


def set_params(profile: Any, current: Any) -> list[str]:
    """``-S section=<json>`` for every top-level section of ``profile`` that differs from ``current`` (sections
    only the workspace has are left to their defaults by the strict loader: a profile must spell out what it means,
    see ``tests/test_config.py``)."""
    args = []
    for section, value in profile.items():
        if isinstance(current, dict) and current.get(section) == value:
            continue
        args += ["-S", f"{section}={override_value(value)}"]
    return args


def override_value(value: Any) -> str:
    """``value`` in the override grammar ``dvc exp run -S`` parses (Hydra's): dicts with bare keys, lists, quoted
    strings, numbers, true/false/null."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{override_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def command(profile_path: Path, root: Path) -> tuple[list[str], dict[str, str]]:
    """The ``dvc exp run`` command line and its environment for ``profile_path``."""
    load_study(profile_path)  # every problem at once, before DVC runs anything
    profile, current = read_params(profile_path), read_params(root / "params.yaml")
    name = profile_path.stem
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{(root / DB_NAME).resolve()}")
    return [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name, *set_params(profile, current)], env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autos.pipeline.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path, help="a params file, e.g. configs/controls.yaml")
    parser.add_argument("--print", action="store_true", help="print the dvc command and stop")
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        cmd, env = command(args.profile, root)
    except AutosError as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print:
        print(" ".join(cmd))
        return 0
    done = subprocess.run(cmd, env=env, cwd=root).returncode
    if done == 0:
        print(f"profile {args.profile.stem}: done. See `dvc exp show`; bring it into the workspace with "
              f"`dvc exp apply {args.profile.stem} && dvc checkout`.")
    return done


if __name__ == "__main__":
    sys.exit(main())
