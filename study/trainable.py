"""The Ray Tune trainable: a thin adapter over `seqsum.train.train`.

config (searched params, or {"_rerun": point} for a replicate) -> RunConfig -> train(..., report=...)
-> tune.report(metrics, checkpoint). The digit pools, the parsed StudyConfig and the base config's
evaluation sets arrive once per worker through `tune.with_parameters`. Every epoch leaves a
checkpoint (checkpoint.pt + params.json, the trial's identity). The last epoch is reported after
train() returns: train()'s own model and evaluation sets score the test and pair sets (nothing is
rebuilt from the checkpoint), and the last checkpoint holds the whole run folder, written by
seqsum.results.write_run, so everything a trial keeps reaches the storage path through Ray's
checkpoint mechanism.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seqsum.checkpoint import load_checkpoint, save_checkpoint
from seqsum.data import EvalSets, Pools
from seqsum.evaluate import evaluate
from seqsum.files import write_json
from seqsum.results import write_run
from seqsum.train import TrainResult, train

from .collect import PARAMS
from .config import StudyConfig
from .family import family_of


def _unraisable(args: Any, default: Any = sys.__unraisablehook__) -> None:
    if not issubclass(args.exc_type, SystemExit):
        default(args)


def quiet_shutdown() -> None:
    """Keep a trial's worker from printing Ray's shutdown as a failure. Ray's SIGTERM handler raises
    SystemExit; when the signal lands while a finalizer runs, Python prints it as 'Exception ignored in:
    ... SystemExit: 1' although the worker is only being stopped. Such SystemExits are dropped; every other
    unraisable exception (and every exception a trial raises) is printed as before."""
    sys.unraisablehook = _unraisable


def run_trial(
    config: dict[str, Any],
    study: StudyConfig,
    task: str | None,
    pools: Pools,
    sets: EvalSets | None = None,
    finished: dict[str, dict[str, Any]] | None = None,
) -> None:
    """One trial. `finished` (trial_id -> its last report, study.collect.finished_runs) names the trials
    whose run folder the driver already holds complete: such a trial, restored by Tune as unfinished
    after a driver died, reports its end again and neither trains nor writes anything."""
    from ray import tune  # Ray: imported only after study.session has set its environment

    started = time.time()
    quiet_shutdown()
    logging.getLogger("ray").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    ctx = tune.get_context()
    done = (finished or {}).get(ctx.get_trial_id())
    if done is not None:
        tune.report(dict(done))
        return
    point = config.get("_rerun")
    if point:
        cfg = study.replicate_run(point)
        identity = {
            "kind": "replicate",
            "rank": point["rank"],
            "source_trial_id": point["source_trial_id"],
            "params": point["params"],
        }
    else:
        cfg = study.run_config(task, dict(config))
        identity = {"kind": "search", "params": dict(config)}
    info = {
        "task": cfg.train.task,
        "trial_id": ctx.get_trial_id(),
        "family": family_of(cfg),
        "seed": cfg.train.seed,
        **identity,
        "status": "running",
        "node_ip": _node_ip(),
        "hostname": socket.gethostname(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "started_at": started,
    }
    resume = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = load_checkpoint(Path(d) / "checkpoint.pt")
        info["resumed_from_epoch"] = int(resume["epoch"])

    harness = {"checkpoint_seconds": 0.0}
    last: dict[str, Any] = {}

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        if metrics["status"] == "diverged" or metrics["epoch"] >= cfg.train.epochs:
            last.update(metrics=metrics, state=state)  # the final epoch is reported after train() returns
            return
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(state, Path(d) / "checkpoint.pt")
            write_json(Path(d) / PARAMS, info)
            tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(d))
        harness["checkpoint_seconds"] += time.perf_counter() - t0

    result = train(cfg, pools, report=report, resume=resume, sets=sets)
    # A trial resumed from its final checkpoint trains nothing: its last epoch is the checkpoint's.
    metrics = dict(last.get("metrics") or result.history[-1])
    state = last.get("state") or resume
    if metrics["status"] == "diverged":
        metrics["valid/exact"] = 0.0  # NaN predictions are never exact; keeps the searcher's values finite
    info["checkpoint_seconds"] = harness["checkpoint_seconds"]
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(state, Path(d) / "checkpoint.pt")
        metrics.update(_write_run_folder(Path(d), cfg, result, state, info))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _write_run_folder(d: Path, cfg, result: TrainResult, state: dict[str, Any], info: dict[str, Any]) -> dict:
    """Evaluate train()'s own model on train()'s own test and pair sets (status ok) and write the run folder
    of a finished trial into checkpoint dir `d`; return the test metrics and train_seconds (reported to Tune
    with the last epoch)."""
    t0 = time.perf_counter()
    ev = None
    if result.status == "ok":
        ev = evaluate(result.model, result.codec, result.pools, result.sets, cfg.train.task)
    train_seconds = state["train_seconds"]  # every segment of a resumed trial
    params = {
        **info,
        "status": result.status,
        "finished_at": time.time(),
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    write_run(d, cfg, state["history"], result.status, train_seconds, evaluation=ev, params=params)
    return {**(ev.metrics if ev is not None else {}), "train_seconds": train_seconds}


def _node_ip() -> str:
    try:
        import ray  # (the same)

        return ray.util.get_node_ip_address()
    except Exception:  # outside a Ray worker
        return "local"
