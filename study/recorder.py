"""The driver callback of a study's Tune experiment (imports Ray: load it lazily).

A progress line per ended trial; a trial that ended well (ok, stopped, diverged) is collected into
STUDY/<folder>/<task>/<trial_id>/ at once and, for a search, added to the Optuna study; a study at a URI
is then pushed there. Errored trials wait for the end of the task (Tune may still retry them). Tune
pickles this object with the experiment (and `Tuner.restore` brings that copy back, maybe on another
machine), so it holds plain data only and finds the study through `storage.current()`, the study the
command in this process works on.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ray.tune import Callback

from seqsum.files import free_bytes, human_bytes

from . import storage
from .collect import collect_trial, status_of
from .config import StudyConfig
from .optuna_bridge import record_runs
from .tuner import watch_sigint

LOW_SPACE = 16 * 2**20  # below this many free bytes in the study folder, the study stops as after a Ctrl-C
STOPPED_FOR_SPACE: list[str] = []  # the one line saying why, for the command's exit (study/cli.py)


class Recorder(Callback):
    def __init__(self, folder: str, label: str, total: int, epochs: int, cfg: StudyConfig, record: bool = False):
        self.folder, self.label, self.total, self.epochs, self.cfg = folder, label, total, epochs, cfg
        self.record = record  # add the trial to the study's Optuna record (search only)
        self.done = 0
        self.t0, self.done_here = time.monotonic(), 0

    def setup(self, **info):
        watch_sigint()
        self.t0, self.done_here = time.monotonic(), 0  # this process's start: a restored copy times itself

    def _eta(self) -> str:
        """Time left for the task: the mean wall time per trial ended so far in this process x trials left."""
        left = self.total - self.done
        if left <= 0:
            return f", {_clock(time.monotonic() - self.t0)} elapsed, task done"
        if not self.done_here:
            return ""
        per = (time.monotonic() - self.t0) / self.done_here
        return f", ETA {_clock(per * left)} for {left} more"

    def _finish(self, trial, errored: bool) -> None:
        m = trial.last_result or {}
        status = status_of(m, self.epochs, errored)
        self.done += 1
        self.done_here += 1
        metric = self.cfg.how.metric
        value = m.get(metric)
        shown = _shown(trial.config)
        print(
            f"[{self.label}] trial {self.done}/{self.total} {trial.trial_id} {status}: "
            f"{metric}={value if value is None else round(value, 4)} after {m.get('epoch')} epochs ({shown})"
            + self._eta(),
            flush=True,
        )
        if errored:
            return
        place = storage.current()
        if place is None:
            return  # not run by a seqsum command: collected when the task ends
        try:
            run = collect_trial(place.local / self.folder, trial.checkpoint, status, epoch=m.get("epoch"))
            if run is not None and self.record:
                record_runs(place.local, self.cfg, self.label, [run], with_errors=False)
            storage.sync(place)
        except Exception as e:  # collected again when the task ends; never break the study
            print(f"[{self.label}] note: {trial.trial_id} not collected yet ({e})", file=sys.stderr)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """Stop the study cleanly (Tune saves its state, as on Ctrl-C) before its storage fills up."""
        place = storage.current()
        if place is None or STOPPED_FOR_SPACE:
            return
        free = free_bytes(place.local)
        if free is not None and free < LOW_SPACE:
            STOPPED_FOR_SPACE.append(
                f"no space left in {str(place.local)!r}: {human_bytes(free)} free, below the {human_bytes(LOW_SPACE)} "
                f"a study keeps free; stopped with every finished trial kept: free some space and continue with "
                f"seqsum study resume {place.where}"
            )
            os.kill(os.getpid(), signal.SIGINT)  # Tune's own graceful stop, the one a Ctrl-C takes

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, errored=True)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _shown(config: dict) -> str:
    point = config.get("_rerun")
    if point:
        return f"{point['task']} {point['family']} #{point['rank']} of {point['source_trial_id']}, seed {point['seed']}"
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
