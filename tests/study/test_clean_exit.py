"""A study that finished prints no traceback from any process; a trial that raised still shows its error.

Both read the shared smoke study's own output (tests/conftest.py: its launch, where one trial raises once
through tests/faults and is retried, and its rerun, where nothing raises), so no study runs twice.
"""

from __future__ import annotations

SHUTDOWN_NOISE = ("Exception ignored in", "SystemExit")


def test_a_clean_study_prints_no_traceback(smoke_study):
    out = (smoke_study.parent / "rerun.log").read_text()
    for noise in ("Traceback", *SHUTDOWN_NOISE):
        assert noise not in out, out[-3000:]


def test_a_trial_that_raises_still_shows_its_error_and_nothing_else_does(smoke_study):
    out = (smoke_study.parent / "launch.log").read_text()
    assert "injected failure after epoch 2 (tests/faults)" in out  # the trial's own error, as raised
    for noise in SHUTDOWN_NOISE:
        assert noise not in out, out[-3000:]
    tracebacks = out.split("Traceback")[1:]
    assert tracebacks and all("injected failure" in t for t in tracebacks), out[-3000:]  # each one is that error
