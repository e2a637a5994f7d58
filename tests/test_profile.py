"""`make study PROFILE=<file>` runs a profile as a DVC experiment through `dvc exp run -S`: the params the experiment
runs with must be the profile's, key for key. DVC applies `-S` with Hydra, which merges a dict into the section it
overrides (a target or variant the profile leaves out would stay; a key params.yaml lacks is refused), so this
applies the overrides exactly as DVC does (`dvc.utils.hydra.apply_overrides`) to a copy of params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from dvc.utils.hydra import apply_overrides

from autos.config import read_params
from autos.errors import ConfigError
from autos.pipeline.profile import check_overrides, set_params

PROFILES = sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yaml"))


def _apply(current: Path, profile: dict, tmp_path: Path) -> dict:
    copy = tmp_path / "params.yaml"
    shutil.copyfile(current, copy)
    args = set_params(profile, read_params(copy))
    apply_overrides(copy, [value for flag, value in zip(args[::2], args[1::2], strict=True) if flag == "-S"])
    return read_params(copy)


@pytest.mark.parametrize("name", PROFILES)
def test_the_experiment_runs_with_exactly_the_profiles_params(name: str, tmp_path: Path) -> None:
    profile = read_params(REPO_ROOT / "configs" / name)
    assert _apply(REPO_ROOT / "params.yaml", profile, tmp_path) == profile


def test_keys_the_profile_leaves_out_do_not_survive_and_new_ones_are_added(tmp_path: Path) -> None:
    current = tmp_path / "current.yaml"
    current.write_text("transfer:\n  targets: {a: {model: m}, b: {model: n}}\n  seeds: [0]\nextra: {x: 1}\n"
                       "same: {k: 'v'}\n")
    profile = {"transfer": {"targets": {"a": {"model": "m"}}, "variants": {"v": {"title": "it's (a, b)"}}},
               "same": {"k": "v"}}
    assert _apply(current, profile, tmp_path) == profile
    assert set_params({"same": {"k": "v"}}, {"same": {"k": "v"}}) == []  # an equal section is not touched


def test_a_profile_dvc_would_write_as_broken_yaml_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """DVC keeps params.yaml's comments when it applies -S; a comment on the line of a mapping the profile empties
    comes back as unreadable YAML. The profile command says so, and how to run the profile, before DVC starts."""
    (tmp_path / "params.yaml").write_text("transfer:\n  variants:   # a comment on the key's line\n"
                                          "    v: {method: m}\n  seeds: [0]\n")
    profile = {"transfer": {"variants": {}, "seeds": [0]}}
    with pytest.raises(ConfigError, match=r"not valid YAML .*move comments .* or run the profile with `cp <profile> "
                                          r"params.yaml && dvc repro`"):
        check_overrides(tmp_path / "params.yaml", set_params(profile, read_params(tmp_path / "params.yaml")), profile)
    check_overrides(REPO_ROOT / "params.yaml", set_params(profile, read_params(REPO_ROOT / "params.yaml")), profile)
