"""benchmarks/study_overhead.py --smoke runs a real (tiny) study and prints its time split."""

import re
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.raytools import ray_env


@pytest.mark.slow
def test_study_overhead_smoke_prints_the_split():
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "study_overhead.py"), "--smoke"],
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=540,  # ~25 s on an idle 2-core machine; generous for a loaded one (tests/stress.sh)
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    shares = {
        k.strip(): float(v)
        for k, v in re.findall(
            r"^(inside train\(\)|checkpoints \+ reports|final evaluation \+ run folder|"
            r"everything else[^\d]*?)\s+([\d.]+)%",
            r.stdout,
            re.M,
        )
    }
    assert len(shares) == 4, r.stdout
    assert abs(sum(shares.values()) - 100) < 0.5  # the parts add up to the whole
    rss = [float(x) for x in re.findall(r"(\d+) MB", r.stdout)]
    assert len(rss) == 2 and all(100 < x < 4000 for x in rss)
