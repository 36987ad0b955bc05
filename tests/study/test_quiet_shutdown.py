"""A trial's worker drops the SystemExit that Ray's SIGTERM handler raises inside a finalizer (shutdown noise)
and still prints every other exception that Python can only report as 'Exception ignored in'."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from study.trainable import quiet_shutdown

class Dies:
    def __init__(self, exc):
        self.exc = exc
    def __del__(self):
        raise self.exc

quiet_shutdown()
Dies(SystemExit(1))  # what SIGTERM during a finalizer looks like in a Ray worker
Dies(ValueError("a real error in a finalizer"))
gc.collect()
print("done")
"""


def test_shutdown_systemexit_is_dropped_and_other_errors_still_print():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    assert "SystemExit" not in r.stderr
    assert "Exception ignored in" in r.stderr and "ValueError: a real error in a finalizer" in r.stderr
