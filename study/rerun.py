"""Replicates: rerun selected configs of a study with fresh seeds and one shared budget, on Ray.

`rerun(STUDY, top=K, per_family=True, seeds=S, epochs=E)` picks, per task, the top-K trials and/or the
best trial of every loss family, among trials that reported at least one epoch (ok, or stopped early
by ASHA), ranked by the last reported value of the study metric. Each selected config runs with S
fresh seeds (FIRST_SEED, FIRST_SEED + 1, ..., skipping the selected trial's own seed), E epochs and a
pair grid of REPLICATE_PAIRS_PER_CELL sequences per cell, all as parallel trials of one Tune experiment
(`tune/rerun`). The plan is written first (`rerun/plan.json`), so a killed rerun continues with
`seqsum study rerun STUDY --resume`. Run folders: `rerun/<task>/<trial_id>/` (identity in params.json).
A study at a URI is pulled first and pushed after each replicate, at the end and on Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from seqsum.choices import MAX_EPOCHS
from seqsum.errors import ConfigError, CorruptFile, Interrupted, StudyError
from seqsum.files import read_json, write_csv, write_json
from seqsum.results import check_clearable, clear_run_folder, is_run_folder
from seqsum.stats import seed_interval

from . import storage
from .collect import collect_grid, finished_runs
from .config import StudyConfig
from .folder import STATE, open_study, read_state, write_state
from .runner import check_base
from .runs import replicates_frame, trials_frame
from .session import check_resources, ray_session
from .tuner import INTERRUPTED, trainable, tune_run_config

MAX_SEEDS = 1_000  # --seeds beyond this is a typo (each seed is a run of every selected config)
FIRST_SEED = 1000  # replicate seeds are 1000, 1001, ...: never a search trial's (default 0) seed
PLAN = "plan.json"
METRICS = ("test/exact", "test/mae", "test/mse", "pairs/9x9/exact", "valid/exact")
EXPERIMENT = "rerun"


def rerun(
    location: str | Path,
    top: int | None = None,
    per_family: bool = False,
    seeds: int = 3,
    epochs: int | None = None,
    address: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> pd.DataFrame:
    """Run (or, with `resume`, continue) the replicates of the study at `location` (a folder or URI);
    write rerun/summary.csv and return it."""
    place, cfg = open_study(location)
    study_dir = place.local
    out = study_dir / "rerun"
    if resume:
        if not (out / PLAN).is_file():
            raise StudyError(
                f"{place.where!r} holds no rerun to resume; start one with: seqsum study rerun {place.where}"
            )
        plan = read_plan(out / PLAN)
    else:
        plan = make_plan(cfg, study_dir, top, per_family, seeds, epochs)
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise StudyError(
                    f"{str(out)!r} already holds reruns; continue one with --resume or pass --overwrite to replace them"
                )
            check_replaceable(out)
    pools = check_base(cfg)
    check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)  # embedded: before Ray starts
    with ray_session(address), storage.active(place):
        check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)
        try:
            if not resume:
                clear_reruns(out)
                place.remove_tune(EXPERIMENT)
                out.mkdir(parents=True, exist_ok=True)
                write_json(out / PLAN, plan)
                write_state(out, {"status": "running"})
                storage.sync(place)
            if read_state(out).get("status") != "done":
                _run(place, cfg, plan, pools)
                write_state(out, {"status": "done"})
            summary = summarize(study_dir)
            write_csv(out / "summary.csv", summary)
        except BaseException:  # Ctrl-C or an error: a URI gets what the working copy holds
            storage.sync(place)
            raise
        storage.sync(place, strict=True)  # and at the end, or one line says what did not reach it
    print(summary_text(summary), flush=True)
    return summary


_OWN = (PLAN, STATE, "summary.csv")


def _own_file(p: Path) -> bool:
    return (
        p.is_file()
        and not p.is_symlink()
        and (p.name in _OWN or (p.name.endswith(".tmp") and p.name[1:].startswith(_OWN)))
    )


def check_replaceable(out: Path) -> None:
    """Raise StudyError unless `out` (a study's rerun/) holds only what a rerun writes: plan.json, state.json,
    summary.csv and <task>/<trial_id>/ run folders of seqsum's files alone."""
    for p in sorted(out.iterdir()):
        if _own_file(p):
            continue
        runs = sorted(p.iterdir()) if p.is_dir() and not p.is_symlink() else None
        try:
            if runs is None or not runs:
                raise ConfigError(f"{str(p)!r} is not a folder of replicate run folders")
            for run in runs:
                if not is_run_folder(run):
                    raise ConfigError(f"{str(run)!r} is not a seqsum run folder")
                check_clearable(run)
        except ConfigError as e:
            raise StudyError(
                f"rerun --overwrite: {e}; refusing to replace {str(out)!r}: move it or rerun elsewhere"
            ) from None


def clear_reruns(out: Path) -> None:
    """Remove what check_replaceable accepted (seqsum's own files only); a folder left empty goes too."""
    if not out.is_dir():
        return
    check_replaceable(out)
    for p in out.iterdir():
        if _own_file(p):
            p.unlink()
            continue
        for run in p.iterdir():
            clear_run_folder(run)
            run.rmdir()
        p.rmdir()


def read_plan(path: Path) -> dict[str, Any]:
    """rerun/plan.json, checked to be a plan (make_plan's shape) before anything runs."""
    fix = "start the rerun again with --overwrite"
    plan = read_json(path, fix=fix)
    keys = ("task", "family", "rank", "source_trial_id", "params", "seed", "epochs")
    points = plan.get("points") if isinstance(plan, dict) and "seeds" in plan else None
    if not (
        isinstance(points, list) and points and all(isinstance(q, dict) and all(k in q for k in keys) for q in points)
    ):
        raise CorruptFile(f"{str(path)!r} is not a rerun plan (points with {', '.join(keys)}); {fix}")
    return plan


def make_plan(
    cfg: StudyConfig, study_dir: Path, top: int | None, per_family: bool, seeds: int, epochs: int | None
) -> dict[str, Any]:
    """The replicates to run: one point per (selected config, seed). Raises StudyError on bad input."""
    for name, v in (("--seeds", seeds), ("--epochs", epochs), ("--top", top)):
        if v is not None and not (isinstance(v, int) and v >= 1):
            raise StudyError(f"{name} must be an integer >= 1, got {v!r}")
    if epochs is not None and epochs > MAX_EPOCHS:
        raise StudyError(f"--epochs must be at most {MAX_EPOCHS:,}, got {epochs}")
    if seeds > MAX_SEEDS:
        raise StudyError(f"--seeds must be at most {MAX_SEEDS:,}, got {seeds}")
    if top is None and not per_family:
        top = 3
    trials = trials_frame(study_dir)
    metric, mode = cfg.how.metric, cfg.how.mode
    if trials.empty or metric not in trials or "epochs" not in trials:
        eligible = trials.iloc[0:0]
    else:
        eligible = trials[trials.status.isin(["ok", "stopped"]) & (trials.epochs >= 1) & trials[metric].notna()]
    if eligible.empty:
        raise StudyError(f"study {study_dir.name!r} has no trial that reported an epoch: nothing to rerun")
    most = int(eligible.task.value_counts().max())
    if top is not None and top > most:
        raise StudyError(
            f"--top {top} is more than the {most} trials a task has that reported an epoch; allowed: 1..{most}"
        )
    points = []
    for task in cfg.what.tasks:
        ranked = eligible[eligible.task == task].sort_values(metric, ascending=mode == "min", kind="stable")
        ranked = ranked.assign(rank=range(1, len(ranked) + 1))
        chosen = ranked.head(top) if top else ranked.iloc[0:0]
        if per_family:
            for family in cfg.families():
                best = ranked[ranked.family == family].head(1)
                if best.empty:
                    print(
                        f"seqsum: warning: {task}: loss family {family!r} has no trial that reported an epoch; skipped",
                        file=sys.stderr,
                    )
                chosen = pd.concat([chosen, best])
        chosen = chosen.drop_duplicates("trial_id").sort_values("rank")
        for _, row in chosen.iterrows():
            fresh = [s for s in range(FIRST_SEED, FIRST_SEED + seeds + 1) if s != row["seed"]][:seeds]
            ep = epochs or cfg.base_run(task).train.epochs
            points += [
                {
                    "task": task,
                    "family": row["family"],
                    "rank": int(row["rank"]),
                    "source_trial_id": str(row["trial_id"]),
                    "params": row["params"],
                    "seed": s,
                    "epochs": ep,
                }
                for s in fresh
            ]
    return {"top": top, "per_family": per_family, "seeds": seeds, "epochs": epochs, "points": points}


def _run(place: storage.Place, cfg: StudyConfig, plan: dict[str, Any], pools) -> None:
    from ray import tune  # Ray: imported only after study.session has set its environment

    from .recorder import Recorder  # (the same: it imports ray.tune)

    study_dir = place.local
    points = plan["points"]
    exp = place.tune_path(EXPERIMENT)
    shown = sorted({(p["task"], p["family"], p["rank"]) for p in points})
    print(
        f"[rerun] {len(shown)} configs x {plan['seeds']} seeds = {len(points)} runs: "
        + ", ".join(f"{t}/{f}#{r}" for t, f, r in shown),
        flush=True,
    )
    if tune.Tuner.can_restore(exp):
        print(f"[rerun] restoring the Tune experiment {exp}", flush=True)
        fn = trainable(cfg, pools, None, finished_runs(study_dir / "rerun"))  # these are not run again
        tuner = tune.Tuner.restore(exp, trainable=fn, resume_unfinished=True, resume_errored=True)
    else:
        fn = trainable(cfg, pools, None)
        epochs = points[0]["epochs"]
        rec = Recorder("rerun", EXPERIMENT, len(points), epochs, cfg)
        tuner = tune.Tuner(
            fn,
            param_space={"_rerun": tune.grid_search(points)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=cfg.how.max_concurrent, reuse_actors=cfg.where.reuse_actors
            ),
            run_config=tune_run_config(place, cfg, EXPERIMENT, [rec]),
        )
    INTERRUPTED.clear()
    grid = tuner.fit()
    if INTERRUPTED.is_set():
        raise Interrupted(f"[rerun] stopped by Ctrl-C; continue with: seqsum study rerun {place.where} --resume")
    _, ended = collect_grid(study_dir / "rerun", grid, lambda config: config["_rerun"]["epochs"])
    if ended < len(points):
        raise Interrupted(
            f"[rerun] {ended}/{len(points)} runs finished; continue with: seqsum study rerun {place.where} --resume"
        )


def summarize(study_dir: Path) -> pd.DataFrame:
    """Per (task, family, rank, source trial, metric): n seeds, mean and the 95% interval over seeds."""
    reps = replicates_frame(study_dir)
    cols = ["task", "family", "rank", "source_trial_id", "metric", "n", "mean", "ci_low", "ci_high"]
    rows = []
    if not reps.empty:
        for (task, family, rank, source), g in reps.groupby(["task", "family", "rank", "source_trial_id"]):
            for metric in METRICS:
                values = [v for v in g.get(metric, []) if pd.notna(v)]
                mean, low, high = seed_interval(values)
                rows.append([task, family, int(rank), source, metric, len(values), mean, low, high])
    return pd.DataFrame(rows, columns=cols)


def summary_text(summary: pd.DataFrame) -> str:
    lines = []
    for (task, family, rank, source), g in summary.groupby(["task", "family", "rank", "source_trial_id"], sort=False):
        cells = "  ".join(_cell(r) for _, r in g.iterrows() if r.n > 0)
        lines.append(f"{task} {family} #{rank} ({source}, n = {int(g.n.max())}): {cells}")
    return "\n".join(lines)


def _cell(r) -> str:
    if r.n == 1:
        return f"{r.metric} {r['mean']:.3f} (n = 1)"
    return f"{r.metric} {r['mean']:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
