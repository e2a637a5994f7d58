"""IRP on a toy model: nested masks, survivors rewound to init, counts in 0..P, resume gives the same result; a bad
checkpoint is set aside with a warning and recomputed; bad input files are one DataError naming the file."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_data  # noqa: E402  (the shared synthetic ImageData)

from autos.config import IRPConfig, TrainRecipe
from autos.errors import DataError
from autos.files import save_torch
from autos.irp import CHECKPOINT, data_digest, load_survival, run_irp, stale_temps
from autos.irp.loop import checkpoint_checksum
from autos.masking import kept_count
from autos.models import build_model

CPU = torch.device("cpu")


def _irp(tiny_data, recipe, tmp_path=None, on_round=None, **overrides):
    cfg = IRPConfig(num_rounds=3, final_density=0.2, schedule="linear", epochs_per_round=1, **overrides)
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_irp(model, tiny_data, cfg, recipe, device=CPU, seed=0, resume_dir=tmp_path, on_round=on_round)
    return cfg, init, result


def test_nested_masks_counts_and_curve(tiny_data, quick_recipe) -> None:
    cfg, init, result = _irp(tiny_data, quick_recipe)
    total = sum(m.numel() for m in result.masks[0].values())
    assert [r["round"] for r in result.curve] == [0, 1, 2, 3]  # dense first, then P rounds
    for earlier, later in zip(result.masks, result.masks[1:], strict=False):
        for n in earlier:
            assert not (later[n] & ~earlier[n]).any()  # pruned weights stay pruned
    for k, masks in enumerate(result.masks, start=1):
        density = 1 - 0.8 * k / 3
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, density)
    for n, count in result.survived.items():
        assert count.dtype == torch.int8 and int(count.min()) >= 0 and int(count.max()) <= cfg.num_rounds
        assert torch.equal(count, sum(m[n].to(torch.int8) for m in result.masks))
        assert torch.equal(count == cfg.num_rounds, result.masks[-1][n])  # the final ticket survived every round
    assert all(torch.equal(result.init_state[k], init[k]) for k in init)


def test_survivors_rewound_to_init(tiny_data, quick_recipe) -> None:
    """Right after the last rewind the ticket equals the init weights on its support (checked via round hook)."""
    snapshots = []
    cfg = IRPConfig(num_rounds=2, final_density=0.3, epochs_per_round=1)
    model = build_model("resnet18", num_classes=4, width=4, input_size=32, seed=0)
    init = {k: v.clone() for k, v in model.state_dict().items()}

    import autos.irp.loop as irp_module

    real_train = irp_module.train

    def spy(m, *args, **kwargs):
        if kwargs.get("masks") is not None:
            snapshots.append(({k: v.detach().clone() for k, v in m.named_parameters()}, kwargs["masks"]))
        return real_train(m, *args, **kwargs)

    irp_module.train = spy
    try:
        run_irp(model, tiny_data, cfg, quick_recipe, device=CPU, seed=0)
    finally:
        irp_module.train = real_train
    assert len(snapshots) == 2
    for weights, masks in snapshots:
        for n, m in masks.items():
            assert torch.equal(weights[n][m], init[n][m])  # survivors at their initial values
            assert (weights[n][~m] == 0).all()
    # BN is not rewound by default (reference): its state after round 1 differs from init
    assert not torch.equal(model.bn1.weight.detach(), init["bn1.weight"])


def test_resume_gives_the_same_result(tiny_data, quick_recipe, tmp_path) -> None:
    _, _, full = _irp(tiny_data, quick_recipe)

    class Killed(Exception):
        pass

    def kill_after_round_1(record, result) -> None:
        if record["round"] == 1:
            raise Killed

    with pytest.raises(Killed):
        _irp(tiny_data, quick_recipe, tmp_path, on_round=kill_after_round_1)
    rounds_run = []
    _, _, resumed = _irp(tiny_data, quick_recipe, tmp_path, on_round=lambda r, _: rounds_run.append(r["round"]))
    assert rounds_run == [2, 3]  # rounds 0 and 1 came from the checkpoint (its checksum verified)
    for n in full.survived:
        assert torch.equal(full.survived[n], resumed.survived[n])
        assert all(torch.equal(a[n], b[n]) for a, b in zip(full.masks, resumed.masks, strict=True))
    assert [r["final_test_acc"] for r in full.curve] == [r["final_test_acc"] for r in resumed.curve]


def test_reference_mode_scores_init_and_snip_criterion(tiny_data, quick_recipe) -> None:
    cfg, _, result = _irp(tiny_data, quick_recipe, train_dense_first=False, criterion="snip", snip_batches=1)
    assert [r["round"] for r in result.curve] == [1, 2, 3]
    assert max(int(c.max()) for c in result.survived.values()) == cfg.num_rounds


# --------------------------------------------------------------------------- bad checkpoints, bad input files


class _Killed(Exception):
    pass


def _kill_after(round_: int):
    def on_round(record, result) -> None:
        if record["round"] == round_:
            raise _Killed

    return on_round


@pytest.fixture(scope="module")
def clean_run():
    """A clean run (no resume) to compare every recovered run with."""
    return _irp(make_tiny_data(), TrainRecipe(epochs=1, batch_size=16, lr=0.05))[2]


def _checkpoint_after_round_1(tiny_data, recipe, resume_dir: Path) -> Path:
    with pytest.raises(_Killed):
        _irp(tiny_data, recipe, resume_dir, on_round=_kill_after(1))
    (path,) = resume_dir.glob(f"*/{CHECKPOINT}")
    return path


class _Evil:
    """Unpickling this would run a shell command: weights_only loading must refuse the global."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a checkpoint\x00\xff" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _evil_zip(path: Path) -> None:
    torch.save({"round": 1, "model": _Evil(path.parent / "pwned")}, path)


def _evil_plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(_Evil(path.parent / "pwned")))


def _edit(change, reseal: bool = True):
    """Change a checkpoint's content; ``reseal``: recompute its checksum, so the structural checks behind it must
    catch the change (a forger who knows the format), else the checksum must."""
    def corrupt(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        change(state)
        if reseal and {"round", "model", "survived", "masks", "curve", "checksum"} <= state.keys():
            state["checksum"] = checkpoint_checksum(state)
        torch.save(state, path)

    return corrupt


def _forge_accuracy(state: dict) -> None:
    curve = json.loads(state["curve"])
    curve[0]["final_test_acc"] = 0.999  # plausible, and it would go straight into metrics/irp.json
    state["curve"] = json.dumps(curve)


def _first_layer(state: dict) -> str:
    return next(iter(state["survived"]))


CORRUPTIONS = {
    "garbage": _garbage,
    "truncated": _truncated,
    "empty": _empty,
    "os.system in a torch zip": _evil_zip,
    "os.system in a plain pickle": _evil_plain_pickle,
    "not a dict": lambda p: torch.save([1, 2, 3], p),
    "missing key": _edit(lambda s: s.pop("masks")),
    "round out of range": _edit(lambda s: s.update(round=99)),
    "round not an int": _edit(lambda s: s.update(round="1")),
    "model shape": _edit(lambda s: s["model"].update({"conv1.weight": torch.zeros(1)})),
    "model key missing": _edit(lambda s: s["model"].pop("conv1.weight")),
    "survival shape": _edit(lambda s: s["survived"].update({_first_layer(s): torch.zeros(2, dtype=torch.int8)})),
    "survival disagrees with masks": _edit(lambda s: s["survived"][_first_layer(s)].add_(1)),
    "mask count": _edit(lambda s: s.update(masks=[])),
    "curve not json": _edit(lambda s: s.update(curve="{not json")),
    "curve rounds": _edit(lambda s: s.update(curve=json.dumps([{"round": 0}]))),
    "curve not text": _edit(lambda s: s.update(curve=[{"round": 0}])),
    "forged accuracy": _edit(_forge_accuracy, reseal=False),
    "flipped mask bit": _edit(lambda s: s["masks"][0][_first_layer(s)].view(-1)[:1].logical_not_(), reseal=False),
    "edited weight": _edit(lambda s: s["model"]["conv1.weight"].view(-1)[:1].add_(1e-3), reseal=False),
    "checksum missing": _edit(lambda s: s.pop("checksum"), reseal=False),
    "checksum not text": _edit(lambda s: s.update(checksum=torch.zeros(2)), reseal=False),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_bad_checkpoint_is_set_aside_and_the_run_recomputes(tiny_data, quick_recipe, tmp_path, caplog, clean_run,
                                                            corruption) -> None:
    path = _checkpoint_after_round_1(tiny_data, quick_recipe, tmp_path)
    CORRUPTIONS[corruption](path)
    bad_bytes = path.read_bytes()
    rounds_run = []
    with caplog.at_level(logging.WARNING, logger="autos.irp"):
        _, _, result = _irp(tiny_data, quick_recipe, tmp_path, on_round=lambda r, _: rounds_run.append(r["round"]))
    assert rounds_run == [0, 1, 2, 3]  # recomputed from scratch, not resumed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "recomputing" in warnings[0]
    if corruption in ("forged accuracy", "flipped mask bit", "edited weight"):  # well-formed: only the checksum sees it
        assert "does not match its checksum" in warnings[0], warnings[0]
    assert path.with_name(path.name + ".bad").read_bytes() == bad_bytes  # set aside, kept for inspection
    assert not (tmp_path / path.parent.name / "pwned").exists()  # the malicious global never ran
    for n in clean_run.survived:
        assert torch.equal(clean_run.survived[n], result.survived[n])
    assert [r["final_test_acc"] for r in clean_run.curve] == [r["final_test_acc"] for r in result.curve]
    # the next run resumes from the fresh checkpoint: the bad file no longer blocks anything
    rounds_run.clear()
    _irp(tiny_data, quick_recipe, tmp_path, on_round=lambda r, _: rounds_run.append(r["round"]))
    assert rounds_run == []


def test_leftover_temp_from_a_killed_write_is_never_a_checkpoint(tiny_data, quick_recipe, tmp_path, clean_run) -> None:
    path = _checkpoint_after_round_1(tiny_data, quick_recipe, tmp_path)
    stale = path.with_name(f".{path.name}.x1y2z3.tmp")
    stale.write_bytes(path.read_bytes()[:100])  # what a kill in the middle of torch.save leaves
    rounds_run = []
    _, _, result = _irp(tiny_data, quick_recipe, tmp_path, on_round=lambda r, _: rounds_run.append(r["round"]))
    assert rounds_run == [2, 3]  # resumed from the real checkpoint
    assert not stale.exists()  # and the litter is cleaned up
    for n in clean_run.survived:
        assert torch.equal(clean_run.survived[n], result.survived[n])


def test_a_write_killed_by_sigkill_leaves_the_previous_checkpoint(tmp_path) -> None:
    """kill -9 in the middle of writing (half the bytes out): latest.pt is still the previous one, whole, and the
    torn temp is left under a name no loader looks at; the next resume removes it."""
    path = tmp_path / CHECKPOINT
    save_torch({"round": 1}, path)
    before = path.read_bytes()
    code = f"""
import os, signal
import autos.files as files
real_fdopen = os.fdopen

class Torn:
    def __init__(self, handle):
        self.handle = handle
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

os.fdopen = lambda fd, mode: Torn(real_fdopen(fd, mode))
files.save_torch({{"round": 2}}, {str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True) == {"round": 1}
    (torn,) = stale_temps(path)
    assert 0 < torn.stat().st_size < len(before) + 100


def test_checked_irp_outputs_name_the_file_and_the_problem(tmp_path) -> None:
    shapes = {"a.weight": torch.Size([2, 3]), "b.weight": torch.Size([4])}
    path = tmp_path / "survival.pt"
    good = {"a.weight": torch.zeros(2, 3, dtype=torch.int8), "b.weight": torch.full((4,), 3, dtype=torch.int8)}
    torch.save(good, path)
    assert load_survival(path, shapes, num_rounds=3).keys() == shapes.keys()
    bad_cases = {
        "out of range": ({**good, "b.weight": torch.full((4,), 4, dtype=torch.int8)}, "outside 0..3"),
        "float": ({**good, "b.weight": torch.zeros(4)}, "expected integers"),
        "shape": ({**good, "b.weight": torch.zeros(5, dtype=torch.int8)}, "has shape (5,)"),
        "missing layer": ({"a.weight": good["a.weight"]}, "missing ['b.weight']"),
        "not a dict": (torch.zeros(3), "got Tensor"),
    }
    for obj, message in bad_cases.values():
        torch.save(obj, path)
        with pytest.raises(DataError, match=re.escape(message)) as err:
            load_survival(path, shapes, num_rounds=3)
        assert str(path) in str(err.value)


# --------------------------------------------------------------------------- the resume fingerprint


def test_data_digest_sees_the_images_not_only_the_labels() -> None:
    a, b = make_tiny_data(seed=0), make_tiny_data(seed=1)
    assert torch.equal(a.train_y, b.train_y) and not torch.equal(a.train_x, b.train_x)
    assert data_digest(a) != data_digest(b)
    assert data_digest(a) == data_digest(make_tiny_data(seed=0))
    # prepared data: identified by the sha256 of its files recorded in meta.json (verified when loaded)
    files = {n: f"{i:064x}" for i, n in enumerate(("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy"))}
    counts = {"train": len(a.train_y), "test": len(a.test_y)}
    a.meta = {"files": files, "counts": counts}
    b.meta = {"files": dict(files), "counts": counts}
    assert data_digest(a) == data_digest(b)  # same files, same data
    b.meta["files"]["train_x.npy"] = "f" * 64
    assert data_digest(a) != data_digest(b)
    b.meta = {"files": files, "counts": {"train": 1, "test": 1}}  # not describing these tensors: hash them
    assert data_digest(b) == data_digest(make_tiny_data(seed=1))


def test_resume_never_mixes_datasets_with_the_same_labels(quick_recipe, tmp_path) -> None:
    for seed in (0, 1):  # same labels, different images
        with pytest.raises(_Killed):
            _irp(make_tiny_data(seed=seed), quick_recipe, tmp_path, on_round=_kill_after(0))
    assert len(list(tmp_path.glob(f"*/{CHECKPOINT}"))) == 2
