"""Launch and resume a study: one Tune experiment per task, run folders collected, Optuna written from them.

Design (docs/STUDY.md, files in docs/STUDY_LAYOUT.md):
- One Tune experiment per task (`STUDY_DIR/tune/<task>`), searched by an *in-memory* OptunaSearch (TPE,
  define-by-run space, one trial per loss family enqueued first) and stopped early by ASHA. The Tune
  experiment folder is the source of truth: `Tuner.restore` resumes it after a crash or Ctrl-C (an
  RDB-backed OptunaSearch fails there in Ray 2.60 with UpdateFinishedTrialError).
- As trials end, their run folders are collected to `trials/<task>/<trial_id>/` and added to the Optuna
  RDB study (`optuna.db`, written from run folders: study/optuna_bridge.py); again for all at the task's end.
- Before anything is written: the config, the storage (a folder, or a URI that must answer: study/storage.py),
  the data, the cluster address and the per-trial resources are checked (one line, exit 2).
- A study at a URI: Tune writes its experiments to URI/tune; the study's own files live in a local working
  copy that is pushed to the URI after each finished trial, after each task, at the end and on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from seqsum.data import Pools, load_pools
from seqsum.errors import ConfigError, Interrupted
from seqsum.files import write_csv
from seqsum.memory import check_memory

from . import storage
from .collect import collect_grid, finished_runs
from .config import StudyConfig
from .folder import check_new_study_dir, create_study_dir, open_study, read_state, write_state
from .optuna_bridge import check_storage, record_runs
from .runs import trials_frame
from .session import check_reachable, check_resources, ray_session
from .space import corners
from .tuner import INTERRUPTED, trainable, tune_config, tune_run_config

After = Callable[[storage.Place], None]  # what runs once a study's tasks are done (the CLI's report)


def launch(cfg: StudyConfig, address: str | None = None, after: After | None = None) -> Path:
    """Start the study `cfg` (embedded Ray unless `address`); return its (local) folder. `after(place)` runs once
    every task is done, before the final sync to the study's URI (the CLI writes the report there)."""
    check_new_study_dir(cfg)  # a bad or unreachable storage, or an existing study, fails here
    if address is not None:
        check_reachable(address)  # an unreachable cluster fails before anything is written
    pools = check_base(cfg)  # so do a bad data root and a base config this machine cannot hold
    check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)  # embedded: before Ray starts
    if cfg.where.optuna_storage:
        check_storage(cfg.where.optuna_storage)
    with ray_session(address):
        check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)  # and on the cluster
        place = create_study_dir(cfg)
        print(f"study {cfg.where.name}: {place.where}", flush=True)
        _warn_families(cfg)
        return _run(place, cfg, after, pools)


def resume(location: str | Path, address: str | None = None, after: After | None = None) -> Path:
    """Finish the study at `location` (a folder or URI): done tasks are skipped, the current one restored."""
    place, cfg = open_study(location)
    read_state(place.local)  # a damaged state.json fails here, before Ray starts
    pools = check_base(cfg)
    print(f"resuming study {cfg.where.name}: {place.where}", flush=True)
    check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)  # embedded: before Ray starts
    with ray_session(address):
        check_resources(cfg.where.cpus_per_trial, cfg.where.gpus_per_trial, address)
        return _run(place, cfg, after, pools)


def check_base(cfg: StudyConfig) -> Pools:
    """Before Ray starts: every task's base run and the corners of the space must fit this machine's memory,
    and the data must load."""
    for task in cfg.what.tasks:
        check_memory(cfg.base_run(task))
        for point in corners(cfg.what.space):
            try:
                check_memory(cfg.run_config(task, point))
            except ConfigError as e:
                raise ConfigError(f"the study's trial {point} cannot run here: {e}") from None
    return load_pools(cfg.base_run(cfg.what.tasks[0]).data)


def _warn_families(cfg: StudyConfig) -> None:
    n = len(cfg.first_points())
    if n > cfg.how.num_samples:
        print(
            f"seqsum: warning: how.num_samples={cfg.how.num_samples} is below the {n} enqueued first points "
            f"(one per loss family{' and the original model' if cfg.what.enqueue_seed else ''}): "
            "some loss families get no trial",
            file=sys.stderr,
        )


def _run(place: storage.Place, cfg: StudyConfig, after: After | None, pools: Pools) -> Path:
    with storage.active(place):
        try:
            out = _run_tasks(place, cfg, after, pools)
        except BaseException:  # Ctrl-C or an error: the URI gets what the working copy holds
            storage.sync(place)
            raise
        storage.sync(place, strict=True)  # and at the end, or one line says what did not reach it
        return out


def _run_tasks(place: storage.Place, cfg: StudyConfig, after: After | None, pools: Pools) -> Path:
    study_dir = place.local
    state = read_state(study_dir)
    for task in cfg.what.tasks:
        if state["tasks"].get(task, {}).get("status") == "done":
            continue
        t0 = time.time()
        try:
            n = _run_task(place, cfg, task, pools)
        except Interrupted as e:
            again = f"seqsum study resume {place.where}"
            raise Interrupted(f"{e}; finished trials are kept. Continue with: {again}") from None
        state["tasks"][task] = {
            "status": "done",
            "wall_seconds": time.time() - t0 + state["tasks"].get(task, {}).get("wall_seconds", 0.0),
            "trials": n,
        }
        write_state(study_dir, state)
        storage.sync(place)
    for task in cfg.what.tasks:  # errored trials enter optuna.db once their task is done: Tune retries no more
        runs = sorted(p for p in (study_dir / "trials" / task).glob("*") if p.is_dir())
        record_runs(study_dir, cfg, task, runs, with_errors=True)  # idempotent: each trial is added once
    trials = write_trials_csv(study_dir, cfg)
    print(summary_text(study_dir, cfg, trials), flush=True)
    if after is not None:
        after(place)
    return study_dir


def _run_task(place: storage.Place, cfg: StudyConfig, task: str, pools: Pools) -> int:
    from ray import tune  # Ray: imported only after study.session has set its environment

    from .recorder import Recorder  # (the same: it imports ray.tune)

    study_dir = place.local
    exp = place.tune_path(task)
    epochs = cfg.base_run(task).train.epochs
    if tune.Tuner.can_restore(exp):
        print(f"[{task}] restoring the Tune experiment {exp}", flush=True)
        fn = trainable(cfg, pools, task, finished_runs(study_dir / "trials"))  # these are not run again
        tuner = tune.Tuner.restore(exp, trainable=fn, resume_unfinished=True, resume_errored=True)
    else:
        fn = trainable(cfg, pools, task)
        rec = Recorder("trials", task, cfg.how.num_samples, epochs, cfg, record=True)
        tuner = tune.Tuner(fn, tune_config=tune_config(cfg, task), run_config=tune_run_config(place, cfg, task, [rec]))
    INTERRUPTED.clear()
    grid = tuner.fit()
    if INTERRUPTED.is_set():  # Ctrl-C: Tune saved its state and returned early; `resume` collects
        raise Interrupted(f"[{task}] stopped by Ctrl-C")
    runs, ended = collect_grid(study_dir / "trials", grid, lambda config: epochs)
    record_runs(study_dir, cfg, task, runs, with_errors=False)  # errored ones: once the task is done (_run)
    if ended < cfg.how.num_samples:
        raise Interrupted(f"[{task}] {ended}/{cfg.how.num_samples} trials finished")
    return ended


def write_trials_csv(study_dir: Path, cfg: StudyConfig):
    """trials.csv: study.runs.trials_frame (the one reader of run folders), best first per task."""
    df = trials_frame(study_dir)
    if not df.empty:
        df = df.drop(columns=["params", "run_dir"], errors="ignore")
        if cfg.how.metric in df:
            df = df.sort_values(["task", cfg.how.metric], ascending=[True, cfg.how.mode == "min"], na_position="last")
        write_csv(study_dir / "trials.csv", df)
    return df


def summary_text(study_dir: Path, cfg: StudyConfig, df) -> str:
    if df.empty or cfg.how.metric not in df:
        return f"study {cfg.where.name}: no finished trials"
    lines = [f"study {cfg.where.name}: {len(df)} trials in {study_dir}"]
    metric = cfg.how.metric
    for task in [t for t in cfg.what.tasks if t in set(df.task)]:
        g = df[df.task == task]
        best = g.sort_values(metric, ascending=cfg.how.mode == "min", na_position="last").iloc[0]
        test = f", test/exact={best['test/exact']:.3f}" if _has(best, "test/exact") else ""
        value = f"{best[metric]:.3f}" if _has(best, metric) else "n/a"
        lines.append(
            f"  {task}: best {metric}={value}{test} ({best['trial_id']}, {best['family']}); "
            f"families {sorted(g.family.unique())}; statuses {g.status.value_counts().to_dict()}"
        )
    return "\n".join(lines)


def _has(row, key: str) -> bool:
    return key in row and pd.notna(row[key])
