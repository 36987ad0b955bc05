"""`seqsum study rerun` killed with SIGKILL mid-way continues with `--resume`: every planned replicate
exactly once, none run twice, and the summary over all seeds. Runs on a copy of the shared smoke study."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pandas as pd
from raytools import SEQSUM, descendants, kill_pids, ray_env, session_pids, wait_for


def test_killed_rerun_continues_with_resume(smoke_study, tmp_path):
    d = tmp_path / "smoke"
    d.mkdir()
    for name in ("study.yaml", "state.json", "optuna.db", "trials"):
        src = smoke_study / name
        shutil.copytree(src, d / name) if src.is_dir() else shutil.copy(src, d / name)
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
    assert len(list((d / "rerun").glob("*/*/summary.json"))) < 4

    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--resume"], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done = [json.loads(p.read_text()) for p in (d / "rerun").glob("*/*/params.json")]
    key = lambda p: (p["task"], p["source_trial_id"], p["seed"])  # noqa: E731
    assert sorted(map(key, done)) == sorted(map(key, plan["points"]))  # each exactly once
    assert {p["status"] for p in done} == {"ok"}
    assert json.loads((d / "rerun" / "state.json").read_text())["status"] == "done"
    summary = pd.read_csv(d / "rerun" / "summary.csv")
    assert set(summary.n) == {2}
