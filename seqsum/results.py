"""The files of one finished run, written into a folder, and read back.

A run folder holds: config.json (the resolved RunConfig), metrics.jsonl (one line per epoch),
predictions.parquet (one row per test sequence), per_target.csv, pairs.csv, checkpoint.pt and
summary.json (status, final valid and test metrics). summary.json is written last: a folder
without it is an unfinished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import RunConfig
from .evaluate import Evaluation, evaluate
from .files import append_line, clean, read_jsonl, write_csv, write_json, write_parquet
from .train import TrainResult

FILES = (
    "config.json",
    "metrics.jsonl",
    "predictions.parquet",
    "per_target.csv",
    "pairs.csv",
    "checkpoint.pt",
    "summary.json",
)


def append_metrics(out: Path, metrics: dict[str, Any]) -> None:
    append_line(Path(out) / "metrics.jsonl", json.dumps(clean(metrics)))


def write_evaluation(out: Path, ev: Evaluation) -> None:
    out = Path(out)
    write_parquet(out / "predictions.parquet", ev.predictions)
    write_csv(out / "per_target.csv", ev.per_target)
    write_csv(out / "pairs.csv", ev.pairs)


def finish_run(out: Path, cfg: RunConfig, result: TrainResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate `result` on the test and pair sets (unless it diverged), write the files, return the summary."""
    out = Path(out)
    last = result.history[-1] if result.history else {}
    summary: dict[str, Any] = {
        "status": result.status,
        "epochs": len(result.history),
        "train_seconds": result.train_seconds,
        **{k: v for k, v in last.items() if k.startswith(("train/", "valid/"))},
    }
    if result.status == "ok":
        ev = evaluate(result.model, result.codec, result.pools, result.sets, cfg.train.task)
        write_evaluation(out, ev)
        summary.update(ev.metrics)
    summary.update(extra or {})
    write_json(out / "summary.json", summary)
    return summary


__all__ = ["FILES", "append_metrics", "finish_run", "read_jsonl", "write_evaluation", "write_json"]
