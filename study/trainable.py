"""The Ray Tune trainable: a thin adapter over `seqsum.train.train`.

dict of searched params -> RunConfig -> train(..., report=...) -> tune.report(metrics, checkpoint).
The digit pools arrive once per worker through `tune.with_parameters`. Every epoch leaves a
checkpoint (resume point); the last one also holds the whole run folder (evaluation included),
so everything a trial keeps reaches the storage path through Ray's checkpoint mechanism.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

from seqsum.data import Pools, eval_sets
from seqsum.evaluate import evaluate
from seqsum.results import append_metrics, write_evaluation, write_json
from seqsum.train import load_checkpoint, model_from_checkpoint, save_checkpoint, train

from .config import StudyConfig

FAIL_ONCE_ENV = (
    "SEQSUM_FAIL_ONCE"  # fault injection for tests: a marker file path; the first trial to see it missing raises
)


def run_trial(config: dict[str, Any], study: dict[str, Any], task: str, pools: Pools) -> None:
    started = time.time()
    logging.getLogger("ray").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    scfg = StudyConfig.from_dict(study)
    rerun = config.get("_rerun")
    params = dict(rerun["params"]) if rerun else dict(config)
    cfg = scfg.run_config(task, params)
    if rerun:
        cfg = cfg.replace({"train.seed": rerun["seed"], "train.epochs": rerun["epochs"]})
    ctx = tune.get_context()
    info = {
        "trial_id": ctx.get_trial_id(),
        "task": task,
        "params": params,
        "rerun": rerun,
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

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        metrics = dict(metrics)
        if metrics["status"] == "diverged":
            metrics["valid/exact"] = 0.0  # NaN predictions are never exact; keeps the searcher's values finite
        final = metrics["status"] == "diverged" or metrics["epoch"] >= cfg.train.epochs
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            save_checkpoint(state, d / "checkpoint.pt")
            if final:
                info["checkpoint_seconds"] = harness["checkpoint_seconds"]
                metrics.update(_write_run_folder(d, state, pools, metrics, info))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(d)))
        harness["checkpoint_seconds"] += time.perf_counter() - t0
        marker = os.environ.get(FAIL_ONCE_ENV)
        if marker and not final and not Path(marker).exists():
            Path(marker).write_text(info["trial_id"])
            raise RuntimeError(f"injected failure ({FAIL_ONCE_ENV}) after epoch {metrics['epoch']}")

    train(cfg, pools, report=report, resume=resume)


def _write_run_folder(
    d: Path, state: dict[str, Any], pools: Pools, last: dict[str, Any], info: dict[str, Any]
) -> dict[str, Any]:
    """Write the run folder of a finished trial into checkpoint dir `d`; return the test metrics."""
    t0 = time.perf_counter()
    cfg, model, codec = model_from_checkpoint(state)
    cfg.save(d / "config.json")
    for m in state["history"]:
        append_metrics(d, m)
    status = last["status"]
    test: dict[str, Any] = {}
    if status == "ok":
        model.to(pools.device)
        ev = evaluate(model, codec, pools, eval_sets(pools, cfg.data), cfg.train.task)
        write_evaluation(d, ev)
        test = ev.metrics
    train_seconds = sum(m.get("time/epoch_s", 0.0) for m in state["history"])
    summary = {
        "status": status,
        "epochs": len(state["history"]),
        "train_seconds": train_seconds,
        **{k: v for k, v in last.items() if k.startswith(("train/", "valid/"))},
        **test,
    }
    write_json(d / "summary.json", summary)
    eval_seconds = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_json(
        d / "params.json",
        {
            **info,
            "status": status,
            "finished_at": time.time(),
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "peak_rss_mb": peak_rss_mb,
        },
    )
    return {**test, "train_seconds": train_seconds}


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside a Ray worker
        return "local"
