"""Deterministic fault points for the tests' Ray studies, injected from the tests (no switch in seqsum).

A test that wants a fault puts this folder first on PYTHONPATH and names a fault folder in SEQSUM_TEST_FAULTS
(tests/raytools.py: `fault_env`); Python imports this module in every process of that environment, the
driver, the Ray nodes it starts and their workers alike. Without SEQSUM_TEST_FAULTS it does nothing. With
it, when a worker imports study.trainable, the `train` it calls is wrapped: after each epoch's report (the
epoch's checkpoint is in storage by then, unless it is the trial's last epoch) the plan in
FAULTS/plan.json is applied, in this order:

- "barrier": {"epoch": k, "n": n}: wait until n trials have reported epoch k (proof that n ran at once);
  after "timeout" seconds (default 300) go on and leave FAULTS/barrier-timeout.
- "fail": {"epoch": k, "nth": i}: the i-th trial to report epoch k raises, once (FAULTS/failed.json): its
  retry, which reports epoch k again when k is its last, goes on.
- "pause": {"epoch": k, "nth": i, "node_ip": ip}: the i-th trial to report epoch k (on node `ip`, if
  given) writes FAULTS/paused.json and waits until the test creates FAULTS/release; once per FAULTS.

"The i-th trial" is decided by exclusive file creation in FAULTS, so it holds across processes and hosts
that share the folder; a trial counts once per fault and epoch.
"""

from __future__ import annotations

import os

ENV = "SEQSUM_TEST_FAULTS"


def _install() -> None:
    import importlib.abc
    import importlib.machinery
    import sys

    class _WrapTrainable(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "study.trainable":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                module.train = _wrap(module.train)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _WrapTrainable())


def _wrap(train):
    import functools

    @functools.wraps(train)
    def wrapped(*args, report=None, **kw):
        if report is None:
            return train(*args, **kw)

        def after_epoch(metrics, state):
            report(metrics, state)
            _apply(int(metrics["epoch"]))

        return train(*args, report=after_epoch, **kw)

    return wrapped


def _apply(epoch: int) -> None:
    import json
    import time
    from pathlib import Path

    import ray
    from ray import tune

    folder = Path(os.environ[ENV])
    plan = json.loads((folder / "plan.json").read_text())
    trial = tune.get_context().get_trial_id()
    node = ray.util.get_node_ip_address()
    what = {"trial_id": trial, "epoch": epoch, "node_ip": node, "pid": os.getpid()}

    b = plan.get("barrier")
    if b and b["epoch"] == epoch:
        (folder / f"arrived-{trial}").write_text(json.dumps(what))
        t0 = time.time()
        while len(list(folder.glob("arrived-*"))) < b["n"]:
            if time.time() - t0 > b.get("timeout", 300):
                (folder / "barrier-timeout").write_text(json.dumps(what))
                break
            time.sleep(0.1)

    f = plan.get("fail")
    if f and f["epoch"] == epoch and not (folder / "failed.json").exists():  # once: its retry goes on
        if _nth(folder, "fail", epoch, trial) == f.get("nth", 1):
            (folder / "failed.json").write_text(json.dumps(what))
            raise RuntimeError(f"injected failure after epoch {epoch} (tests/faults)")

    p = plan.get("pause")
    if p and p["epoch"] == epoch and p.get("node_ip") in (None, node) and not (folder / "paused.json").exists():
        if _nth(folder, "pause", epoch, trial) == p.get("nth", 1):
            (folder / "paused.json").write_text(json.dumps(what))
            while not (folder / "release").exists():
                time.sleep(0.1)


def _nth(folder, fault: str, epoch: int, trial: str) -> int:
    """This trial's place (1, 2, ...) among the trials that reached `epoch` for `fault`."""
    i = 1
    while True:
        slot = folder / f"{fault}-e{epoch}-{i}"
        try:
            fd = os.open(slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = slot.read_text()
            if owner == trial:
                return i
            if owner:
                i += 1
            continue  # empty: its writer is between creating and writing it; look again
        with os.fdopen(fd, "w") as fh:
            fh.write(trial)
        return i


if os.environ.get(ENV):
    _install()
