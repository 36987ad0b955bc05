"""Helpers for tests that start real Ray processes: process trees, listening sockets, network
namespaces (the project's own test hosts), and stopping exactly what a test started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
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


def can_netns() -> str | None:
    """None when this machine lets the tests make network namespaces, else the reason it does not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if not shutil.which("ip"):
        return "iproute2's `ip` is not installed"
    name = f"sq{uuid.uuid4().hex[:6]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name])
    return None


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


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
            for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
                kill_pids([int(pid)])
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def ray_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}
    )
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


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
