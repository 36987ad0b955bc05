"""Helpers for tests that start real Ray processes: process trees, listening sockets, network
namespaces (the project's own test hosts), and stopping exactly what a test started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.helpers import REPO

BIN = Path(sys.executable).parent
SEQSUM = [sys.executable, "-m", "seqsum"]


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p.name))
    return kids


def descendants(pid: int) -> set[int]:
    kids, out, todo = children_map(), set(), [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def session_pids(sid: int) -> set[int]:
    """Processes whose session id is `sid` (what a setsid'ed process and everything it started share)."""
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[4]) == sid:
                    out.add(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_pids(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def listeners(pids: set[int], netns: str | None = None) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket owned by one of `pids`."""
    cmd = ["ss", "-ltnpH"]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        local = parts[3]
        for chunk in line.split("pid=")[1:]:
            pid = int(chunk.split(",")[0])
            if pid in pids:
                found.append((local.rsplit(":", 1)[0], pid))
    return found


NOT_ROOT = None if os.geteuid() == 0 else "needs root to make network namespaces (CI runs as root)"


def sh(*cmd: str) -> None:
    """Run a setup command; a failure raises with the command and its stderr (as root, tests that need
    network namespaces fail when `ip netns` does not work: they never skip silently)."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip()}")


@contextmanager
def netns_hosts(n: int):
    """n network namespaces with loopback up; for n=2 a veth pair joins them as hosts 10.77.0.1 and 10.77.0.2."""
    tag = uuid.uuid4().hex[:5]
    names = [f"sq{tag}h{i + 1}" for i in range(n)]
    made = []
    try:
        for name in names:
            sh("ip", "netns", "add", name)
            made.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        if n == 2:
            a, b = f"sq{tag}a", f"sq{tag}b"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            for i, (name, dev) in enumerate(zip(names, (a, b))):
                sh("ip", "link", "set", dev, "netns", name)
                sh("ip", "-n", name, "addr", "add", f"10.77.0.{i + 1}/24", "dev", dev)
                sh("ip", "-n", name, "link", "set", dev, "up")
        yield names
    finally:
        for name in made:
            kill_pids(netns_pids(name))
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def netns_pids(name: str) -> set[int]:
    """Every process running in network namespace `name` (one of the tests' own hosts)."""
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def ray_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}
    )
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


FAULTS = REPO / "tests" / "faults"  # sitecustomize.py: deterministic fault points in the workers


def fault_env(folder: Path, env: dict[str, str] | None = None, **plan) -> dict[str, str]:
    """`env` (default ray_env()) with the fault points `plan` (tests/faults/sitecustomize.py: barrier, fail,
    pause) written to folder/plan.json and injected into every Python process started with it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.json").write_text(json.dumps(plan))
    env = dict(env if env is not None else ray_env())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAULTS), str(REPO), env.get("PYTHONPATH")) if p)
    env["SEQSUM_TEST_FAULTS"] = str(folder)
    return env


def wait_paused(folder: Path, proc, timeout: float) -> dict:
    """Wait until a trial pauses at its fault point (folder/paused.json); fails at once when `proc` exits."""

    def paused():
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited (rc {proc.returncode}) before a trial paused")
        try:
            return json.loads((folder / "paused.json").read_text())
        except (OSError, ValueError):
            return None

    return wait_for(paused, timeout, "a trial to pause at its fault point")


def wait_saved(exp: Path | None, proc, trial_id: str, epoch: int, timeout: float, finished: int = 0, read=None) -> dict:
    """Wait until Tune's saved experiment state (what `Tuner.restore` starts from) holds `trial_id` RUNNING
    with a checkpoint of `epoch` and `finished` trials TERMINATED; `read` returns the newest
    experiment_state JSON text (default: from the folder `exp`). Returns the whole snapshot."""
    snap = {}

    def saved():
        nonlocal snap
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited (rc {proc.returncode}): {snap}")
        snap = tune_snapshot(exp, read)
        t = snap.get(trial_id)
        done = sum(s["status"] == "TERMINATED" for s in snap.values())
        return t is not None and t["status"] == "RUNNING" and t["epoch"] >= epoch and done >= finished

    try:
        wait_for(saved, timeout, "Tune to save the paused trial's state")
    except TimeoutError as e:
        raise TimeoutError(f"{e}: {snap}") from None
    return snap


def write_study(
    path: Path,
    tmp_storage: Path,
    name: str,
    tasks=("sum",),
    num_samples: int = 2,
    epochs: int = 2,
    train_size: int = 512,
    **where,
) -> Path:
    """A smoke study config (one task by default) as a YAML file."""
    from study.config import load_preset

    d = load_preset("smoke").to_dict()
    d["what"]["tasks"] = list(tasks)
    d["what"]["base"]["train"]["epochs"] = epochs
    d["what"]["base"]["data"]["train_size"] = train_size
    d["how"]["num_samples"] = num_samples
    d["where"].update({"storage": str(tmp_storage), "name": name, **where})
    path.write_text(yaml.safe_dump(d))
    return path


def wait_for(pred, timeout: float, what: str, every: float = 0.3):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- what Tune has written into an experiment folder: timing-sensitive tests wait on these states ----------
def newest_state(exp: Path) -> str | None:
    states = sorted(exp.glob("experiment_state-*.json"))
    return states[-1].read_text() if states else None


def tune_snapshot(exp: Path | None, read=None) -> dict[str, dict]:
    """The trials in the newest experiment state Tune saved into `exp` (what `Tuner.restore` will start
    from; `read()` gives its text, default newest_state(exp)): trial_id -> {status, epoch (last reported,
    its checkpoint included), node_ip, dir, failures}. {} while there is none, or while one is being copied in."""
    try:
        text = read() if read is not None else newest_state(exp)
        if not text:
            return {}
        data = json.loads(text)
        out = {}
        for state, meta in data["trial_data"]:
            s, m = json.loads(state), json.loads(meta)
            last = m.get("last_result") or {}
            out[s["trial_id"]] = {
                "status": s["status"],
                "epoch": last.get("epoch") or 0,
                "node_ip": last.get("node_ip"),
                "dir": exp / s["relative_logdir"] if exp is not None else None,
                "failures": m.get("num_failures", 0),
            }
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return {}
