"""The driver callback of a study's Tune experiment (imports Ray: load it lazily).

A progress line per ended trial; a trial that ended well (ok, stopped, diverged) is collected into
ROOT/<task>/<trial_id>/ at once and, for a search, added to optuna.db. Errored trials wait for the end
of the task (Tune may still retry them). Tune pickles this object with the experiment, so it holds
plain data only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ray.tune import Callback

from .collect import collect_trial, status_of
from .config import StudyConfig
from .optuna_bridge import record_runs
from .tuner import watch_sigint


class Recorder(Callback):
    def __init__(
        self, root: Path, label: str, total: int, epochs: int, cfg: StudyConfig, record_in: Path | None = None
    ):
        self.root, self.label, self.total, self.epochs, self.cfg = root, label, total, epochs, cfg
        self.record_in = record_in  # the study folder whose optuna.db receives the trial (search only)
        self.done = 0

    def setup(self, **info):
        watch_sigint()

    def _finish(self, trial, errored: bool) -> None:
        m = trial.last_result or {}
        status = status_of(m, self.epochs, errored)
        self.done += 1
        metric = self.cfg.how.metric
        value = m.get(metric)
        shown = _shown(trial.config)
        print(
            f"[{self.label}] trial {self.done}/{self.total} {trial.trial_id} {status}: "
            f"{metric}={value if value is None else round(value, 4)} after {m.get('epoch')} epochs ({shown})",
            flush=True,
        )
        if errored:
            return
        try:
            run = collect_trial(self.root, trial.checkpoint, status, epoch=m.get("epoch"))
            if run is not None and self.record_in is not None:
                record_runs(self.record_in, self.cfg, self.label, [run], with_errors=False)
        except Exception as e:  # noqa: BLE001 - collected again when the task ends; never break the study
            print(f"[{self.label}] note: {trial.trial_id} not collected yet ({e})", file=sys.stderr)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, errored=True)


def _shown(config: dict) -> str:
    point = config.get("_rerun")
    if point:
        return f"{point['task']} {point['family']} #{point['rank']} of {point['source_trial_id']}, seed {point['seed']}"
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
