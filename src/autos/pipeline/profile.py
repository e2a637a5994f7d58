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
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from autos.config import read_params
from autos.errors import AutosError, ConfigError
from autos.study import load_study
from autos.tracking import DB_NAME

EXIT_USAGE = 2


def set_params(profile: Any, current: Any) -> list[str]:
    """The ``-S`` overrides that turn ``current`` (the workspace's params.yaml) into ``profile``, section by section.

    DVC applies ``-S`` with Hydra, which *merges* a dict into the section it overrides: ``transfer={...}`` would keep
    every key the profile leaves out (a second target, a variant) and refuse keys params.yaml lacks. So a section
    that differs is deleted and added again (``~section``, then ``+section=<value>``), and a section only the
    workspace has is deleted: the experiment's params are the profile's, key for key (``tests/test_profile.py``)."""
    current = current if isinstance(current, dict) else {}
    args = []
    for section, value in profile.items():
        if current.get(section) == value:
            continue
        if section in current:
            args += ["-S", f"~{section}"]
        args += ["-S", f"+{section}={override_value(value)}"]
    for section in current:
        if section not in profile:
            args += ["-S", f"~{section}"]
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


def check_overrides(params_path: Path, overrides: list[str], profile: Any) -> None:
    """Apply ``overrides`` as DVC will (``dvc.utils.hydra.apply_overrides``, on a copy) and refuse to start when the
    result is not ``profile``. DVC edits params.yaml in place, keeping its comments, and a comment on the line of a
    mapping that the profile empties is written back as YAML nobody can read: the experiment would fail at its first
    stage, after DVC had copied the workspace."""
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "params.yaml"
        shutil.copyfile(params_path, copy)
        try:
            apply_overrides(copy, overrides[1::2])
        except DvcException as exc:
            cause = exc.__cause__ or exc
            raise ConfigError([f"dvc exp run -S refuses the profile's values ({str(cause).splitlines()[0]})"],
                              str(params_path)) from None
        try:
            result = read_params(copy)
        except ConfigError as exc:
            problem = exc.problems[0] if exc.problems else str(exc)
            raise ConfigError([f"dvc exp run -S would write a params file that is not valid YAML ({problem}); move "
                               "comments that sit on the line of a mapping key in params.yaml to a line of their "
                               "own, or run the profile with `cp <profile> params.yaml && dvc repro`"],
                              str(params_path)) from None
    wrong = sorted(key for key in set(profile) | set(result) if profile.get(key) != result.get(key))
    if wrong:
        raise ConfigError([f"dvc exp run -S would not reproduce the profile's sections {', '.join(wrong)}; run it "
                           "with `cp <profile> params.yaml && dvc repro`"], str(params_path))


def command(profile_path: Path, root: Path) -> tuple[list[str], dict[str, str]]:
    """The ``dvc exp run`` command line and its environment for ``profile_path``."""
    load_study(profile_path)  # every problem at once, before DVC runs anything
    profile, current = read_params(profile_path), read_params(root / "params.yaml")
    overrides = set_params(profile, current)
    check_overrides(root / "params.yaml", overrides, profile)
    name = profile_path.stem
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{(root / DB_NAME).resolve()}")
    return [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name, *overrides], env


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
