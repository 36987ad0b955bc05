"""The run folders of a study folder as tidy DataFrames (docs/STUDY_LAYOUT.md): the one reader of them.

Identity is data: task, trial_id, kind, family, params, seed, status (and a replicate's rank and
source_trial_id) come from each run's params.json, with config.json's train.* for older studies whose
params.json lacks a field; never from folder names. Metrics come from summary.json.

- `trials_frame(dir)`: one row per search-trial run folder (trials/<task>/<trial_id>/);
- `replicates_frame(dir)`: one row per replicate run folder (any run folder under rerun/).

The study writes trials.csv and plans its replicates from these; analysis.load builds the report's frames on them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from seqsum.choices import TASKS
from seqsum.config import RunConfig
from seqsum.errors import CorruptFile
from seqsum.results import read_run

from .family import family_of

WIDTH_BINS = ((32, "<=32"), (128, "33-128"), (math.inf, ">128"))
IDENTITY = ("kind", "task", "trial_id", "family", "seed", "status")
REPLICATE_IDENTITY = ("rank", "source_trial_id")


def trials_frame(study_dir: str | Path, notes: list[str] | None = None) -> pd.DataFrame:
    """One row per search-trial run folder: identity (IDENTITY, params, param.<name>), model shape, metrics.

    A folder whose config.json or summary.json cannot be read is left out (its reason added to `notes`).
    """
    runs = [r for task in TASKS for r in sorted((Path(study_dir) / "trials" / task).glob("*")) if r.is_dir()]
    return _runs_frame(runs, "search", notes)


def replicates_frame(study_dir: str | Path, notes: list[str] | None = None) -> pd.DataFrame:
    """One row per replicate run under rerun/: IDENTITY, rank, source_trial_id, params, model shape, metrics."""
    runs = sorted(p.parent for p in (Path(study_dir) / "rerun").rglob("config.json"))
    df = _runs_frame(runs, "replicate", notes)
    for col in REPLICATE_IDENTITY:
        if col not in df:
            df[col] = pd.Series(dtype="object")
    return df


def run_row(run: Path, kind: str = "search") -> dict[str, Any]:
    """One flat row for a run folder (seqsum.results.read_run: CorruptFile without a readable config.json).

    status: 'running' without summary.json (written last), else params.json's word, else summary.json's.
    trial_id: params.json's; a search trial without params.json (still running) is named by its folder.
    """
    config, summary = read_run(run)
    cfg = RunConfig.from_dict(config)
    params = _read_json(run / "params.json")
    m = cfg.model
    row: dict[str, Any] = {
        "kind": params.get("kind", kind),
        "task": params.get("task", cfg.train.task),
        "trial_id": str(params.get("trial_id", run.name)),
        "family": params.get("family") or family_of(cfg),
        "seed": params.get("seed", cfg.train.seed),
        "status": (params.get("status") or summary.get("status") or "ok") if summary else "running",
        **{k: params.get(k) for k in REPLICATE_IDENTITY if k in params},
        "params": params.get("params") or {},
        "number": params.get("number"),
        "started_at": params.get("started_at"),
        "standardize": cfg.train.standardize,
        "conv_channels": "-".join(map(str, m.conv_channels)),
        "conv_kernels": "-".join(map(str, m.conv_kernels)),
        "gru_hidden": "-".join(map(str, m.gru_hidden)),
        "bucket": bucket(m.gru_hidden),
        "activation": m.activation,
        "lr": cfg.train.lr,
        "batch_size": cfg.train.batch_size,
        "max_len": cfg.data.max_len,
        "test_max_len": cfg.data.test_max_len,
        "balance": cfg.data.balance,
        "holdout": cfg.data.holdout if isinstance(cfg.data.holdout, str) else json.dumps(cfg.data.holdout),
        "train_images": cfg.data.train_images,
        "outputs": cfg.model.outputs,
        "head": cfg.model.head,
        "class_weight": cfg.train.class_weight,
        "run_dir": str(run),
    }
    if row.get("source_trial_id") is not None:
        row["source_trial_id"] = str(row["source_trial_id"])
    row.update({f"param.{k}": v for k, v in row["params"].items()})
    row.update({k: v for k, v in summary.items() if k != "status"})
    return row


def _runs_frame(runs: list[Path], kind: str, notes: list[str] | None = None) -> pd.DataFrame:
    """Rows of `runs`; a run folder that cannot be read is left out, its one-line reason added to `notes`."""
    rows = []
    for run in runs:
        try:
            rows.append(run_row(run, kind))
        except CorruptFile as e:
            if notes is not None:
                notes.append(f"left out: {e}")
    if not rows:
        return pd.DataFrame(columns=[*IDENTITY, "params", "run_dir"])
    return pd.DataFrame(rows)


def bucket(gru_hidden) -> str:
    """Width/depth bucket of a model: GRU layers x first GRU width bin, e.g. 'GRU 2x33-128'."""
    width = gru_hidden[0]
    label = next(lab for hi, lab in WIDTH_BINS if width <= hi)
    return f"GRU {len(gru_hidden)}x{label}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}
