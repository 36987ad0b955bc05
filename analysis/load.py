"""The only reader of a study folder (docs/STUDY_LAYOUT.md): files -> tidy pandas DataFrames. Writes nothing.

Identity is data: task, trial_id, kind, family, params, seed, status (and a replicate's rank and
source_trial_id) come from each run's params.json, with config.json's train.* for older studies whose
params.json lacks a field; never from folder names. Metrics come from summary.json.

- `trials_frame(dir)`: one row per search-trial run folder (trials/<task>/<trial_id>/);
- `replicates_frame(dir)`: one row per replicate run folder (any run folder under rerun/);
- `load_study(dir)`: both, plus per-epoch, per-target-value and pair-grid rows of every run
  (column `kind` says search or replicate) and the study's Optuna studies (from optuna.db, or from the
  Optuna storage that study.yaml's where.optuna_storage names).

A study at a URI is read from its local working copy (study/storage.py pulls it first: `seqsum report URI`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from seqsum.config import TASKS, ConfigError, RunConfig, yaml_load
from seqsum.files import CorruptFile
from seqsum.results import read_run
from study.family import family_of

from .optuna_db import optuna_studies

WIDTH_BINS = ((32, "<=32"), (128, "33-128"), (math.inf, ">128"))
IDENTITY = ("kind", "task", "trial_id", "family", "seed", "status")
REPLICATE_IDENTITY = ("rank", "source_trial_id")
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
    import tempfile

    import optuna

    from study.optuna_bridge import open_storage

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
        except Exception as e:  # noqa: BLE001 - any unreachable or unreadable storage becomes one note
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
    import yaml

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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}
