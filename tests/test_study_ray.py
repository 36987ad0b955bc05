"""Studies on real Ray: the embedded instance (loopback only), resume after SIGKILL, a trial that
raises, fractional GPUs on a logical GPU, and a real two-host cluster in the tests' own network
namespaces (with one host cut off mid-study). Each test stops exactly the processes it started."""

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
from raytools import (
    BIN,
    NOT_ROOT,
    SEQSUM,
    descendants,
    epochs_checkpointed,
    kill_pids,
    listeners,
    netns_hosts,
    netns_pids,
    ray_env,
    session_pids,
    tune_snapshot,
    wait_for,
    wait_mid_trial,
    write_study,
)

from study.config import load_preset

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


def test_embedded_study_on_loopback_only_with_a_retried_trial(tmp_path):
    """The README's main job in small: both tasks, every file of the layout, only loopback listeners;
    a trial that raises once is retried from its checkpoint and the study goes on."""
    marker = tmp_path / "failed-once"
    env = ray_env(SEQSUM_FAIL_ONCE=str(marker))
    # FIFO: ASHA could stop the trial that is about to fail, and then there would be nothing to retry
    proc = _popen(
        SEQSUM
        + ["study", "launch", "--preset", "smoke", "--storage", str(tmp_path), "--no-report", "--scheduler", "fifo"],
        env,
        tmp_path / "driver.log",
    )
    seen, socks = set(), []
    try:
        while proc.poll() is None:
            pids = _ours(proc)
            seen |= pids
            socks += listeners(pids)
            time.sleep(0.5)
        out = (tmp_path / "driver.log").read_text()
    finally:
        kill_pids(_ours(proc) | seen - {os.getpid()})
    assert proc.returncode == 0, out[-3000:]
    assert socks, "saw no listening socket of the embedded Ray"
    bad = {a for a, _ in socks if a not in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]")}
    assert not bad, f"embedded Ray listened on non-loopback addresses {bad}"

    d = tmp_path / "smoke"
    n = load_preset("smoke").to_dict()["how"]["num_samples"]
    state = json.loads((d / "state.json").read_text())
    assert {t: s["status"] for t, s in state["tasks"].items()} == {"sum": "done", "product": "done"}
    for task in ("sum", "product"):
        trials = _trials(d, task)
        assert len(trials) == n and {t["status"] for t in trials} == {"ok"}
        for t in trials:
            folder = d / "trials" / task / t["trial_id"]
            files = ["config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"]
            if t["status"] == "ok":
                files += ["predictions.parquet", "per_target.csv", "pairs.csv"]
                assert json.loads((folder / "summary.json").read_text())["test/n"] == 256
            for f in files:
                assert (folder / f).is_file(), f"{folder}/{f}"
        ot = _optuna_trials(d, f"smoke/{task}")
        assert len(ot) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in ot)
        assert sorted(t.user_attrs["tune_trial_id"] for t in ot) == sorted(t["trial_id"] for t in trials)
    # the injected failure: exactly one trial raised after epoch 1 and was resumed from that checkpoint
    failed = marker.read_text()
    retried = [t for t in _trials(d, "sum") + _trials(d, "product") if t.get("resumed_from_epoch")]
    assert [t["trial_id"] for t in retried] == [failed] and retried[0]["resumed_from_epoch"] == 1
    rows = (d / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * n


def test_resume_after_driver_sigkill(tmp_path):
    # FIFO (ASHA could stop the trial) and one trial at a time. The driver is killed only once Tune's saved
    # experiment state holds a finished trial and a running one with a checkpoint, 3+ epochs short of its end
    epochs = 8
    cfg = write_study(
        tmp_path / "s.yaml", tmp_path, "crash", num_samples=3, epochs=epochs, train_size=8192, cpus_per_trial=1
    )
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))
    env = ray_env()
    launch = SEQSUM + ["study", "launch", "--config", str(cfg), "--no-report", "--max-concurrent", "1"]
    proc = _popen(launch, env, tmp_path / "driver.log")
    d = tmp_path / "crash"
    exp = d / "tune" / "sum"
    seen: set[int] = set()
    try:
        tid, _ = wait_mid_trial(exp, epochs, proc, timeout=480, finished=1)
        seen |= _ours(proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-study ...
        proc.wait()
    finally:
        kill_pids(_leftovers(proc, seen))  # ... and its embedded Ray with it
    assert json.loads((d / "state.json").read_text())["tasks"] == {}
    # nothing can change it now: the state the resume starts from has that trial running, checkpointed
    at_kill = tune_snapshot(exp)[tid]
    assert at_kill["status"] == "RUNNING" and at_kill["epoch"] >= 1, at_kill

    r = subprocess.run(
        SEQSUM + ["study", "resume", str(d), "--no-report"], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = _trials(d)
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    assert all(t["status"] == "ok" for t in trials)
    ot = _optuna_trials(d, "crash/sum")
    assert len(ot) == 3, [t.state for t in ot]
    assert not [t for t in ot if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.user_attrs["tune_trial_id"] for t in ot}) == 3
    assert json.loads((d / "state.json").read_text())["tasks"]["sum"]["status"] == "done"
    # the trial that was running when the driver died went on from its checkpoint
    killed = [t for t in trials if t["trial_id"] == tid]
    assert killed and killed[0].get("resumed_from_epoch") == at_kill["epoch"], (at_kill, trials)

    # then rerun the best config with two fresh seeds and one epoch: the resumed study is a whole one
    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--top", "1", "--seeds", "2", "--epochs", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reps = [json.loads(p.read_text()) for p in sorted((d / "rerun" / "sum").glob("*/params.json"))]
    assert len(reps) == 2 and len({r["seed"] for r in reps}) == 2, reps
    value = {t["trial_id"]: _summary(d, t)["valid/exact"] for t in trials}
    assert {r["source_trial_id"] for r in reps} <= {k for k, v in value.items() if v == max(value.values())}
    for rep in reps:
        assert rep["rank"] == 1 and _summary(d, rep, "rerun")["epochs"] == 1
    summary = (d / "rerun" / "summary.csv").read_text()
    assert "test/exact" in summary and "n = 2" in r.stdout
    # an existing rerun is never replaced silently
    r = subprocess.run(
        SEQSUM + ["study", "rerun", str(d), "--top", "1", "--seeds", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (d / "rerun" / "summary.csv").read_text() == summary


FRACTIONAL = r"""
import json, sys
from pathlib import Path
from ray.cluster_utils import Cluster
from study.config import StudyConfig
from study.runner import launch
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1, "include_dashboard": False})
try:
    cfg = StudyConfig.load(sys.argv[1])
    launch(cfg, address=cluster.address, report=False)
finally:
    cluster.shutdown()
"""


@needs_netns
def test_four_trials_share_one_logical_gpu(tmp_path):
    """ray.cluster_utils.Cluster with a logical GPU (this machine has none), inside a network namespace of
    the test's own so that every socket stays on its loopback: four trials at 0.25 GPU run at once."""
    cfg = write_study(
        tmp_path / "s.yaml",
        tmp_path,
        "gpu",
        num_samples=4,
        epochs=3,
        train_size=1024,
        cpus_per_trial=0.5,
        gpus_per_trial=0.25,
    )
    txt = (
        cfg.read_text().replace("max_concurrent: 2", "max_concurrent: 4").replace("scheduler: asha", "scheduler: fifo")
    )
    cfg.write_text(txt)
    with netns_hosts(1) as (ns,):
        r = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", FRACTIONAL, str(cfg)],
            env=ray_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = _trials(tmp_path / "gpu")
    assert len(trials) == 4 and {t["status"] for t in trials} == {"ok"}
    assert max(t["started_at"] for t in trials) < min(t["finished_at"] for t in trials), "the four did not overlap"
    assert {t["cuda_visible_devices"] for t in trials} == {"0"}


def _start_node(ns: str, args: list[str], tmp: str):
    env = ray_env()
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


CUT_EPOCHS = 8  # long trials (8 epochs of 8192 sequences): host 2 is cut with 3+ epochs of its trial to go


def _two_hosts(tmp_path: Path, name: str, cut_off: bool):
    """Run a study on hosts 10.77.0.1 (head) and 10.77.0.2, one CPU each. With `cut_off`, every process of
    host 2 is killed while its trial is provably running and checkpointed; returns what was cut."""
    port = 6390
    cfg = write_study(
        tmp_path / "s.yaml",
        tmp_path,
        name,
        num_samples=2 if cut_off else 4,  # cut off: one trial per host
        epochs=CUT_EPOCHS if cut_off else 2,
        train_size=8192 if cut_off else 512,
        cpus_per_trial=1,
        max_failures=3,
        # A new actor per trial: with reused actors, a loaded machine can finish host 1's trial before host 2's
        # actor has started, and Tune then drops that actor and runs every trial on host 1.
        reuse_actors=False,
    )
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))
    tmp = f"/tmp/sq{uuid.uuid4().hex[:6]}"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below, after the driver exits
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
            tmp,
        )
        try:
            _wait_started(head, "the head node")
            worker = _start_node(h2, ["--address", f"10.77.0.1:{port}", "--node-ip-address", "10.77.0.2"], tmp)
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
                env=ray_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            cut = None
            if cut_off:
                # Tune's saved state has a trial RUNNING on host 2 with a checkpoint, 3+ epochs from its end
                exp = tmp_path / name / "tune" / "sum"
                tid, seen = wait_mid_trial(exp, CUT_EPOCHS, driver, timeout=480, node_ip="10.77.0.2")
                kill_pids(netns_pids(h2))  # host 2 dies: every process in it at once
                worker.wait(timeout=60)
                wait_for(lambda: not netns_pids(h2), 60, "host 2's processes to be gone")
                cut = {"trial_id": tid, "epoch": seen["epoch"], "checkpointed": epochs_checkpointed(seen["dir"])}
            driver.wait(timeout=600)
        finally:
            for p in [head] + ([worker] if "worker" in locals() else []):
                kill_pids(session_pids(p.pid) | descendants(p.pid) | {p.pid})
            subprocess.run(["rm", "-rf", tmp])
            log.close()
    out = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, out[-4000:]
    return _trials(tmp_path / name), out, cut


@needs_netns
def test_two_host_cluster_runs_trials_on_both_hosts(tmp_path):
    trials, out, _ = _two_hosts(tmp_path, "twohost", cut_off=False)
    assert len(trials) == 4 and {t["status"] for t in trials} == {"ok"}
    assert {t["node_ip"] for t in trials} == {"10.77.0.1", "10.77.0.2"}, out[-2000:]


@needs_netns
def test_two_host_cluster_survives_losing_a_host(tmp_path):
    trials, out, cut = _two_hosts(tmp_path, "cutoff", cut_off=True)
    assert len(trials) == 2 and {t["status"] for t in trials} == {"ok"}, trials
    # host 2 died with its trial unfinished (nothing of host 2 runs any more, nothing else has resumed it yet)
    assert 1 <= cut["checkpointed"] < CUT_EPOCHS, cut
    # that trial errored there, then went on from a checkpoint at least as late as the one Tune held, on host 1
    exp = tmp_path / "cutoff" / "tune" / "sum"
    assert (tune_snapshot(exp)[cut["trial_id"]]["dir"] / "error.txt").is_file(), out[-2000:]
    moved = [t for t in trials if t["trial_id"] == cut["trial_id"]]
    assert moved and moved[0]["node_ip"] == "10.77.0.1", (cut, trials)
    assert cut["epoch"] <= moved[0].get("resumed_from_epoch", 0) <= cut["checkpointed"], (cut, trials)


def test_ctrl_c_leaves_a_resumable_study(tmp_path):
    # FIFO, one trial at a time: Ctrl-C comes once Tune's saved state holds a finished trial and a running
    # one with a checkpoint, 3+ epochs from its end; the resume then goes on from that trial's checkpoint
    epochs = 8
    cfg = write_study(tmp_path / "s.yaml", tmp_path, "ctrlc", num_samples=2, epochs=epochs, train_size=8192)
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))
    env = ray_env()
    launch = SEQSUM + ["study", "launch", "--config", str(cfg), "--no-report", "--max-concurrent", "1"]
    proc = _popen(launch, env, tmp_path / "driver.log")
    d = tmp_path / "ctrlc"
    exp = d / "tune" / "sum"
    seen: set[int] = set()
    try:
        tid, _ = wait_mid_trial(exp, epochs, proc, timeout=480, finished=1)
        seen |= _ours(proc)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        kill_pids(_leftovers(proc, seen))
    out = (tmp_path / "driver.log").read_text()
    assert proc.returncode == 130, out[-3000:]
    assert f"seqsum study resume {d}" in out
    assert json.loads((d / "state.json").read_text())["tasks"] == {}
    stopped = tune_snapshot(exp)[tid]  # what Tune saved on the way out: the trial unfinished, checkpointed
    assert stopped["status"] not in ("TERMINATED", "ERROR") and stopped["epoch"] >= 1, stopped
    r = subprocess.run(
        SEQSUM + ["study", "resume", str(d), "--no-report"], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = _trials(d)
    assert len(trials) == 2 and len(_optuna_trials(d, "ctrlc/sum")) == 2
    assert [t.get("resumed_from_epoch") for t in trials if t["trial_id"] == tid] == [stopped["epoch"]], trials
