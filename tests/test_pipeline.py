"""End to end: the smoke profile through the real `dvc repro` in a temporary copy of the repo, then checks of
the outputs, the MLflow runs and the report. Also: stages refuse bad config with exit 2 and write nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import README_EXP_SHOW

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_OUTPUTS = {".venv", "data", "reports", "metrics", "mlflow.db", "mlartifacts", ".git", "dvc.lock", ".whl"}
ANY_LEVEL = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.egg-info")


def IGNORE(directory: str, names: list[str]) -> set[str]:  # noqa: N802 - used like shutil.ignore_patterns
    ignored = set(ANY_LEVEL(directory, names))
    if Path(directory).resolve() == REPO:
        ignored |= TOP_LEVEL_OUTPUTS & set(names)
    return ignored


def _env(tmp: Path, shared_data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOS_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AUTOS_DATA_DIR"] = str(shared_data)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = REPO.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"shared offline data not found at {shared}")
    tmp = tmp_path_factory.mktemp("study") / "repo"
    shutil.copytree(REPO, tmp, ignore=IGNORE)
    shutil.copy(tmp / "configs" / "smoke.yaml", tmp / "params.yaml")
    env = _env(tmp, shared)
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp


@pytest.mark.slow
@pytest.mark.timeout(900)  # includes the module's smoke `dvc repro` (about a minute here)
def test_dvc_repro_smoke_outputs(smoke_study: Path) -> None:
    root = smoke_study
    lock = (root / "dvc.lock").read_text()
    for stage in ("prepare_data@cifar10", "irp@0", "irp@1", "features@0", "train_scorer@1", "transfer@vgg16_cifar10",
                  "transfer@resnet18_tiny_imagenet", "report"):
        assert stage in lock
    for source in (0, 1):  # two independent source runs
        curve = json.loads((root / f"data/irp/{source}/curve.json").read_text())
        assert [r["round"] for r in curve["rounds"]] == [0, 1, 2]
        scorer = json.loads((root / f"metrics/scorer_{source}.json").read_text())
        assert scorer == json.loads((root / f"data/scorer/{source}/metrics.json").read_text())
        assert {"abs_w0", "abs_g0", "abs_w0_x_g0", "random"} <= set(scorer["baselines"])
        ticket = json.loads((root / f"data/scorer/{source}/source_ticket.json").read_text())  # the IRP ticket
        assert len(ticket["layers"]) == 21 and 0.0 < ticket["density"] < 1.0
        assert scorer["source_ticket_overlap_autos"] == ticket["overlap"]["autos"] and scorer["pooled_rows"] == 0
    assert (root / "data/scorer/0/scorer.pt").read_bytes() != (root / "data/scorer/1/scorer.pt").read_bytes()
    for target in ("vgg16_cifar10", "resnet18_tiny_imagenet"):
        rows = json.loads((root / f"data/transfer/{target}/results.json").read_text())["rows"]
        methods = {r["method"] for r in rows}
        assert methods == {"dense", "autos", "autos_floor", "random", "magnitude", "snip"}
        # the scorer's methods ran once per source (crossed with the one target seed); the others have no source
        assert sorted(r.get("source", -1) for r in rows if r["method"] == "autos_floor") == [0, 1]
        assert {r.get("source") for r in rows if r["method"] in ("random", "dense")} == {None}
        for r in rows:
            assert 0.0 <= r["final_val_acc"] <= 1.0  # validation_per_class: 1 held out of every class
            if r["method"] != "dense":
                assert abs(r["achieved_sparsity"] - 0.9) < 0.005
                assert r["pruned_nonzero_after_training"] == 0
                assert 0.0 <= r["final_test_acc"] <= 1.0
        table = (root / f"reports/{target}.md").read_text()
        assert "| autos |" in table and "90%" in table
        assert (root / f"reports/figures/{target}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (root / "reports/summary.md").read_text()
    assert "vgg16_cifar10" in summary and "resnet18_tiny_imagenet" in summary
    assert "autos_floor" in summary or "AutoS (layer_floor 0.5)" in summary
    # `dvc plots show` offline: the report's PNGs are image plots (rendered without vega from a CDN)
    plots = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=root,
                           env=_env(root, REPO), capture_output=True, text=True, timeout=120)
    assert plots.returncode == 0, plots.stderr
    images = {entry["url"] for entries in json.loads(plots.stdout)["data"].values() for entry in entries
              if entry.get("type") == "image"}
    assert any(url.endswith("vgg16_cifar10.png") for url in images), plots.stdout[:2000]
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=root, env=_env(root, REPO),
                            capture_output=True,
                            text=True, timeout=120)
    assert "up to date" in status.stdout.lower(), status.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_scorer_pools_other_source_tables_and_keeps_its_metrics_on_its_own(smoke_study: Path, tmp_path: Path) -> None:
    """scorer.extra_tables: another source's table (here: this one's copy) doubles the rows trained on; the held-out
    metrics and the ticket diagnostics stay on this study's table; a missing table is a clear error."""
    root = tmp_path / "repo"
    shutil.copytree(smoke_study, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    shutil.copy(root / "data/features/0/source.parquet", tmp_path / "other.parquet")
    before = json.loads((root / "metrics/scorer_0.json").read_text())
    params = (root / "params.yaml").read_text()
    env = {**_env(root, REPO), "AUTOS_ROOT": str(root), "PYTHONPATH": str(root)}

    def run(tables: str) -> subprocess.CompletedProcess[str]:
        (root / "params.yaml").write_text(params.replace("  extra_tables: []", f"  extra_tables: {tables}"))
        return subprocess.run([sys.executable, "-m", "stages.train_scorer", "--source-seed", "0"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    proc = run(f"[{tmp_path / 'other.parquet'}]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((root / "metrics/scorer_0.json").read_text())
    assert after["pooled_rows"] == before["train_rows"] + before["holdout_rows"]  # every row of the other table
    assert after["train_rows"] > 1.7 * before["train_rows"]  # trained on both tables
    assert 0.5 * before["holdout_rows"] < after["holdout_rows"] < 1.5 * before["holdout_rows"]  # evaluated on one
    assert set(after["scorer"]) == set(before["scorer"])
    proc = run("[data/features/missing.parquet]")
    assert proc.returncode != 0 and "missing.parquet does not exist" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_scorer_trains_on_the_residual_rank_label_and_records_its_curve(smoke_study: Path, tmp_path: Path) -> None:
    """scorer.label: residual_rank: the stage fits the label on the source table, reports how much of the residual
    the scorer and trivial scores rank, and stores the magnitude curve AutoS needs at prune time."""
    root = tmp_path / "repo"
    shutil.copytree(smoke_study, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    params = (root / "params.yaml").read_text()
    assert "  label: survival" in params
    (root / "params.yaml").write_text(params.replace("  label: survival", "  label: residual_rank"))
    env = {**_env(root, REPO), "AUTOS_ROOT": str(root), "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "stages.train_scorer", "--source-seed", "1"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((root / "metrics/scorer_1.json").read_text())
    assert metrics["label"] == "residual_rank"
    assert set(metrics["residual"]) == {"std", "spearman_scorer", "spearman_abs_g0", "spearman_abs_w0_x_g0",
                                        "spearman_w0_x_g0", "spearman_random"}
    assert 0.0 < metrics["residual"]["std"] < 0.5 and -1.0 <= metrics["residual"]["spearman_scorer"] <= 1.0
    label = json.loads((root / "data/scorer/1/scorer.json").read_text())["meta"]["label"]
    assert label["kind"] == "residual_rank" and len(label["magnitude_curve"]) == 50
    assert all(0.0 <= v <= 1.0 for v in label["magnitude_curve"])


@pytest.mark.slow
@pytest.mark.timeout(900)  # includes the module's smoke `dvc repro` (about a minute here)
def test_mlflow_holds_every_stage(smoke_study: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{smoke_study / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("autos-smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    stages = {r.data.tags.get("stage") for r in runs}
    assert {"irp", "features", "train_scorer", "transfer", "report"} <= stages
    transfer_children = [r for r in runs
                         if r.data.tags.get("stage") == "transfer" and "mlflow.parentRunId" in r.data.tags]
    # per target: dense + 3 methods + 2 AutoS methods x 2 sources (1 sparsity, 1 seed)
    assert len(transfer_children) == 2 * (1 + 3 + 2 * 2)
    assert all("final_test_acc" in r.data.metrics for r in transfer_children)
    irp_rounds = [r for r in runs if r.data.tags.get("stage") == "irp" and "mlflow.parentRunId" in r.data.tags]
    assert len(irp_rounds) == 2 * 3  # two source runs, dense + 2 rounds each
    assert client.get_registered_model("autos-smoke-scorer").name == "autos-smoke-scorer"


REPRODUCED_STAGES = ("irp@0", "features@0", "train_scorer@0", "transfer@vgg16_cifar10")


def _out_hashes(lock_text: str, stages: tuple[str, ...]) -> dict[str, str]:
    import yaml

    lock = yaml.safe_load(lock_text)["stages"]
    return {f"{stage}:{out['path']}": out["md5"] for stage in stages for out in lock[stage]["outs"]}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_forced_rerun_writes_byte_identical_outputs(smoke_study: Path) -> None:
    # Same seed, same machine: the same bytes, so DVC never re-runs downstream stages for nothing. Runs after the
    # tests above that count MLflow runs (it adds runs of its own).
    root = smoke_study
    before = _out_hashes((root / "dvc.lock").read_text(), REPRODUCED_STAGES)
    resolved = json.loads((root / "data/irp/0/resolved_config.json").read_text())
    assert resolved["training"]["momentum"] == 0.9  # a default the smoke params never spell out
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "-s", *REPRODUCED_STAGES], cwd=root,
                          env=_env(root, REPO.parent / "shared" / "data"), capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = _out_hashes((root / "dvc.lock").read_text(), REPRODUCED_STAGES)
    changed = sorted(k for k in before if before[k] != after[k])
    assert not changed, f"outputs differ between two runs of the same study: {changed}"


def _workspace_state(root: Path) -> dict[str, str]:
    """sha256 of every file a stage could write in the workspace (outputs, metrics, reports, MLflow, lock)."""
    import hashlib

    files = [p for d in ("data", "reports", "metrics", "mlartifacts") for p in (root / d).rglob("*") if p.is_file()]
    files += [root / name for name in ("mlflow.db", "dvc.lock", "params.yaml") if (root / name).is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_profile_runs_as_an_experiment_logs_into_the_workspace_store_and_applies(smoke_study: Path,
                                                                                  tmp_path: Path) -> None:
    """`make study PROFILE=...` (autos.pipeline.profile): the profile runs as `dvc exp run --temp`, so params.yaml and
    the outputs in the workspace stay as they are; its MLflow runs land in the workspace's store next to the others;
    the committed metrics compare; `dvc exp apply` + `dvc checkout` bring its outputs, the report included; the
    README's `dvc exp show` command fits a terminal."""
    root = smoke_study
    env = _env(root, REPO.parent / "shared" / "data")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "baseline")
    assert "metrics/transfer_vgg16_cifar10.json" in subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout  # metrics are committed
    profile = root / "configs" / "sparser.yaml"
    profile.write_text((root / "configs" / "smoke.yaml").read_text().replace("sparsities: [0.9]", "sparsities: [0.95]"))
    before = {k: v for k, v in _workspace_state(root).items() if not k.startswith(("mlflow", "mlartifacts"))}
    proc = subprocess.run([sys.executable, "-m", "autos.pipeline.profile", str(profile)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = {k: v for k, v in _workspace_state(root).items() if not k.startswith(("mlflow", "mlartifacts"))}
    assert after == before  # params.yaml, outputs, metrics: untouched
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("autos-smoke")
    tagged = client.search_runs([experiment.experiment_id], filter_string="tags.`dvc.exp_name` = 'sparser'")
    assert {r.data.tags.get("stage") for r in tagged} >= {"transfer", "report"}  # one store for every experiment
    diff = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", "HEAD", "sparser", "--json"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)
    assert diff.returncode == 0, diff.stderr
    changed = json.loads(diff.stdout)["metrics/transfer_vgg16_cifar10.json"]
    assert "snip@0.95" in changed and changed["snip@0.95"]["old"] is None  # the new column shows up
    assert "dense" not in changed  # recomputed in the copy from the same seed: the same accuracy, so no diff
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--csv", *README_EXP_SHOW], cwd=root,
                           env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "sparser" in shown.stdout, shown.stderr
    header = shown.stdout.splitlines()[0].split(",")
    verdicts = [h for h in header if h.endswith(".diff") and h.count("@") == 2]  # <target>@<sparsity>@<method>.diff
    assert len(header) <= 16 and verdicts, header  # the headline fits a terminal
    for cmd in (["exp", "apply", "sparser"], ["checkout"]):
        done = subprocess.run([sys.executable, "-m", "dvc", *cmd], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    assert "95%" in (root / "reports" / "vgg16_cifar10.md").read_text()  # the experiment's report is back


# The README's `dvc exp show` for the headline (tests/test_readme.py checks the README spells it so).
def test_stage_rejects_bad_config_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = (REPO / "configs/smoke.yaml").read_text().replace("sparsities: [0.9]", "sparsities: [1.0]")
    bad = bad.replace("num_rounds: 2", "num_rounds: -1")
    (tmp_path / "params.yaml").write_text(bad)
    env = {**os.environ, "AUTOS_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    for stage in ("irp", "transfer"):
        args = [sys.executable, "-m", f"stages.{stage}", "--params", str(tmp_path / "params.yaml")]
        args += ["--target", "vgg16_cifar10"] if stage == "transfer" else ["--source-seed", "0"]
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "transfer.sparsities.0" in proc.stderr and "irp.num_rounds" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_prepare_data_missing_offline_exits_1_naming_what_was_looked_for(tmp_path: Path) -> None:
    cfg = (REPO / "configs/smoke.yaml").read_text().replace('search_dirs: ["../shared/data"]', "search_dirs: [nowhere]")
    (tmp_path / "params.yaml").write_text(cfg)
    shutil.copy(REPO / "paths.yaml", tmp_path / "paths.yaml")
    env = {k: v for k, v in os.environ.items() if k != "AUTOS_DATA_DIR"}
    env.update(AUTOS_ROOT=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "stages.prepare_data", "--dataset", "cifar10"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "cifar-10-python.tar.gz" in proc.stderr and "AUTOS_DATA_DIR" in proc.stderr
    assert not (tmp_path / "data" / "prepared").exists()
