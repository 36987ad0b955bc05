"""Studies on real Ray: the embedded instance (loopback only) and a trial that raises (both read from the
shared smoke study), a study's lifecycle through Ctrl-C, resume, SIGKILL and resume, fractional GPUs on a
logical GPU, and a real two-host cluster in the tests' own network namespaces with one host cut off
mid-study. Every fault comes at a deterministic point: a trial that pauses after an epoch until the test
has acted (tests/faults). Each test stops exactly the processes it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

from study.config import load_preset
from tests.helpers import tree
from tests.raytools import (
    BIN,
    NOT_ROOT,
    SEQSUM,
    descendants,
    fault_env,
    kill_pids,
    netns_hosts,
    netns_pids,
    ray_env,
    session_pids,
    tune_snapshot,
    wait_for,
    wait_paused,
    wait_saved,
    write_study,
)

pytestmark = pytest.mark.slow

# only a missing root skips these; as root, a network namespace that cannot be made fails the test
needs_netns = pytest.mark.skipif(NOT_ROOT is not None, reason=NOT_ROOT or "")


def _trials(study_dir: Path, task: str = "sum") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((study_dir / "trials" / task).glob("*/params.json"))]


def _summary(study_dir: Path, run: dict, kind: str = "trials") -> dict:
    return json.loads((study_dir / kind / run["task"] / run["trial_id"] / "summary.json").read_text())


def _optuna_trials(study_dir: Path, name: str):
    st = optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'optuna.db'}")
    return st.get_trials(deepcopy=False)


def _popen(argv, env, log: Path, **kw):
    """Start a driver in its own session, its output into `log` (a pipe nobody reads while the test waits
    could fill up and stall it)."""
    with open(log, "w") as f:
        return subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def _ours(proc) -> set[int]:
    return session_pids(proc.pid) | descendants(proc.pid) | {proc.pid}


def _leftovers(proc, seen: set[int]) -> set[int]:
    """What a driver started and left running (never this process, nor the driver's pid once reaped)."""
    return (seen | _ours(proc)) - {os.getpid()} - ({proc.pid} if proc.poll() is not None else set())


def test_smoke_study_on_loopback_only_with_a_retried_trial(smoke_study):
    """The README's main job in small (the shared smoke study: both tasks, ASHA): only loopback listeners; the
    trial that raised once after its last epoch (a fault point) went on from its epoch-1 checkpoint."""
    root = smoke_study.parent
    socks = json.loads((root / "launch.sockets.json").read_text())
    assert socks, "saw no listening socket of the embedded Ray"
    bad = {a for a, _ in socks if a not in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]")}
    assert not bad, f"embedded Ray listened on non-loopback addresses {bad}"

    d = smoke_study
    n = load_preset("smoke").to_dict()["how"]["num_samples"]
    state = json.loads((d / "state.json").read_text())
    assert {t: s["status"] for t, s in state["tasks"].items()} == {"sum": "done", "product": "done"}
    failed = json.loads((root / "faults" / "failed.json").read_text())
    assert failed["epoch"] == 2
    states = {"ok": optuna.trial.TrialState.COMPLETE, "stopped": optuna.trial.TrialState.PRUNED}
    for task in ("sum", "product"):
        trials = _trials(d, task)
        assert len(trials) == n and {t["status"] for t in trials} <= {"ok", "stopped"}, trials
        ot = {t.user_attrs["tune_trial_id"]: t.state for t in _optuna_trials(d, f"smoke/{task}")}
        assert ot == {t["trial_id"]: states[t["status"]] for t in trials}
    retried = [t for t in _trials(d, "sum") + _trials(d, "product") if t.get("resumed_from_epoch")]
    assert [(t["trial_id"], t["resumed_from_epoch"], t["status"]) for t in retried] == [(failed["trial_id"], 1, "ok")]
    assert _summary(d, retried[0])["epochs"] == 2
    rows = (d / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * n


def test_study_lifecycle_ctrl_c_resume_sigkill_resume(tmp_path):
    """launch -> Ctrl-C -> resume -> kill -9 -> resume, each fault at a deterministic point: FIFO, one trial
    at a time, and the trial that is running when the driver stops is paused (tests/faults) after a
    checkpointed epoch until Tune's saved state holds it. The interrupted trial goes on from that epoch both
    times; the finished trial is never trained or rewritten again; Optuna holds each trial once."""
    epochs = 3
    cfg = write_study(tmp_path / "s.yaml", tmp_path, "life", num_samples=3, epochs=epochs, cpus_per_trial=1)
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))
    launch = SEQSUM + ["study", "launch", "--config", str(cfg), "--no-report", "--max-concurrent", "1"]
    d = tmp_path / "life"
    exp = d / "tune" / "sum"
    resume = SEQSUM + ["study", "resume", str(d), "--no-report"]

    # 1. Ctrl-C while the second trial is paused after epoch 1 (the first one finished)
    faults = tmp_path / "faults-1"
    proc = _popen(launch, fault_env(faults, pause={"epoch": 1, "nth": 2}), tmp_path / "launch.log")
    seen: set[int] = set()
    try:
        tid = wait_paused(faults, proc, 300)["trial_id"]
        wait_saved(exp, proc, tid, 1, 120, finished=1)
        first = wait_for(lambda: [t for t in _trials(d) if t["trial_id"] != tid], 60, "the first run folder")
        before = tree(d / "trials" / "sum" / first[0]["trial_id"])
        seen |= _ours(proc)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        kill_pids(_leftovers(proc, seen))
    out = (tmp_path / "launch.log").read_text()
    assert proc.returncode == 130, out[-3000:]
    assert f"seqsum study resume {d}" in out
    assert json.loads((d / "state.json").read_text())["tasks"] == {}
    stopped = tune_snapshot(exp)[tid]  # what Tune saved on the way out: the trial unfinished, checkpointed
    assert stopped["status"] not in ("TERMINATED", "ERROR") and stopped["epoch"] == 1, stopped

    # 2. resume, then kill -9 while that trial (resumed from epoch 1) is paused after epoch 2
    faults = tmp_path / "faults-2"
    proc = _popen(resume, fault_env(faults, pause={"epoch": 2, "nth": 1}), tmp_path / "resume.log")
    seen = set()
    try:
        paused = wait_paused(faults, proc, 300)
        assert paused["trial_id"] == tid, paused
        wait_saved(exp, proc, tid, 2, 120, finished=1)
        seen |= _ours(proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-study ...
        proc.wait()
    finally:
        kill_pids(_leftovers(proc, seen))  # ... and its embedded Ray with it
    assert json.loads((d / "state.json").read_text())["tasks"] == {}
    at_kill = tune_snapshot(exp)[tid]  # nothing can change it now: the state the resume starts from
    assert at_kill["status"] == "RUNNING" and at_kill["epoch"] == 2, at_kill

    # 3. resume to the end
    r = subprocess.run(resume, env=ray_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = _trials(d)
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    assert all(t["status"] == "ok" for t in trials)
    assert {t["trial_id"]: t.get("resumed_from_epoch") for t in trials if t.get("resumed_from_epoch")} == {tid: 2}
    assert _summary(d, next(t for t in trials if t["trial_id"] == tid))["epochs"] == epochs
    assert tree(d / "trials" / "sum" / first[0]["trial_id"]) == before  # never trained or rewritten again
    ot = _optuna_trials(d, "life/sum")
    assert len(ot) == 3 and {t.state for t in ot} == {optuna.trial.TrialState.COMPLETE}
    assert sorted(t.user_attrs["tune_trial_id"] for t in ot) == sorted(t["trial_id"] for t in trials)
    state = json.loads((d / "state.json").read_text())
    assert state["tasks"]["sum"]["status"] == "done" and state["tasks"]["sum"]["trials"] == 3


FRACTIONAL = r"""
import json, sys
from pathlib import Path
from ray.cluster_utils import Cluster
from study.config import StudyConfig
from study.runner import launch
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1, "include_dashboard": False})
try:
    cfg = StudyConfig.load(sys.argv[1])
    launch(cfg, address=cluster.address)
finally:
    cluster.shutdown()
"""


@needs_netns
def test_four_trials_share_one_logical_gpu(tmp_path):
    """ray.cluster_utils.Cluster with a logical GPU (this machine has none), inside a network namespace of
    the test's own so that every socket stays on its loopback: four trials at 0.25 GPU run at once (each
    waits after epoch 1 until all four have got there: a barrier, tests/faults, not a wall-clock overlap)."""
    cfg = write_study(
        tmp_path / "s.yaml",
        tmp_path,
        "gpu",
        num_samples=4,
        epochs=2,
        train_size=256,
        cpus_per_trial=0.5,
        gpus_per_trial=0.25,
    )
    txt = (
        cfg.read_text().replace("max_concurrent: 2", "max_concurrent: 4").replace("scheduler: asha", "scheduler: fifo")
    )
    cfg.write_text(txt)
    faults = tmp_path / "faults"
    with netns_hosts(1) as (ns,):
        r = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", FRACTIONAL, str(cfg)],
            env=fault_env(faults, barrier={"epoch": 1, "n": 4, "timeout": 300}),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = _trials(tmp_path / "gpu")
    assert len(trials) == 4 and {t["status"] for t in trials} == {"ok"}
    assert not (faults / "barrier-timeout").exists(), "the four trials did not all run at once"
    assert sorted(p.name[8:] for p in faults.glob("arrived-*")) == sorted(t["trial_id"] for t in trials)
    assert {t["cuda_visible_devices"] for t in trials} == {"0"}


def _start_node(ns: str, args: list[str], env: dict[str, str]):
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            str(BIN / "ray"),
            "start",
            "--block",
            "--disable-usage-stats",
            "--num-cpus",
            "1",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_started(proc, what: str):
    lines = []
    t0 = time.time()
    while time.time() - t0 < 120:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"{what} exited: {''.join(lines)[-2000:]}")
        lines.append(line)
        if "Ray runtime started" in line:
            return
    raise AssertionError(f"{what} did not start in 120 s: {''.join(lines)[-2000:]}")


def _two_hosts(tmp_path: Path, name: str):
    """A study of two trials on hosts 10.77.0.1 (head) and 10.77.0.2, one CPU each. Fault points: both trials
    wait after epoch 1 until both got there (so one runs on each host), then the one on host 2 pauses; every
    process of host 2 is killed once Tune's saved state holds that trial with its epoch-1 checkpoint.
    Returns the run folders' params, the driver's output and what was cut."""
    port = 6390
    cfg = write_study(
        tmp_path / "s.yaml",
        tmp_path,
        name,
        num_samples=2,
        epochs=3,
        train_size=512,
        cpus_per_trial=1,
        max_failures=3,
        reuse_actors=False,  # a new actor per trial, placed where a CPU is free
    )
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))
    faults = tmp_path / "faults"
    env = fault_env(faults, barrier={"epoch": 1, "n": 2}, pause={"epoch": 1, "nth": 1, "node_ip": "10.77.0.2"})
    tmp = f"/tmp/sq{uuid.uuid4().hex[:6]}"
    log = open(tmp_path / "driver.log", "w")  # closed below, after the driver exits
    with netns_hosts(2) as (h1, h2):
        head = _start_node(
            h1,
            [
                "--head",
                "--node-ip-address",
                "10.77.0.1",
                "--port",
                str(port),
                "--include-dashboard=false",
                "--temp-dir",
                tmp,
            ],
            env,
        )
        try:
            _wait_started(head, "the head node")
            worker = _start_node(h2, ["--address", f"10.77.0.1:{port}", "--node-ip-address", "10.77.0.2"], env)
            _wait_started(worker, "the second node")
            driver = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    h1,
                    *SEQSUM,
                    "study",
                    "launch",
                    "--config",
                    str(cfg),
                    "--address",
                    f"10.77.0.1:{port}",
                    "--no-report",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            paused = wait_paused(faults, driver, 300)
            assert paused["node_ip"] == "10.77.0.2", paused
            wait_saved(tmp_path / name / "tune" / "sum", driver, paused["trial_id"], 1, 120)
            kill_pids(netns_pids(h2))  # host 2 dies: every process in it at once
            worker.wait(timeout=60)
            wait_for(lambda: not netns_pids(h2), 60, "host 2's processes to be gone")
            driver.wait(timeout=600)
        finally:
            for p in [head] + ([worker] if "worker" in locals() else []):
                kill_pids(session_pids(p.pid) | descendants(p.pid) | {p.pid})
            subprocess.run(["rm", "-rf", tmp])
            log.close()
    out = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, out[-4000:]
    arrived = [json.loads(p.read_text()) for p in faults.glob("arrived-*")]
    return _trials(tmp_path / name), out, paused, arrived


@needs_netns
def test_two_host_cluster_runs_on_both_hosts_and_survives_losing_one(tmp_path):
    trials, out, cut, arrived = _two_hosts(tmp_path, "cutoff")
    assert len(trials) == 2 and {t["status"] for t in trials} == {"ok"}, trials
    # both trials ran at once, one on each host
    assert sorted(a["node_ip"] for a in arrived) == ["10.77.0.1", "10.77.0.2"], arrived
    # the one on host 2 errored there, then went on from its epoch-1 checkpoint on host 1
    exp = tmp_path / "cutoff" / "tune" / "sum"
    assert (tune_snapshot(exp)[cut["trial_id"]]["dir"] / "error.txt").is_file(), out[-2000:]
    moved = [t for t in trials if t["trial_id"] == cut["trial_id"]]
    assert moved and moved[0]["node_ip"] == "10.77.0.1" and moved[0].get("resumed_from_epoch") == 1, (cut, trials)
    assert {t["node_ip"] for t in trials} == {"10.77.0.1"}  # host 2 is gone: both ended on host 1
