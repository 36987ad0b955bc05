"""Read a study folder (docs/STUDY_LAYOUT.md) into tidy pandas DataFrames. Reads only; writes nothing.

`load_study(dir)` gives a `Study` with:
- trials: one row per trial folder: task, trial_id, number, status, loss, model shape, bucket,
  `param.<name>` searched values and the final metrics of summary.json;
- epochs: one row per (trial, epoch) from metrics.jsonl;
- per_target: one row per (trial, target value) from per_target.csv;
- pairs: one row per (trial, a, b) from pairs.csv;
- reruns: one row per (task, trial_id, metric) with mean, std, n (rerun/summary.csv, or computed
  from the rerun run folders), or None.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from seqsum.config import ConfigError, RunConfig, yaml_load

MIN_IMPORTANCE_TRIALS = 4
WIDTH_BINS = ((32, "<=32"), (128, "33-128"), (math.inf, ">128"))


@dataclass
class Study:
    dir: Path
    name: str
    config: dict[str, Any]  # study.yaml as a dict ({} when absent)
    trials: pd.DataFrame
    epochs: pd.DataFrame
    per_target: pd.DataFrame
    pairs: pd.DataFrame
    reruns: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)  # what was missing or skipped, said plainly in the report
    n_listed: dict[str, int] = field(default_factory=dict)  # trials per task in trials.csv
    optuna: dict[str, Any] = field(default_factory=dict)  # task -> in-memory copy of its Optuna study

    @property
    def metric(self) -> tuple[str, str]:
        """The metric trials are ranked by and its direction (the study's how.metric / how.mode)."""
        how = self.config.get("how") or {}
        return how.get("metric", "valid/exact"), how.get("mode", "max")

    @property
    def finished(self) -> pd.DataFrame:
        """Trials that finished with test metrics (status ok)."""
        if self.trials.empty or "test/exact" not in self.trials:
            return self.trials.iloc[0:0]
        return self.trials[(self.trials.status == "ok") & self.trials["test/exact"].notna()]

    @property
    def tasks(self) -> list[str]:
        return [t for t in ("sum", "product") if t in set(self.trials.get("task", []))]


def load_study(study_dir: str | Path) -> Study:
    d = Path(study_dir)
    if not d.exists():
        raise ConfigError(f"study folder {str(d)!r} does not exist")
    if not d.is_dir():
        raise ConfigError(f"{str(d)!r} is not a folder; give a study folder (<storage>/<name>)")
    marks = [m for m in ("study.yaml", "trials.csv", "trials", "optuna.db") if (d / m).exists()]
    if not marks:
        raise ConfigError(
            f"{str(d)!r} is not a study folder: it has none of study.yaml, trials.csv, trials/, optuna.db"
        )
    notes: list[str] = []
    config = _read_yaml(d / "study.yaml", notes)
    name = str((config.get("where") or {}).get("name") or d.name)
    runs = [r for task in ("sum", "product") for r in sorted((d / "trials" / task).glob("*")) if r.is_dir()]
    rows, epochs, per_target, pairs, unreadable = [], [], [], [], []
    for run in runs:
        row = read_run(run)
        if row is None:
            unreadable.append(run.name)
            continue
        rows.append(row)
        key = {"task": row["task"], "trial_id": row["trial_id"], "loss": row["loss"]}
        epochs.append(_frame(run / "metrics.jsonl", key))
        per_target.append(_frame(run / "per_target.csv", key))
        pairs.append(_frame(run / "pairs.csv", key))
    studies = optuna_studies(d, name, notes)
    trials = _numbered(pd.DataFrame(rows), studies)
    n_listed = _listed(d / "trials.csv", notes)
    if not runs:
        notes.append("no trial folders under trials/ yet")
    if unreadable:
        notes.append(
            f"{len(unreadable)} trial folder(s) left out, without a readable config.json: {', '.join(unreadable[:5])}"
        )
    return Study(
        d,
        name,
        config,
        trials,
        _concat(epochs),
        _concat(per_target),
        _concat(pairs),
        load_reruns(d, notes),
        notes,
        n_listed,
        studies,
    )


def read_run(run: Path) -> dict[str, Any] | None:
    """One flat row for a run folder (None without config.json).

    status: 'running' without summary.json (written last), else params.json's word, else summary.json's.
    """
    try:
        cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    except (OSError, ValueError):
        return None
    params = _read_json(run / "params.json")
    summary = _read_json(run / "summary.json")
    m = cfg.model
    row: dict[str, Any] = {
        "task": params.get("task", cfg.train.task),
        "trial_id": str(params.get("trial_id", run.name)),
        "number": params.get("number"),
        "started_at": params.get("started_at"),
        "status": (params.get("status") or summary.get("status") or "ok") if summary else "running",
        "loss": cfg.train.loss,
        "standardize": cfg.train.standardize,
        "conv_channels": "-".join(map(str, m.conv_channels)),
        "conv_kernels": "-".join(map(str, m.conv_kernels)),
        "gru_hidden": "-".join(map(str, m.gru_hidden)),
        "bucket": bucket(m.gru_hidden),
        "first_conv": f"{m.conv_channels[0]}x{m.conv_kernels[0]}x{m.conv_kernels[0]}" if m.conv_channels else "none",
        "activation": m.activation,
        "lr": cfg.train.lr,
        "batch_size": cfg.train.batch_size,
        "max_len": cfg.data.max_len,
        "test_max_len": cfg.data.test_max_len,
        "run_dir": str(run),
    }
    row.update({f"param.{k}": v for k, v in (params.get("params") or {}).items()})
    row.update({k: v for k, v in summary.items() if k != "status"})
    return row


def _numbered(trials: pd.DataFrame, studies: dict[str, Any]) -> pd.DataFrame:
    """Sorted by trial number per task: params.json's number, else the Optuna trial's (user attribute
    tune_trial_id), else the rank by start time."""
    if trials.empty:
        return trials
    known = {(task, tid): n for task, s in studies.items() for tid, n in s.user_attrs["numbers"].items()}
    trials["number"] = trials.number.fillna(
        pd.Series([known.get(k) for k in zip(trials.task, trials.trial_id)], index=trials.index, dtype="float")
    )
    if trials.started_at.notna().any():
        trials["number"] = trials.number.fillna(trials.groupby("task").started_at.rank(method="first") - 1)
    trials["number"] = trials.number.astype("Int64")
    return trials.sort_values(["task", "number", "trial_id"], na_position="last").reset_index(drop=True)


def bucket(gru_hidden) -> str:
    """Width/depth bucket of a model: GRU layers x first GRU width bin, e.g. 'GRU 2x33-128'."""
    width = gru_hidden[0]
    label = next(lab for hi, lab in WIDTH_BINS if width <= hi)
    return f"GRU {len(gru_hidden)}x{label}"


def load_reruns(d: Path, notes: list[str]) -> pd.DataFrame | None:
    """rerun/summary.csv, or the same table computed from the rerun run folders; None when absent."""
    csv = d / "rerun" / "summary.csv"
    if csv.is_file():
        try:
            df = pd.read_csv(csv, dtype={"trial_id": str})
        except (OSError, ValueError) as e:
            notes.append(f"rerun/summary.csv is unreadable ({str(e).splitlines()[0]}); reruns left out")
            return None
        if not {"task", "trial_id", "metric", "mean", "std", "n"} <= set(df.columns):
            notes.append("rerun/summary.csv lacks columns task, trial_id, metric, mean, std, n; reruns left out")
            return None
        return df
    runs = sorted((d / "rerun").glob("*/*/seed=*/summary.json"))
    if not runs:
        notes.append("no reruns (rerun/ is missing or empty): top configs are shown from one seed each")
        return None
    rows = []
    for s in runs:
        summary = _read_json(s)
        task, trial_id = s.parent.parent.parent.name, s.parent.parent.name.split("-", 1)[-1]
        rows += [
            {"task": task, "trial_id": trial_id, "metric": k, "value": v}
            for k, v in summary.items()
            if isinstance(v, (int, float)) and k.startswith(("test/", "valid/", "pairs/"))
        ]
    notes.append("rerun/summary.csv is missing: rerun statistics computed from the rerun folders")
    g = pd.DataFrame(rows).groupby(["task", "trial_id", "metric"]).value
    return pd.DataFrame({"mean": g.mean(), "std": g.std(), "n": g.count()}).reset_index()


@contextmanager
def optuna_storage(db: Path):
    """An Optuna RDB storage on a private copy of `db`: a running study's file is neither locked nor written."""
    import optuna

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
    import optuna

    if not (d / "optuna.db").is_file():
        notes.append("no optuna.db: trial numbers from start times, no parameter importance")
        return {}
    out = {}
    try:
        with optuna_storage(d / "optuna.db") as storage:
            names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
            for task in ("sum", "product"):
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
    except Exception as e:  # noqa: BLE001 - any unreadable database becomes one note
        notes.append(f"optuna.db is unreadable ({str(e).splitlines()[0][:120]}): no parameter importance")
        return {}
    if not out:
        notes.append(f"optuna.db holds no study named {name!r}/sum or /product: no parameter importance")
    return out


def optuna_importances(study: Study) -> tuple[pd.DataFrame, list[str]]:
    """Parameter importance per task (optuna.importance.get_param_importances on the study's Optuna studies).

    Returns (rows task, param, importance, n_trials) and one line per task that had to be skipped.
    """
    import optuna

    rows, skipped = [], []
    for task, s in study.optuna.items():
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


def _listed(csv: Path, notes: list[str]) -> dict[str, int]:
    if not csv.is_file():
        notes.append("trials.csv is missing: trials are read from their folders only")
        return {}
    try:
        df = pd.read_csv(csv)
    except (OSError, ValueError):
        notes.append("trials.csv is unreadable: trials are read from their folders only")
        return {}
    return df.groupby("task").size().to_dict() if "task" in df else {}


def _read_yaml(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        notes.append("study.yaml is missing: ranking trials by valid/exact")
        return {}
    import yaml

    try:
        d = yaml_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        notes.append(f"study.yaml is unreadable ({str(e).splitlines()[0]}): ranking trials by valid/exact")
        return {}
    return d if isinstance(d, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _frame(path: Path, key: dict[str, Any]) -> pd.DataFrame | None:
    try:
        df = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except (OSError, ValueError):
        return None
    for i, (k, v) in enumerate(key.items()):
        df.insert(i, k, v)
    return df


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
