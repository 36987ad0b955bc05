"""What Ray Tune gets from a study: the trainable, TuneConfig (how to search), RunConfig (where the
experiment lives) and a driver callback that collects run folders as trials end. Ray is imported lazily."""

from __future__ import annotations

import signal
import threading

from seqsum.data import Pools, eval_sets

from .config import StudyConfig
from .space import Space
from .storage import Place
from .trainable import run_trial

INTERRUPTED = threading.Event()


def trainable(cfg: StudyConfig, pools: Pools, task: str | None, finished: dict[str, dict] | None = None):
    """run_trial with the parsed study config, the digit pools and the base config's fixed evaluation sets
    (drawn once here, sent to the workers once; a trial whose data differs draws its own), and `finished`:
    the trials whose run folders are complete (study.collect.finished_runs), never trained again."""
    from ray import tune  # Ray: imported only after study.session has set its environment

    sets = eval_sets(pools, cfg.base_run(task or cfg.what.tasks[0]).data)
    fn = tune.with_parameters(run_trial, study=cfg, task=task, pools=pools, sets=sets, finished=finished or {})
    return tune.with_resources(fn, {"cpu": cfg.where.cpus_per_trial, "gpu": cfg.where.gpus_per_trial})


def tune_config(cfg: StudyConfig, task: str):
    """How to search one task: TPE behind a ConcurrencyLimiter, every loss family enqueued first, ASHA or FIFO."""
    import optuna  # (the same: optuna with it)
    from ray import tune  # (the same)
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # (the same)
    from ray.tune.search import ConcurrencyLimiter  # (the same)
    from ray.tune.search.optuna import OptunaSearch  # (the same)

    h = cfg.how
    searcher = OptunaSearch(
        Space(cfg.what.space),
        metric=h.metric,
        mode=h.mode,
        points_to_evaluate=cfg.first_points() or None,
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


def tune_run_config(place: Place, cfg: StudyConfig, name: str, callbacks: list | None = None):
    """Where Tune keeps experiment `name`: the study's tune/ (a folder, or URI/tune on an object store)."""
    from ray import tune  # (the same)

    return tune.RunConfig(
        name=name,
        storage_path=place.tune_path(),
        failure_config=tune.FailureConfig(max_failures=cfg.where.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=callbacks,
        verbose=0,
    )


def watch_sigint() -> None:
    """Note a Ctrl-C that Tune's own handler (installed just before callbacks are set up) receives."""
    if threading.current_thread() is not threading.main_thread():
        return
    tune_handler = signal.getsignal(signal.SIGINT)

    def handler(sig, frame):
        INTERRUPTED.set()
        if callable(tune_handler):
            tune_handler(sig, frame)

    signal.signal(signal.SIGINT, handler)
