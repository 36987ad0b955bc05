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
from conftest import tree
from raytools import SEQSUM, descendants, kill_pids, ray_env, session_pids, wait_for

from study.rerun import clear_reruns
from study.session import StudyError


def _copy_study(src, d, names=("study.yaml", "state.json", "optuna.db", "trials")):
    d.mkdir()
    for name in names:
        shutil.copytree(src / name, d / name) if (src / name).is_dir() else shutil.copy(src / name, d / name)


def test_killed_rerun_continues_with_resume(smoke_study, tmp_path):
    d = tmp_path / "smoke"
    _copy_study(smoke_study, d)
    env = ray_env()
    log = tmp_path / "rerun.log"
    with open(log, "w") as f:  # 2 tasks x 1 config x 2 seeds, 1 epoch each, 2 at a time
        proc = subprocess.Popen(
            SEQSUM + ["study", "rerun", str(d), "--top", "1", "--seeds", "2", "--epochs", "1"],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = set()

    def one_done():
        seen.update(session_pids(proc.pid) | descendants(proc.pid))
        return list((d / "rerun").glob("*/*/summary.json")) or proc.poll() is not None

    try:
        wait_for(one_done, 300, "the first replicate")
        assert proc.poll() is None, log.read_text()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_pids((seen | session_pids(proc.pid)) - {os.getpid()})
    plan = json.loads((d / "rerun" / "plan.json").read_text())
    assert len(plan["points"]) == 4 and json.loads((d / "rerun" / "state.json").read_text())["status"] == "running"
    finished = [p.parent for p in (d / "rerun").glob("*/*/summary.json")]
    assert len(finished) < 4
    before = {str(f): tree(f) for f in finished}

    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--resume"], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done = [json.loads(p.read_text()) for p in (d / "rerun").glob("*/*/params.json")]
    key = lambda p: (p["task"], p["source_trial_id"], p["seed"])  # noqa: E731
    assert sorted(map(key, done)) == sorted(map(key, plan["points"]))  # each exactly once
    assert {p["status"] for p in done} == {"ok"}
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
