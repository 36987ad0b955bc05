"""Launch, resume and rerun studies on Ray Tune with Optuna.

Design (see docs/STUDY_LAYOUT.md for the files):
- One Tune experiment per task (`STUDY_DIR/tune/<task>`), searched by an *in-memory* OptunaSearch
  (TPE, define-by-run space) and stopped early by ASHA. The Tune experiment folder is the source of
  truth: `Tuner.restore` resumes it after a crash or Ctrl-C (with an RDB-backed OptunaSearch that
  fails in Ray 2.60 with UpdateFinishedTrialError).
- The Optuna RDB study per task (`optuna.db`, SQLite) is *written from results*: each finished trial
  is added once (keyed by its Tune trial id) by a driver callback and again at the end. It never holds
  a RUNNING trial, so a killed driver cannot leave zombies in it.
- After each task, every trial's last checkpoint (the run folder) is copied to `trials/<task>/<id>/`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from seqsum.config import ConfigError
from seqsum.data import load_pools
from seqsum.results import append_metrics, write_json
from seqsum.train import load_checkpoint

from .config import Space, StudyConfig, distributions
from .trainable import run_trial


class StudyError(ConfigError):
    """A user-facing study error: one line, exit code 2."""


STATE = "state.json"


# --- Ray session ------------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Join the cluster at `address`, or start an embedded single-node Ray bound to loopback only."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        yield
        return
    if address is None:
        # Embedded mode binds every listener and connection to 127.0.0.1. Ray reads this variable at
        # import time, in this process (hence the constant) and in the processes it starts (hence the
        # environment). It refuses multi-node clusters, so it is set only for the embedded mode.
        from ray._private import ray_constants

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            configure_logging=True,
            logging_level="WARNING",
            log_to_driver=True,
        )
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=True)
        except Exception as e:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...
            hint = ""
            if "auth" in type(e).__name__.lower() or "auth" in str(e).lower():
                hint = " (a secured cluster: set RAY_AUTH_MODE=token and the cluster's token, see README)"
            raise StudyError(f"cannot connect to Ray at {address!r}: {str(e).splitlines()[0][:200]}{hint}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast with one line when host:port does not answer (ray.init alone may retry for minutes)."""
    if address in ("auto", "local") or address.startswith(("ray://", "anyscale://")):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise StudyError(f"bad --address {address!r}; use auto or host:port (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise StudyError(f"Ray cluster at {address!r} is unreachable: {e.strerror or e}") from None


# --- study folder -----------------------------------------------------------------------------
def study_dir_of(cfg: StudyConfig) -> Path:
    if "://" in cfg.where.storage:
        raise StudyError(
            f"storage {cfg.where.storage!r}: URIs are not supported yet; use a local or shared (NFS) folder"
        )
    return Path(cfg.where.storage).expanduser().resolve() / cfg.where.name


def read_state(study_dir: Path) -> dict[str, Any]:
    p = study_dir / STATE
    return json.loads(p.read_text()) if p.exists() else {"tasks": {}}


def load_study(study_dir: str | Path) -> tuple[Path, StudyConfig]:
    study_dir = Path(study_dir).expanduser().resolve()
    if not (study_dir / "study.yaml").is_file():
        raise StudyError(f"{str(study_dir)!r} is not a study folder (no study.yaml)")
    return study_dir, StudyConfig.load(study_dir / "study.yaml")


def create_study_dir(cfg: StudyConfig) -> Path:
    d = study_dir_of(cfg)
    if (d / "study.yaml").exists():
        same = StudyConfig.load(d / "study.yaml").to_dict() == cfg.to_dict()
        if same:
            raise StudyError(f"study {str(d)!r} already exists; continue it with: seqsum study resume {d}")
        raise StudyError(
            f"storage folder {str(d)!r} already holds a different study; choose another --name or --storage"
        )
    if d.exists() and any(d.iterdir()):
        raise StudyError(f"{str(d)!r} exists and is not empty; choose another --name or --storage")
    d.mkdir(parents=True, exist_ok=True)
    (d / "study.yaml").write_text(cfg.to_yaml())
    write_json(d / STATE, {"tasks": {}})
    return d


# --- Optuna storage, written from results -----------------------------------------------------
def optuna_storage(study_dir: Path):
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")


def optuna_study_name(cfg: StudyConfig, task: str) -> str:
    return f"{cfg.where.name}/{task}"


def record_trials(study_dir: Path, cfg: StudyConfig, task: str, rows: list[dict[str, Any]]) -> int:
    """Add finished trials (rows with trial_id, params, value, status) not yet in the Optuna study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=optuna_study_name(cfg, task),
        storage=optuna_storage(study_dir),
        direction="maximize" if cfg.how.mode == "max" else "minimize",
        load_if_exists=True,
    )
    seen = {t.user_attrs.get("tune_trial_id") for t in study.get_trials(deepcopy=False)}
    dists = distributions(cfg.what.space)
    added = 0
    for r in rows:
        if r["trial_id"] in seen:
            continue
        value = r.get("value")
        ok = r["status"] != "error" and isinstance(value, (int, float)) and math.isfinite(value)
        trial = optuna.trial.create_trial(
            params=r["params"],
            distributions={k: dists[k] for k in r["params"] if k in dists},
            value=value if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"tune_trial_id": r["trial_id"], "status": r["status"], "epochs": r.get("epochs")},
        )
        study.add_trial(trial)
        added += 1
    return added


# --- launch / resume --------------------------------------------------------------------------
def launch(cfg: StudyConfig, address: str | None = None, report: bool = True) -> Path:
    study_dir_of(cfg)  # a bad storage URI fails here
    if address is not None:
        _check_reachable(address)  # an unreachable cluster fails before anything is written
    pools = load_pools(cfg.base_run(cfg.what.tasks[0]).data)  # so does a bad data root
    study_dir = create_study_dir(cfg)
    print(f"study {cfg.where.name}: {study_dir}", flush=True)
    return _run(study_dir, cfg, address, report, pools)


def resume(study_dir: str | Path, address: str | None = None, report: bool = True) -> Path:
    study_dir, cfg = load_study(study_dir)
    print(f"resuming study {cfg.where.name}: {study_dir}", flush=True)
    return _run(study_dir, cfg, address, report)


def _run(study_dir: Path, cfg: StudyConfig, address: str | None, report: bool, pools=None) -> Path:
    state = read_state(study_dir)
    todo = [t for t in cfg.what.tasks if state["tasks"].get(t, {}).get("status") != "done"]
    if pools is None:
        pools = load_pools(cfg.base_run(cfg.what.tasks[0]).data)
    if todo:
        with ray_session(address):
            for task in todo:
                t0 = time.time()
                try:
                    rows = _run_task(study_dir, cfg, task, pools)
                except Interrupted as e:
                    raise Interrupted(
                        f"{e}; finished trials are kept. Continue with: seqsum study resume {study_dir}"
                    ) from None
                state["tasks"][task] = {
                    "status": "done",
                    "wall_seconds": time.time() - t0 + state["tasks"].get(task, {}).get("wall_seconds", 0.0),
                    "trials": len(rows),
                }
                write_json(study_dir / STATE, state)
    write_trials_csv(study_dir, cfg)
    print(summary_text(study_dir, cfg), flush=True)
    if report:
        make_report(study_dir)
    return study_dir


class Interrupted(Exception):
    pass


def _run_task(study_dir: Path, cfg: StudyConfig, task: str, pools) -> list[dict[str, Any]]:
    from ray import tune

    exp = study_dir / "tune" / task
    trainable = _trainable(cfg, task, pools)
    recorder = _Recorder(study_dir, cfg, task)
    if tune.Tuner.can_restore(str(exp)):
        print(f"[{task}] restoring the Tune experiment {exp}", flush=True)
        tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, tune_config=_tune_config(cfg, task), run_config=_run_config(study_dir, cfg, task, recorder)
        )
    _INTERRUPTED.clear()
    grid = tuner.fit()
    if _INTERRUPTED.is_set():  # Ctrl-C: Tune saved its state and returned early; `resume` collects
        raise Interrupted(f"[{task}] stopped by Ctrl-C")
    rows = collect(study_dir, cfg, task, grid)
    record_trials(study_dir, cfg, task, rows)
    if len(rows) < cfg.how.num_samples:
        raise Interrupted(f"[{task}] {len(rows)}/{cfg.how.num_samples} trials finished")
    return rows


_INTERRUPTED = threading.Event()


def _watch_sigint() -> None:
    """Note a Ctrl-C that Tune's own handler (installed just before callbacks are set up) receives."""
    if threading.current_thread() is not threading.main_thread():
        return
    tune_handler = signal.getsignal(signal.SIGINT)

    def handler(sig, frame):
        _INTERRUPTED.set()
        if callable(tune_handler):
            tune_handler(sig, frame)

    signal.signal(signal.SIGINT, handler)


def _trainable(cfg: StudyConfig, task: str, pools):
    from ray import tune

    res = {"cpu": cfg.where.cpus_per_trial, "gpu": cfg.where.gpus_per_trial}
    fn = tune.with_parameters(run_trial, study=cfg.to_dict(), task=task, pools=pools)
    return tune.with_resources(fn, res)


def _tune_config(cfg: StudyConfig, task: str):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    h = cfg.how
    space = cfg.what.space
    seed = cfg.seed_point() if cfg.what.enqueue_seed else None
    searcher = OptunaSearch(
        Space(space),
        metric=h.metric,
        mode=h.mode,
        points_to_evaluate=[seed] if seed else None,
        sampler=optuna.samplers.TPESampler(seed=h.seed),
    )
    searcher = ConcurrencyLimiter(searcher, max_concurrent=h.max_concurrent)
    epochs = cfg.base_run(task).train.epochs
    scheduler = (
        ASHAScheduler(
            metric=h.metric,
            mode=h.mode,
            max_t=epochs,
            grace_period=min(h.grace_period, epochs),
            reduction_factor=h.reduction_factor,
        )
        if h.scheduler == "asha"
        else FIFOScheduler()
    )
    return tune.TuneConfig(
        search_alg=searcher, scheduler=scheduler, num_samples=h.num_samples, reuse_actors=cfg.where.reuse_actors
    )


def _run_config(study_dir: Path, cfg: StudyConfig, task: str, recorder, name: str | None = None):
    from ray import tune

    return tune.RunConfig(
        name=name or task,
        storage_path=str(study_dir / "tune"),
        failure_config=tune.FailureConfig(max_failures=cfg.where.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[recorder] if recorder else None,
        verbose=0,
    )


def _trial_row(task: str, trial_id: str, params: dict, metrics: dict, status: str, metric: str) -> dict[str, Any]:
    return {
        "task": task,
        "trial_id": trial_id,
        "status": status,
        "params": params,
        "value": metrics.get(metric),
        "epochs": metrics.get("epoch"),
    }


def _status(metrics: dict[str, Any], epochs: int, errored: bool) -> str:
    if errored:
        return "error"
    if metrics.get("status") == "diverged":
        return "diverged"
    return "ok" if (metrics.get("epoch") or 0) >= epochs else "stopped"


try:
    from ray.tune import Callback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object


class _Recorder(_Callback):
    """Driver-side: a progress line per finished trial, and the trial into the Optuna RDB study."""

    def __init__(self, study_dir: Path, cfg: StudyConfig, task: str):
        self.study_dir, self.cfg, self.task = study_dir, cfg, task
        self.epochs = cfg.base_run(task).train.epochs
        self.done = 0

    def _finish(self, trial, errored: bool) -> None:
        m = trial.last_result or {}
        status = _status(m, self.epochs, errored)
        self.done += 1
        value = m.get(self.cfg.how.metric)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
        print(
            f"[{self.task}] trial {self.done}/{self.cfg.how.num_samples} {trial.trial_id} {status}: "
            f"{self.cfg.how.metric}={value if value is None else round(value, 4)} "
            f"after {m.get('epoch')} epochs ({shown})",
            flush=True,
        )
        try:
            record_trials(
                self.study_dir,
                self.cfg,
                self.task,
                [_trial_row(self.task, trial.trial_id, dict(trial.config), m, status, self.cfg.how.metric)],
            )
        except Exception as e:  # noqa: BLE001 - the final sync retries; never break the study for this
            print(f"[{self.task}] note: optuna.db not updated yet ({e})", file=sys.stderr)

    def setup(self, **info):
        _watch_sigint()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, errored=True)


# --- collecting results -----------------------------------------------------------------------
def collect(study_dir: Path, cfg: StudyConfig, task: str, grid, dest: Path | None = None) -> list[dict[str, Any]]:
    """Copy every trial's last checkpoint (its run folder) to trials/<task>/<trial_id>/; return rows."""
    dest = dest or study_dir / "trials" / task
    epochs = cfg.base_run(task).train.epochs
    rows = []
    ended = _ended_trials(grid)
    for res in grid:
        m = res.metrics or {}
        trial_id = m.get("trial_id") or Path(res.path).name
        if ended is not None and trial_id not in ended:
            continue  # interrupted while pending or running: collected after `resume`
        status = _status(m, epochs, res.error is not None)
        out = dest / trial_id
        if res.checkpoint is not None:
            tmp = dest / f".{trial_id}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            res.checkpoint.to_directory(str(tmp))
            _complete_run_folder(tmp, task, trial_id, dict(res.config), status)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
        rows.append(_trial_row(task, trial_id, dict(res.config), m, status, cfg.how.metric))
    return rows


def _ended_trials(grid) -> set[str] | None:
    """Ids of the trials that ended (terminated or errored); None if this Ray cannot tell."""
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None)
    if trials is None:
        return None
    return {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}


def _complete_run_folder(d: Path, task: str, trial_id: str, params: dict, status: str) -> None:
    """A checkpoint of a stopped/errored trial holds only checkpoint.pt: derive the run folder files."""
    info_path = d / "params.json"
    if not (d / "summary.json").exists():
        state = load_checkpoint(d / "checkpoint.pt")
        write_json(d / "config.json", state["config"])
        hist = state["history"]
        for h in hist:
            append_metrics(d, h)  # the same writer as train's (NaN -> null)
        last = hist[-1] if hist else {}
        write_json(
            d / "summary.json",
            {
                "status": status,
                "epochs": len(hist),
                "train_seconds": sum(h.get("time/epoch_s", 0.0) for h in hist),
                **{k: v for k, v in last.items() if k.startswith(("train/", "valid/"))},
            },
        )
    info = (
        json.loads(info_path.read_text())
        if info_path.exists()
        else {"trial_id": trial_id, "task": task, "params": params.get("_rerun", {}).get("params", params)}
    )
    info["status"] = status
    write_json(info_path, info)


def trial_frame(study_dir: Path) -> pd.DataFrame:
    """One row per collected trial: task, trial_id, status, node, params (param/...), final metrics."""
    rows = []
    for p in sorted((study_dir / "trials").glob("*/*/params.json")):
        info = json.loads(p.read_text())
        summary = json.loads((p.parent / "summary.json").read_text())
        row = {
            "task": info["task"],
            "trial_id": info["trial_id"],
            "status": info["status"],
            "node_ip": info.get("node_ip"),
            **{f"param/{k}": v for k, v in info["params"].items()},
        }
        row.update({k: v for k, v in summary.items() if k != "status"})
        rows.append(row)
    return pd.DataFrame(rows)


def write_trials_csv(study_dir: Path, cfg: StudyConfig) -> pd.DataFrame:
    df = trial_frame(study_dir)
    if not df.empty:
        asc = cfg.how.mode == "min"
        df = df.sort_values(["task", cfg.how.metric], ascending=[True, asc], na_position="last")
        df.to_csv(study_dir / "trials.csv", index=False)
    return df


def summary_text(study_dir: Path, cfg: StudyConfig) -> str:
    df = trial_frame(study_dir)
    if df.empty:
        return f"study {cfg.where.name}: no finished trials"
    lines = [f"study {cfg.where.name}: {len(df)} trials in {study_dir}"]
    metric = cfg.how.metric
    for task, g in df.groupby("task"):
        best = g.sort_values(metric, ascending=cfg.how.mode == "min").iloc[0]
        params = {k[6:]: _py(best[k]) for k in g.columns if k.startswith("param/") and pd.notna(best[k])}
        test = f", test/exact={best['test/exact']:.3f}" if "test/exact" in best and pd.notna(best["test/exact"]) else ""
        lines.append(
            f"  {task}: best {metric}={best[metric]:.3f}{test} ({best['trial_id']}: {params}); "
            f"statuses {g.status.value_counts().to_dict()}"
        )
    return "\n".join(lines)


def _py(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return round(v, 6) if isinstance(v, float) else v


def make_report(study_dir: Path) -> None:
    try:
        from analysis.report import build_report
    except ImportError:
        return
    try:
        out = build_report(study_dir)
        print(f"report: {out / 'index.html'}", flush=True)
    except Exception as e:  # noqa: BLE001 - the study's results are safe; the report can be rebuilt
        print(
            f"report not written ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"rebuild it with: seqsum report {study_dir}",
            file=sys.stderr,
        )


# --- rerun ------------------------------------------------------------------------------------
def rerun(
    study_dir: str | Path,
    top: int = 3,
    seeds: int = 3,
    epochs: int | None = None,
    address: str | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Retrain the top-K configs of each task with `seeds` seeds; write rerun/ and rerun/summary.csv."""
    from ray import tune

    study_dir, cfg = load_study(study_dir)
    if top < 1 or seeds < 1 or (epochs is not None and epochs < 1):
        raise StudyError(f"--top, --seeds and --epochs must be >= 1, got top={top} seeds={seeds} epochs={epochs}")
    out = study_dir / "rerun"
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise StudyError(f"{str(out)!r} already holds reruns; pass --overwrite to replace them")
    trials = trial_frame(study_dir)
    ok = trials[trials.status == "ok"] if not trials.empty else trials
    if ok.empty:
        raise StudyError(f"study {str(study_dir)!r} has no finished trial to rerun")
    pools = load_pools(cfg.base_run(cfg.what.tasks[0]).data)
    if out.exists():
        shutil.rmtree(out)
    for old in (study_dir / "tune").glob("rerun-*"):
        shutil.rmtree(old)
    metric, asc = cfg.how.metric, cfg.how.mode == "min"
    with ray_session(address):
        for task, g in ok.groupby("task"):
            best = g.sort_values(metric, ascending=asc).head(top)
            ep = epochs or cfg.base_run(task).train.epochs
            points = []
            for rank, (_, row) in enumerate(best.iterrows(), 1):
                params = json.loads((study_dir / "trials" / task / row.trial_id / "params.json").read_text())["params"]
                points += [
                    {"params": params, "seed": s, "epochs": ep, "trial_id": row.trial_id, "rank": rank}
                    for s in range(seeds)
                ]
            print(f"[rerun {task}] {len(best)} configs x {seeds} seeds, {ep} epochs", flush=True)
            tuner = tune.Tuner(
                _trainable(cfg, task, pools),
                param_space={"_rerun": tune.grid_search(points)},
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=cfg.how.max_concurrent, reuse_actors=cfg.where.reuse_actors
                ),
                run_config=_run_config(study_dir, cfg, task, None, name=f"rerun-{task}"),
            )
            grid = tuner.fit()
            tmp = out / task / ".collect"
            for row in collect(study_dir, cfg, task, grid, dest=tmp):
                r = row["params"]["_rerun"]
                final = out / task / f"{r['rank']}-{r['trial_id']}" / f"seed={r['seed']}"
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / row["trial_id"], final)
            shutil.rmtree(tmp, ignore_errors=True)
    summary = rerun_summary(out)
    summary.to_csv(out / "summary.csv", index=False)
    print(rerun_text(summary), flush=True)
    return summary


RERUN_METRICS = ("test/exact", "test/mae", "test/mse", "pairs/9x9/exact", "valid/exact")


def rerun_summary(rerun_dir: Path) -> pd.DataFrame:
    rows = []
    for p in sorted(rerun_dir.glob("*/*/seed=*/summary.json")):
        s = json.loads(p.read_text())
        rank, _, trial_id = p.parent.parent.name.partition("-")
        for k in RERUN_METRICS:
            rows.append(
                {
                    "task": p.parent.parent.parent.name,
                    "rank": int(rank),
                    "trial_id": trial_id,
                    "seed": int(p.parent.name.split("=")[1]),
                    "status": s["status"],
                    "metric": k,
                    "value": s.get(k),
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["task", "rank", "trial_id", "metric", "mean", "std", "n"])
    g = df.groupby(["task", "rank", "trial_id", "metric"]).value
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()}).reset_index()


def rerun_text(summary: pd.DataFrame) -> str:
    lines = []
    for (task, rank, tid), g in summary.groupby(["task", "rank", "trial_id"]):
        cells = "  ".join(f"{r.metric} {r['mean']:.3f} ± {r['std']:.3f}" for _, r in g.iterrows())
        lines.append(f"{task} #{rank} {tid} (n={int(g.n.max())}): {cells}")
    return "\n".join(lines)
