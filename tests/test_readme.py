"""The README's "Prune your own model" snippets run verbatim, in order, in a fresh directory.

The test provides only what the section names as given: a trained scorer at ``data/scorer/0`` (a tiny one here), a
prepared dataset at ``data/prepared/cifar10`` (from the shared offline data) and ``my_models.py`` defining
``cnn()``. Python blocks are executed in one namespace (later blocks continue earlier ones); shell blocks run in
bash with the project's ``autos-prune`` on the PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO_ROOT, SHARED_DATA

import autos
from autos.config import FeaturesConfig
from autos.scorer import build_scorer, save_scorer

SECTION = "## Prune your own model"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

MY_MODELS = """
from torch import nn


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def section_blocks(readme: Path = REPO_ROOT / "README.md") -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the section, in order."""
    text = readme.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return BLOCK.findall(text[start : end if end != -1 else len(text)])


def test_the_section_has_the_three_snippets() -> None:
    blocks = section_blocks()
    code = "\n".join(c for _, c in blocks)
    assert [lang for lang, _ in blocks].count("python") >= 2 and any(lang == "bash" for lang, _ in blocks)
    assert 'autos.prune(model, "snip"' in code and "autos.apply(model, masks)" in code
    assert '"scorer_dir": "data/scorer/0"' in code and "--model my_models:cnn" in code


def _given(cwd: Path) -> None:
    """What the section says it assumes, in ``cwd``."""
    from autos.data import prepare_dataset

    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [8]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    save_scorer(cwd / "data" / "scorer" / "0", net.eval(), "mlp", settings, {"source": "readme test"},
                features=FeaturesConfig())
    prepare_dataset("cifar10", search_dirs=[SHARED_DATA], out_dir=cwd / "data" / "prepared" / "cifar10",
                    download=False, download_dir=None, max_train_per_class=4, max_test_per_class=2)
    (cwd / "my_models.py").write_text(textwrap.dedent(MY_MODELS))


def test_the_snippets_run_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared offline data not found at {SHARED_DATA}")
    _given(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `import my_models`, as from the directory the README runs in
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for i, (lang, code) in enumerate(section_blocks()):
        if lang == "python":
            exec(compile(code, f"README.md block {i}", "exec"), namespace)  # noqa: S102 - the snippet, verbatim
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, f"block {i} failed:\n{done.stderr}"
    masks = namespace["masks"]
    assert isinstance(masks, autos.PrunedMasks) and masks.method == "autos" and abs(masks.sparsity - 0.9) < 1e-6
    assert (tmp_path / "masks.pt").is_file() and (tmp_path / "masks.json").is_file()
    model = namespace["model"]
    assert isinstance(model, torch.nn.Module) and torch.nn.utils.prune.is_pruned(model)  # the CLI's masks, applied


# --------------------------------------------------------------------------- commands in the whole README

SET_PARAM = re.compile(r"-S '?([A-Za-z_][\w.]*)=")
# The `dvc exp show` columns the README's command keeps (tests/test_pipeline.py runs it on a real experiment): DVC
# names a metric column by its bare key when no other file has it, and matches --keep from the column's start.
README_EXP_SHOW = ["--drop", ".*", "--keep", r"Experiment|.+@.+@.+\.diff$"]  # report.json's verdict keys
PROFILES = [REPO_ROOT / "params.yaml", *sorted((REPO_ROOT / "configs").glob("*.yaml"))]


def _has_key(params: dict[str, object], dotted: str) -> bool:
    node: object = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_set_param_in_the_readme_exists_in_every_profile() -> None:
    """`dvc exp run -S key=value` fails on a profile without the key ("Key 'lr' is not in struct"): every key the
    README sets must be in every shipped profile, so each command runs whichever profile is checked out."""
    keys = sorted(set(SET_PARAM.findall((REPO_ROOT / "README.md").read_text())))
    assert len(keys) >= 5, keys  # the pattern still finds the README's commands
    missing = [f"{path.name}: {key}" for path in PROFILES for key in keys
               if not _has_key(yaml.safe_load(path.read_text()), key)]
    assert not missing, f"README sets params a profile lacks: {missing}"


def test_the_readme_shows_the_exp_show_command_the_pipeline_test_runs() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    shell = " ".join(f"'{arg}'" if any(c in arg for c in "*|\\$") else arg for arg in README_EXP_SHOW)
    assert f"dvc exp show {shell}" in text, shell
