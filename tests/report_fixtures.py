"""Synthetic study folders for the analysis tests: run folders written from numbers, no training.

Each run folder has what seqsum.results writes (config.json, summary.json, per_target.csv, pairs.csv,
metrics.jsonl) and the params.json study/ writes, with numbers the test chooses, so table and interval
tests know the answer and run in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqsum.config import RunConfig

SMALL = {
    "data.train_size": 256,
    "data.valid_size": 64,
    "data.test_size": 200,
    "data.pairs_per_cell": 2,
    "model.conv_channels": [4],
    "model.conv_kernels": [5],
    "model.gru_hidden": [8],
    "train.epochs": 1,
    "train.device": "cpu",
}


def write_run(
    d: Path,
    task: str,
    family: str,
    seed: int,
    exact: float,
    params: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    status: str = "ok",
    n: int = 200,
) -> Path:
    """A finished run folder whose test/exact is `exact` on `n` sequences (lengths 1..2, half each)."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig().replace(
        {**SMALL, "data.max_len": 2, "train.task": task, "train.loss": family, "train.seed": seed}
    )
    (d / "config.json").write_text(json.dumps(cfg.to_dict()))
    half = n // 2
    summary = {
        "status": status,
        "epochs": 1,
        "valid/exact": exact,
        "test/n": n,
        "test/exact": exact,
        "test/mae": 1 - exact,
        "test/mse": 2 * (1 - exact),
        "pairs/9x9/exact": exact / 2,
        **{f"test/len={k}/n": half for k in (1, 2)},
        **{f"test/len={k}/exact": exact for k in (1, 2)},
    }
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train/loss": 1.0, "valid/exact": exact}) + "\n")
    targets = np.array([0, 5, 12, 40])
    pd.DataFrame(
        {
            "target": targets,
            "n": n // 4,
            "exact": exact,
            "mae": 1 - exact,
            "rmse": 1.0,
            "rel_err": 0.1,
            "mean_prediction": targets.astype(float),
        }  # fmt: skip
    ).to_csv(d / "per_target.csv", index=False)
    op = np.add if task == "sum" else np.multiply
    grid = [(a, b) for a in range(10) for b in range(10)]
    pd.DataFrame(
        {
            "a": [a for a, _ in grid],
            "b": [b for _, b in grid],
            "n": 200,
            "target": [int(op(a, b)) for a, b in grid],
            "exact": exact,
            "mae": 0.5,
            "mean_prediction": 1.0,
        }  # fmt: skip
    ).to_csv(d / "pairs.csv", index=False)
    p = {"task": task, "family": family, "seed": seed, "params": params or {"loss": family}, "status": status}
    (d / "params.json").write_text(json.dumps({**p, **(info or {})}))
    return d


def make_synthetic_study(root: Path, replicates: dict[tuple[str, str], list[float]] | None = None) -> Path:
    """trials/ with one search trial per task x family; rerun/ with one replicate per seed of `replicates`."""
    d = root / "syn"
    (d / "trials").mkdir(parents=True)
    (d / "study.yaml").write_text("how: {metric: valid/exact, mode: max}\nwhere: {name: syn}\n")
    n = 0
    for task in ("sum", "product"):
        for family, exact in (("mse", 0.3), ("log", 0.5), ("classify", 0.7)):
            tid = f"trial{n:02d}"
            write_run(d / "trials" / task / tid, task, family, n, exact, info={"trial_id": tid, "kind": "search",
                      "number": n})  # fmt: skip
            n += 1
    for (task, family), values in (replicates or {}).items():
        for i, exact in enumerate(values):
            tid = f"rep-{task}-{family}-{i}"
            info = {"trial_id": tid, "kind": "replicate", "rank": 1, "source_trial_id": "trial00"}
            write_run(d / "rerun" / task / tid, task, family, 1000 + i, exact, info=info)
    return d
