"""The stall watchdog reports a step that makes no progress, once per stall, with stacks; and says when it resumes."""

from __future__ import annotations

import logging
import time

import pytest

from autos.watchdog import Watchdog, active, beat, stall_seconds_from_env, watching


def test_a_stall_is_reported_once_with_stacks_then_resume(caplog: pytest.LogCaptureFixture,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    dog = Watchdog(0.2, poll_seconds=0.02)
    with caplog.at_level(logging.WARNING, logger="autos.watchdog"):
        dog.beat("train epoch 1 step 3")
        deadline = time.monotonic() + 10
        while dog.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # still stalled: no second report for the same stall
        dog.beat("train epoch 1 step 4")
    dog.stop()
    assert dog.stalls == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("no progress" in m and "train epoch 1 step 3" in m for m in messages)
    assert any("progress resumed" in m for m in messages)
    assert "test_a_stall_is_reported_once_with_stacks_then_resume" in capfd.readouterr().err  # faulthandler stacks


def test_steady_beats_never_warn() -> None:
    dog = Watchdog(0.5, poll_seconds=0.02)
    for i in range(20):
        dog.beat(f"step {i}")
        time.sleep(0.01)
    dog.stop()
    assert dog.stalls == 0


def test_zero_disables_and_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    dog = Watchdog(0)
    dog.beat("x")
    assert not dog.enabled and dog._thread is None
    monkeypatch.setenv("AUTOS_WATCHDOG_SECONDS", "12.5")
    assert stall_seconds_from_env() == 12.5
    monkeypatch.setenv("AUTOS_WATCHDOG_SECONDS", "soon")
    assert stall_seconds_from_env() == 300.0


def test_beats_go_to_the_watchdog_the_caller_opened_and_nowhere_else() -> None:
    assert active() is None
    beat("outside")  # no watchdog: nothing happens, no thread starts
    dog = Watchdog(60.0)
    with watching(dog) as opened:
        assert opened is dog and active() is dog
        with watching(None):  # a nested block may turn it off
            beat("muted")
            assert dog._what == "start"
        beat("train epoch 1 step 1")
        assert dog._what == "train epoch 1 step 1" and dog._thread is not None
    assert active() is None and dog._stop.is_set()  # stopped when its block ends
