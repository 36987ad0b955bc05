"""Run folders from Tune's results: each ended trial's last checkpoint becomes ROOT/<task>/<trial_id>/.

A trial that ran to its end (or diverged) left the whole run folder in its last checkpoint; one that
ASHA stopped or that errored left checkpoint.pt and params.json only, and the rest of its run folder
is written here from the checkpoint, through the one run-folder writer (seqsum.results.write_run).

A complete run folder (summary.json, and a status other than error in params.json) is final: it is never
overwritten, and `finished_runs` hands the driver of a resumed experiment the trials that have one, so
that a trial Tune restores as unfinished (a driver killed before Tune saved its end) is not trained again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from seqsum.checkpoint import load_checkpoint
from seqsum.config import RunConfig
from seqsum.errors import ConfigError
from seqsum.files import read_json, write_json
from seqsum.results import read_metrics, write_run

PARAMS = "params.json"


def status_of(metrics: dict[str, Any], epochs: int, errored: bool) -> str:
    """ok | stopped (fewer epochs than configured: ASHA) | diverged | error, from a trial's last result."""
    if errored:
        return "error"
    if metrics.get("status") == "diverged":
        return "diverged"
    return "ok" if (metrics.get("epoch") or 0) >= epochs else "stopped"


def collect_trial(root: Path, checkpoint, status: str, epoch: int | None = None) -> Path | None:
    """Copy `checkpoint` (a tune.Checkpoint) to root/<task>/<trial_id>/ as a complete run folder.

    With `epoch` (the trial's last reported epoch), a checkpoint of an earlier epoch is left alone (None)."""
    if checkpoint is None:
        return None
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(root) / f".collect-{os.getpid()}-{id(checkpoint)}"
    shutil.rmtree(tmp, ignore_errors=True)
    checkpoint.to_directory(str(tmp))
    info = read_json(tmp / PARAMS)
    info["status"] = status
    done = (tmp / "summary.json").exists()
    if epoch is not None and _epochs(tmp, done) != epoch:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    if done:
        write_json(tmp / PARAMS, info)
    else:  # stopped or errored before its end: the run folder from the checkpoint
        state = load_checkpoint(tmp / "checkpoint.pt")
        hist = state["history"]
        write_run(
            tmp,
            RunConfig.from_dict(state["config"]),
            hist,
            status,
            state.get("train_seconds", sum(h.get("time/epoch_s") or 0.0 for h in hist)),
            params=info,
        )
    out = Path(root) / info["task"] / info["trial_id"]
    if is_complete(out):  # collected before (by the driver's callback, or before a restart): final
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def is_complete(run: Path) -> bool:
    """Whether `run` is a collected run folder of a trial that ended for good (ok, stopped or diverged):
    summary.json written, and params.json not marking an error (Tune may retry an errored trial)."""
    try:
        info = read_json(run / PARAMS) if (run / "summary.json").is_file() else None
    except (OSError, ValueError, ConfigError):  # a damaged params.json: collected again
        return False
    return isinstance(info, dict) and info.get("status") not in (None, "error")


def finished_runs(root: Path) -> dict[str, dict[str, Any]]:
    """trial_id -> what the trial's last report was (its last epoch's metrics and its summary), for every
    complete run folder root/<task>/<trial_id>/: what a restored trial reports instead of training again."""
    out = {}
    for run in sorted(Path(root).glob("*/*")):
        if not run.is_dir() or not is_complete(run):
            continue
        history = read_metrics(run)
        summary = read_json(run / "summary.json")
        metrics = {**(history[-1] if history else {}), **{k: v for k, v in summary.items() if k != "status"}}
        if summary.get("status") == "diverged":  # as the trainable reported it: NaN is never exact
            metrics.update(status="diverged", **{"valid/exact": 0.0})
        metrics["already_collected"] = True
        out[run.name] = metrics
    return out


def _epochs(run: Path, done: bool) -> int:
    if done:
        return int(read_json(run / "summary.json")["epochs"])
    return int(load_checkpoint(run / "checkpoint.pt")["epoch"])


def ended_trials(grid) -> set[str] | None:
    """Ids of the trials that ended (terminated or errored); None if this Ray cannot tell."""
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None)
    if trials is None:
        return None
    return {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}


def collect_grid(root: Path, grid, epochs_of) -> tuple[list[Path], int]:
    """Every ended trial of a ResultGrid into root/<task>/<trial_id>/ (`epochs_of(config)`: its epoch budget);
    return the run folders and the number of trials that ended (one that failed before its first
    checkpoint ended without a run folder)."""
    ended = ended_trials(grid)
    out = []
    for res in grid:
        m = res.metrics or {}
        trial_id = m.get("trial_id") or Path(res.path).name
        if ended is not None and trial_id not in ended:
            continue  # interrupted while pending or running: collected after `resume`
        run = collect_trial(root, res.checkpoint, status_of(m, epochs_of(res.config), res.error is not None))
        if run is not None:
            out.append(run)
    return out, len(ended) if ended is not None else len(grid)
