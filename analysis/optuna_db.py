"""Optuna's side of a study folder: an in-memory copy of each task's Optuna study, parameter importance.

Reads optuna.db from a private copy, so a running study's file is neither locked nor written.
"""

from __future__ import annotations

import sqlite3
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from seqsum.choices import TASKS

MIN_IMPORTANCE_TRIALS = 4


@contextmanager
def optuna_storage(db: Path):
    """An Optuna RDB storage on a private copy of `db`: a running study's file is neither locked nor written."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "optuna.db"
        src, dst = sqlite3.connect(f"file:{db}?mode=ro", uri=True), sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            src.close(), dst.close()
        storage = optuna.storages.RDBStorage(f"sqlite:///{copy}")
        try:
            yield storage
        finally:
            storage.engine.dispose()


def optuna_studies(d: Path, name: str, notes: list[str]) -> dict[str, Any]:
    """{task: in-memory copy of the Optuna study '<name>/<task>'} from d/optuna.db."""
    if not (d / "optuna.db").is_file():
        notes.append("no optuna.db: trial numbers from start times, no parameter importance")
        return {}
    out = {}
    try:
        with optuna_storage(d / "optuna.db") as storage:
            names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
            for task in TASKS:
                if f"{name}/{task}" in names:
                    s = optuna.load_study(study_name=f"{name}/{task}", storage=storage)
                    mem = optuna.create_study(directions=s.directions)
                    trials = s.get_trials(deepcopy=False)
                    mem.add_trials(trials)
                    mem.set_user_attr(
                        "numbers",
                        {
                            str(t.user_attrs["tune_trial_id"]): t.number
                            for t in trials
                            if "tune_trial_id" in t.user_attrs
                        },
                    )
                    out[task] = mem
    except Exception as e:  # any unreadable database becomes one note
        notes.append(f"optuna.db is unreadable ({str(e).splitlines()[0][:120]}): no parameter importance")
        return {}
    if not out:
        notes.append(f"optuna.db holds no study named {name!r}/sum or /product: no parameter importance")
    return out


def optuna_importances(studies: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """Parameter importance per task (optuna.importance.get_param_importances on the study's Optuna studies).

    Returns (rows task, param, importance, n_trials) and one line per task that had to be skipped.
    """
    rows, skipped = [], []
    for task, s in studies.items():
        done = [t for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(done) < MIN_IMPORTANCE_TRIALS:
            skipped.append(
                f"{task}: parameter importance needs >= {MIN_IMPORTANCE_TRIALS} complete trials, "
                f"the Optuna study has {len(done)}"
            )
            continue
        try:
            target = (lambda t: t.values[0]) if len(s.directions) > 1 else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(s, target=target)
        except (RuntimeError, ValueError) as e:
            skipped.append(
                f"{task}: parameter importance failed over {len(done)} complete trials ({str(e).splitlines()[0]})"
            )
            continue
        if not imp:
            skipped.append(f"{task}: no parameter varied over the {len(done)} complete trials")
        rows += [{"task": task, "param": k, "importance": v, "n_trials": len(done)} for k, v in imp.items()]
    return pd.DataFrame(rows, columns=["task", "param", "importance", "n_trials"]), skipped
