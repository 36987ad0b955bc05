"""Optuna's record of a study, written from the trials' run folders (never by a live sampler).

One Optuna study per task, "<name>/<task>", in STUDY_DIR/optuna.db (SQLite), or in the storage that
where.optuna_storage names (`--optuna-storage`: an Optuna RDB URL or a journal file). Each trial is added once,
keyed by its Tune trial id (user attr `tune_trial_id`), with every epoch's value of the study metric as
an intermediate value (so optuna-dashboard draws learning curves). States:

| run status | Optuna state | value |
| --- | --- | --- |
| ok (ran every configured epoch) | COMPLETE | the last epoch's metric |
| stopped (ASHA stopped it early) | PRUNED | none: the last intermediate value (user attr `last_value`) |
| diverged (non-finite training loss) | PRUNED | as stopped (the run ended early; user attr `status` = diverged) |
| error (raised after every retry) | FAIL | none |

Only finished runs are added, so a killed driver cannot leave a RUNNING trial; errored runs are added
once their task is done in state.json (until then Tune may still retry them, e.g. after `study
resume`), and every launch/resume adds whatever is missing, so a driver killed between two of these
steps leaves nothing out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from seqsum.errors import StudyError
from seqsum.files import read_json
from seqsum.results import read_metrics

from .config import StudyConfig
from .space import distributions

STATES = {"ok": "COMPLETE", "stopped": "PRUNED", "diverged": "PRUNED", "error": "FAIL"}


def storage(study_dir: Path, cfg: StudyConfig):
    """The study's Optuna storage: where.optuna_storage (an RDB URL, or a journal file), else optuna.db."""
    return open_storage(cfg.where.optuna_storage or f"sqlite:///{study_dir / 'optuna.db'}")


def open_storage(url: str):
    """An Optuna storage from a URL (RDB: sqlite:///..., postgresql://..., mysql://...) or a journal file path."""
    import optuna  # optuna: kept off the launch command's bad-input path

    if "://" in url:
        return optuna.storages.RDBStorage(url)
    from optuna.storages.journal import JournalFileBackend  # (the same)

    return optuna.storages.JournalStorage(JournalFileBackend(str(Path(url).expanduser())))


def check_storage(url: str) -> None:
    """Open a user-named Optuna storage now (before Ray starts): a bad or unreachable one fails in one line."""
    try:
        if "://" not in url:
            _check_journal(Path(url).expanduser())
        open_storage(url).get_all_studies()
    except Exception as e:  # SQLAlchemy's, OSError, ...
        raise StudyError(f"--optuna-storage {url!r} cannot be opened: {str(e).splitlines()[0][:200]}") from None


def _check_journal(path: Path) -> None:
    """An existing journal file must start with an Optuna journal entry (Optuna skips a bad last line)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        first = f.readline()
    try:
        entry = json.loads(first)
    except ValueError:
        entry = None
    if not (isinstance(entry, dict) and "op_code" in entry):
        raise ValueError(f"{str(path)!r} is not an Optuna journal file (its first line is no journal entry)")


def study_name(cfg: StudyConfig, task: str) -> str:
    return f"{cfg.where.name}/{task}"


def record_runs(study_dir: Path, cfg: StudyConfig, task: str, runs: list[Path], with_errors: bool) -> int:
    """Add the run folders `runs` (trials/<task>/<id>/) not yet in the task's Optuna study; return how many.

    Errored runs are added only `with_errors` (at the end of a task)."""
    import optuna  # (the same)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name(cfg, task),
        storage=storage(study_dir, cfg),
        direction="maximize" if cfg.how.mode == "max" else "minimize",
        load_if_exists=True,
    )
    seen = {t.user_attrs.get("tune_trial_id") for t in study.get_trials(deepcopy=False)}
    dists = distributions(cfg.what.space)
    added = 0
    for run in runs:
        info = read_json(run / "params.json")
        status = info.get("status")
        if info["trial_id"] in seen or status not in STATES or (status == "error" and not with_errors):
            continue
        curve, history = {}, read_metrics(run)
        for m in history:
            v = m.get(cfg.how.metric)
            if isinstance(v, (int, float)) and math.isfinite(v):
                curve[int(m["epoch"])] = float(v)
        state = STATES[status]
        last = curve[max(curve)] if curve else None
        if state == "COMPLETE" and last is None:
            state = "FAIL"  # no finite value to record
        study.add_trial(
            optuna.trial.create_trial(
                params=info["params"],
                distributions={k: dists[k] for k in info["params"] if k in dists},
                value=last if state == "COMPLETE" else None,
                intermediate_values=curve,
                state=getattr(optuna.trial.TrialState, state),
                user_attrs=_attrs(info, last, len(history)),
            )
        )
        seen.add(info["trial_id"])
        added += 1
    return added


def _attrs(info: dict[str, Any], last: float | None, epochs: int) -> dict[str, Any]:
    return {"tune_trial_id": info["trial_id"], "status": info["status"], "epochs": epochs, "last_value": last}
