"""The files of one finished run, written into a folder, and read back.

A run folder holds: config.json (the resolved RunConfig), metrics.jsonl (one line per epoch),
predictions.parquet (one row per test sequence), per_target.csv, pairs.csv, checkpoint.pt and
summary.json (status, final valid and test metrics). summary.json is written last: a folder
without it is an unfinished run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .config import RunConfig
from .evaluate import Evaluation, evaluate
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
    with open(Path(out) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(_clean(metrics)) + "\n")


def write_evaluation(out: Path, ev: Evaluation) -> None:
    out = Path(out)
    ev.predictions.to_parquet(out / "predictions.parquet", index=False)
    ev.per_target.to_csv(out / "per_target.csv", index=False)
    ev.pairs.to_csv(out / "pairs.csv", index=False)


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


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=2) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _clean(obj: Any) -> Any:
    """NaN/Inf -> None so that every file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
