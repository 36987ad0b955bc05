"""The report's reader of a study folder (docs/STUDY_LAYOUT.md): files -> tidy pandas DataFrames. Writes nothing.

- `trials_frame(dir)`, `replicates_frame(dir)` (study.runs, the one reader of run folders): one row per
  search-trial and per replicate run folder;
- `load_study(dir)`: both, plus per-epoch, per-target-value and pair-grid rows of every run
  (column `kind` says search or replicate) and the study's Optuna studies (from optuna.db, or from the
  Optuna storage that study.yaml's where.optuna_storage names).

A study at a URI is read from its local working copy (study/storage.py pulls it first: `seqsum report URI`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from seqsum.choices import TASKS
from seqsum.config_text import yaml_load
from seqsum.errors import ConfigError, CorruptFile
from study.optuna_bridge import open_storage
from study.runs import replicates_frame, trials_frame

from .optuna_db import optuna_studies

KEY = ("kind", "task", "trial_id", "family", "seed")  # the columns the per-run detail frames carry


@dataclass
class Study:
    dir: Path
    name: str
    config: dict[str, Any]  # study.yaml as a dict ({} when absent)
    trials: pd.DataFrame  # trials_frame + Optuna trial number
    replicates: pd.DataFrame  # replicates_frame (empty when there are none)
    epochs: pd.DataFrame  # one row per (run, epoch), KEY columns first
    per_target: pd.DataFrame  # one row per (run, target value)
    pairs: pd.DataFrame  # one row per (run, a, b)
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
        """Search trials that finished with test metrics (status ok)."""
        return finished(self.trials)

    @property
    def tasks(self) -> list[str]:
        present = set(self.trials.get("task", [])) | set(self.replicates.get("task", []))
        return [t for t in TASKS if t in present]


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished with test metrics (status ok)."""
    if runs.empty or "test/exact" not in runs:
        return runs.iloc[0:0]
    return runs[(runs.status == "ok") & runs["test/exact"].notna()]


def load_study(study_dir: str | Path) -> Study:
    """Read a study folder: trials, replicates and the per-run detail tables (raises ConfigError if none)."""
    d = Path(study_dir)
    if not d.exists():
        raise ConfigError(f"study folder {str(d)!r} does not exist")
    if not d.is_dir():
        raise ConfigError(f"{str(d)!r} is not a folder; give a study folder (<storage>/<name>)")
    if not any((d / m).exists() for m in ("study.yaml", "trials.csv", "trials", "optuna.db")):
        raise ConfigError(
            f"{str(d)!r} is not a study folder: it has none of study.yaml, trials.csv, trials/, optuna.db"
        )
    notes: list[str] = []
    config = _read_yaml(d / "study.yaml", notes)
    name = str((config.get("where") or {}).get("name") or d.name)
    n_folders = sum(1 for t in TASKS for r in (d / "trials" / t).glob("*") if r.is_dir())
    trials, replicates = trials_frame(d, notes), replicates_frame(d, notes)
    studies = _optuna(d, name, config, notes)
    trials = _numbered(trials, studies)
    if not n_folders:
        notes.append("no trial folders under trials/ yet")
    if replicates.empty:
        notes.append(
            "no replicates (rerun/ is missing or empty): the comparison uses each family's best search trial, "
            "one seed each; run `seqsum study rerun STUDY --per-family` for intervals over seeds"
        )
    frames = [f for f in (trials, replicates) if not f.empty]
    runs = pd.concat(frames, ignore_index=True) if frames else trials
    return Study(
        d,
        name,
        config,
        trials,
        replicates,
        _details(runs, "metrics.jsonl"),
        _details(runs, "per_target.csv"),
        _details(runs, "pairs.csv"),
        notes,
        _listed(d / "trials.csv", notes),
        studies,
    )


def _optuna(d: Path, name: str, config: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The study's Optuna studies: from d/optuna.db, or copied from the storage where.optuna_storage names."""
    url = (config.get("where") or {}).get("optuna_storage")
    if not url:
        return optuna_studies(d, name, notes)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            src = open_storage(url)
            names = {s.study_name for s in optuna.get_all_study_summaries(src)}
            for task in TASKS:
                if f"{name}/{task}" in names:
                    optuna.copy_study(
                        from_study_name=f"{name}/{task}", from_storage=src, to_storage=f"sqlite:///{tmp}/optuna.db"
                    )
        except Exception as e:  # any unreachable or unreadable storage becomes one note
            notes.append(f"the Optuna storage {url!r} is unreadable ({str(e).splitlines()[0][:120]}): no importance")
            return {}
        return optuna_studies(Path(tmp), name, notes)


def _numbered(trials: pd.DataFrame, studies: dict[str, Any]) -> pd.DataFrame:
    """Sorted by trial number per task: params.json's number, else the Optuna trial's (user attribute
    tune_trial_id), else the rank by start time."""
    if trials.empty:
        return trials
    known = {(task, tid): n for task, s in studies.items() for tid, n in s.user_attrs["numbers"].items()}
    trials["number"] = trials.number.astype("float").fillna(
        pd.Series([known.get(k) for k in zip(trials.task, trials.trial_id)], index=trials.index, dtype="float")
    )
    if trials.started_at.notna().any():
        trials["number"] = trials.number.fillna(trials.groupby("task").started_at.rank(method="first") - 1)
    trials["number"] = trials.number.astype("Int64")
    return trials.sort_values(["task", "number", "trial_id"], na_position="last").reset_index(drop=True)


def _details(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The file `name` of every run, stacked, with the run's KEY columns first."""
    frames = []
    for r in runs.itertuples(index=False):
        path = Path(r.run_dir) / name
        try:
            df = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
        except (OSError, ValueError):
            continue
        if df.empty:
            continue
        for i, k in enumerate(KEY):
            df.insert(i, k, getattr(r, k))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(KEY))


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

    try:
        d = yaml_load(path.read_text()) or {}
        why = "" if isinstance(d, dict) else f"a {type(d).__name__}, not a mapping"
    except (OSError, yaml.YAMLError) as e:
        why = str(e).splitlines()[0]
    if why:  # damaged (e.g. a torn copy): a report ranked by the wrong metric would mislead
        raise CorruptFile(
            f"{str(path)!r} is unreadable or corrupted ({why}); restore it from the study's storage "
            "(or remove it to rank trials by valid/exact)"
        )
    return d
