"""`seqsum study rerun` killed with SIGKILL mid-way continues with `--resume`: every planned replicate
exactly once, none run twice, and the summary over all seeds. Runs on a copy of the shared smoke study."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pandas as pd
import pytest

from seqsum.errors import StudyError
from study.rerun import clear_reruns
from tests.helpers import tree
from tests.raytools import (
    SEQSUM,
    descendants,
    fault_env,
    kill_pids,
    ray_env,
    session_pids,
    wait_for,
    wait_paused,
    wait_saved,
)


def _copy_study(src, d, names=("study.yaml", "state.json", "optuna.db", "trials")):
    d.mkdir()
    for name in names:
        shutil.copytree(src / name, d / name) if (src / name).is_dir() else shutil.copy(src / name, d / name)


@pytest.mark.slow
def test_killed_rerun_continues_with_resume(smoke_study, tmp_path):
    """2 tasks x 1 config x 2 seeds, 2 epochs each, 2 at a time. The first replicate to finish epoch 1
    pauses there (a fault point, tests/faults) while the other three run to their end; the driver is
    killed once Tune's saved state holds the paused one with its checkpoint. The resume trains only that
    one, from epoch 1: the finished replicates' files stay byte for byte as they were."""
    d = tmp_path / "smoke"
    _copy_study(smoke_study, d)
    faults = tmp_path / "faults"
    log = tmp_path / "rerun.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            SEQSUM + ["study", "rerun", str(d), "--top", "1", "--seeds", "2", "--epochs", "2"],
            env=fault_env(faults, pause={"epoch": 1, "nth": 1}),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = set()
    try:
        tid = wait_paused(faults, proc, 300)["trial_id"]
        wait_for(lambda: len(list((d / "rerun").glob("*/*/summary.json"))) == 3, 300, "three finished replicates")
        wait_saved(d / "tune" / "rerun", proc, tid, 1, 120)
        seen.update(session_pids(proc.pid) | descendants(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_pids((seen | session_pids(proc.pid)) - {os.getpid()})
    plan = json.loads((d / "rerun" / "plan.json").read_text())
    assert len(plan["points"]) == 4 and json.loads((d / "rerun" / "state.json").read_text())["status"] == "running"
    finished = [p.parent for p in (d / "rerun").glob("*/*/summary.json")]
    assert len(finished) == 3 and tid not in {f.name for f in finished}
    before = {str(f): tree(f) for f in finished}

    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--resume"], env=ray_env(), capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done = [json.loads(p.read_text()) for p in (d / "rerun").glob("*/*/params.json")]
    key = lambda p: (p["task"], p["source_trial_id"], p["seed"])
    assert sorted(map(key, done)) == sorted(map(key, plan["points"]))  # each exactly once
    assert {p["status"] for p in done} == {"ok"}
    assert {p["trial_id"]: p.get("resumed_from_epoch") for p in done if p.get("resumed_from_epoch")} == {tid: 1}
    changed = [f"{f}/{k}" for f in finished for k, v in tree(f).items() if before[str(f)].get(k) != v]
    assert changed == []  # the finished replicates were neither run again nor rewritten
    assert json.loads((d / "rerun" / "state.json").read_text())["status"] == "done"
    summary = pd.read_csv(d / "rerun" / "summary.csv")
    assert set(summary.n) == {2}


@pytest.mark.parametrize("where", ["rerun", "replicate"])
def test_rerun_overwrite_refuses_a_users_file_and_deletes_nothing(smoke_study, tmp_path, where):
    d = tmp_path / "smoke"
    _copy_study(smoke_study, d, ("study.yaml", "state.json", "optuna.db", "trials", "rerun"))
    run = next((d / "rerun").glob("*/*/summary.json")).parent
    (d / "rerun" / "notes.txt" if where == "rerun" else run / "notes.txt").write_text("mine")
    before = tree(d)
    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--top", "1", "--overwrite"], env=ray_env(), capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "refusing to replace" in r.stderr
    assert tree(d) == before
    with pytest.raises(StudyError):
        clear_reruns(d / "rerun")
    assert tree(d) == before


def test_clear_reruns_removes_only_what_a_rerun_wrote(smoke_study, tmp_path):
    d = tmp_path / "smoke"
    _copy_study(smoke_study, d, ("rerun",))
    assert list((d / "rerun").glob("*/*/summary.json"))
    clear_reruns(d / "rerun")
    assert list((d / "rerun").iterdir()) == []


def test_rerun_over_an_existing_one_is_refused_without_overwrite(smoke_study, tmp_path):
    d = tmp_path / "smoke"
    _copy_study(smoke_study, d, ("study.yaml", "state.json", "optuna.db", "trials", "rerun"))
    before = tree(d)
    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--top", "1", "--seeds", "1"], env=ray_env(), capture_output=True, text=True
    )
    assert r.returncode == 2 and "--overwrite" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert tree(d) == before
