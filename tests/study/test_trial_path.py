"""The trial path without a Ray session: what study.tuner hands Tune (where the experiment lives; how it
searches: the enqueued families first, TPE seeded, ASHA or FIFO, the concurrency limit), the run folder the
trainable leaves in a trial's last checkpoint (study.trainable), and the driver callback that collects and
records ended trials (study.recorder). Real training on a tiny config, real tune.Checkpoint folders, real Tune
Trial objects (stubs: no trainable registered) and a real optuna.db; Ray itself never starts."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import optuna
import pytest
from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from seqsum.checkpoint import save_checkpoint
from seqsum.files import read_json
from seqsum.results import FILES, read_run
from seqsum.train import train
from study import storage
from study.collect import PARAMS, is_complete
from study.config import load_preset
from study.family import family_of
from study.recorder import Recorder
from study.trainable import _write_run_folder
from study.tuner import tune_config, tune_run_config
from tests.helpers import tiny_config

EPOCHS = 2
POINT = {"loss": "mse", "gru_width": 8, "lr": 0.001}  # inside the smoke preset's space


# --- what Tune is given --------------------------------------------------------------------------------------
def test_the_experiment_lives_in_the_studys_tune_folder_with_its_failure_budget(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    cfg = load_preset("smoke").override("where", max_failures=3)
    for place in (storage.place(tmp_path / "st", "x"), storage.place("s3://bkt/studies", "x")):
        rc = tune_run_config(place, cfg, "rerun", callbacks=[])
        assert rc.name == "rerun" and rc.storage_path == place.tune_path()
        assert rc.storage_path == (
            str(tmp_path / "st" / "x" / "tune") if not place.remote else "s3://bkt/studies/x/tune"
        )
        assert rc.failure_config.max_failures == 3 and rc.checkpoint_config.num_to_keep == 2


def _suggestions(searcher, n: int) -> list:
    return [searcher.suggest(f"t{i}") for i in range(n)]


def test_the_search_starts_with_every_family_then_tpe_within_the_concurrency_limit():
    cfg = load_preset("smoke").override("how", max_concurrent=2)  # 3 samples, one per loss family enqueued
    tc = tune_config(cfg, "sum")
    assert tc.num_samples == 3 and tc.reuse_actors is True
    first = _suggestions(tc.search_alg, 3)
    assert [p["loss"] for p in first[:2]] == ["mse", "log"] and first[2] is None  # the limiter holds the third
    tc.search_alg.on_trial_complete("t0", {"valid/exact": 0.1})
    third = tc.search_alg.suggest("t3")
    assert third["loss"] == "classify"
    space = cfg.what.space
    for p in [*first[:2], third]:
        assert set(p) == set(space) and space["gru_width"]["low"] <= p["gru_width"] <= space["gru_width"]["high"]
    again = tune_config(cfg, "sum").search_alg  # how.seed: the same study suggests the same points
    assert _suggestions(again, 2) == first[:2]


def test_asha_stops_within_the_epoch_budget_or_fifo_never_stops():
    cfg = load_preset("smoke")  # 2 epochs, grace_period 1
    asha = tune_config(cfg, "sum").scheduler
    assert isinstance(asha, ASHAScheduler) and asha._max_t == EPOCHS
    assert min(m for b in asha._brackets for m, _ in b._rungs) == 1  # the first rung: grace_period
    late = tune_config(cfg.override("how", grace_period=5), "sum").scheduler  # never past the last epoch
    assert min(m for b in late._brackets for m, _ in b._rungs) == EPOCHS
    assert type(tune_config(cfg.override("how", scheduler="fifo"), "sum").scheduler) is FIFOScheduler


# --- the trial's last checkpoint -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ended(pools):
    """(config, TrainResult, last state) of a tiny run trained to its end, and of one that diverged (resumed
    from its first epoch with lr 1e20), each as the trainable's report() last saw it."""
    cfg = tiny_config(train__epochs=EPOCHS, train__loss="mse")
    states: list = []
    ok = train(cfg, pools, report=lambda m, s: states.append(copy.deepcopy(s)))
    blown = copy.deepcopy(states[0])
    for group in blown["optimizer"]["param_groups"]:
        group["lr"] = 1e20
    blown_states: list = []
    div = train(cfg, pools, resume=blown, report=lambda m, s: blown_states.append(copy.deepcopy(s)))
    assert ok.status == "ok" and div.status == "diverged"
    return {"ok": (cfg, ok, states[-1]), "diverged": (cfg, div, blown_states[-1])}


def _info(trial_id: str, cfg) -> dict:
    """A trial's identity as run_trial builds it."""
    return {"task": "sum", "trial_id": trial_id, "family": family_of(cfg), "seed": cfg.train.seed, "kind": "search",
            "params": POINT, "status": "running", "node_ip": "local", "started_at": time.time()}  # fmt: skip


def _last_checkpoint(folder: Path, ended: dict, how: str, trial_id: str) -> tuple[Path, dict]:
    """The checkpoint folder run_trial leaves after train() returns, and the metrics it reports with it."""
    cfg, result, state = ended[how]
    d = folder / f"ckpt-{trial_id}"
    d.mkdir()
    save_checkpoint(state, d / "checkpoint.pt")
    metrics = dict(result.history[-1])
    metrics.update(_write_run_folder(d, cfg, result, state, _info(trial_id, cfg)))
    return d, metrics


def test_the_last_checkpoint_holds_the_whole_run_folder(ended, tmp_path):
    d, metrics = _last_checkpoint(tmp_path, ended, "ok", "t-ok")
    # a complete run folder, checkpoint included (confusion.csv is a digit bottleneck's only)
    assert {f for f in FILES if (d / f).exists()} == set(FILES) - {"confusion.csv"}
    config, summary = read_run(d)
    assert summary["status"] == "ok" and summary["epochs"] == EPOCHS and config["train"]["epochs"] == EPOCHS
    reported = {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert reported and reported == {k: summary[k] for k in reported}  # Tune gets the scores the folder keeps
    params = read_json(d / PARAMS)
    assert params["status"] == "ok" and params["params"] == POINT and params["trial_id"] == "t-ok"
    assert params["train_seconds"] == metrics["train_seconds"] == ended["ok"][2]["train_seconds"]
    assert params["finished_at"] >= params["started_at"] and params["eval_seconds"] >= 0 and params["peak_rss_mb"] > 0


def test_a_diverged_trial_is_not_evaluated(ended, tmp_path):
    d, metrics = _last_checkpoint(tmp_path, ended, "diverged", "t-div")
    assert set(metrics) - set(ended["diverged"][1].history[-1]) == {"train_seconds"}  # no test/ scores
    _, summary = read_run(d)
    assert summary["status"] == "diverged" and not any(k.startswith("test/") for k in summary)
    assert read_json(d / PARAMS)["status"] == "diverged"


# --- the driver's callback ------------------------------------------------------------------------------------
def _trial(trial_id: str, config: dict, last: dict, checkpoint: Path | None) -> Trial:
    """A Tune trial as the driver sees it when it ends: its config, last result and latest checkpoint."""
    t = Trial("run_trial", config=config, trial_id=trial_id, stub=True)
    t.update_last_result(dict(last))
    if checkpoint is not None:
        t.run_metadata.checkpoint_manager.register_checkpoint(
            _TrainingResult(Checkpoint.from_directory(str(checkpoint)), dict(last))
        )
    return t


def test_the_recorder_collects_records_and_reports_each_ended_trial(ended, tmp_path, capsys):
    cfg = load_preset("smoke").override("where", name="syn", storage=str(tmp_path))
    place = storage.place(tmp_path, "syn")
    rec = Recorder("trials", "sum", total=3, epochs=EPOCHS, cfg=cfg, record=True)
    ok, last_ok = _last_checkpoint(tmp_path, ended, "ok", "t-ok")
    div, last_div = _last_checkpoint(tmp_path, ended, "diverged", "t-div")
    with storage.active(place):
        rec.on_trial_complete(0, [], _trial("t-ok", POINT, last_ok, ok))
        rec.on_trial_error(0, [], _trial("t-err", POINT, {"epoch": 1, "status": "ok"}, None))
        rec.on_trial_complete(0, [], _trial("t-div", POINT, last_div, div))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[sum] trial 1/3 t-ok ok: valid/exact=") and "after 2 epochs (loss=mse" in lines[0]
    assert lines[0].endswith("for 2 more") and "ETA " in lines[0]
    assert lines[1].startswith("[sum] trial 2/3 t-err error: ") and "after 1 epochs" in lines[1]
    assert lines[2].startswith("[sum] trial 3/3 t-div diverged: ") and lines[2].endswith("elapsed, task done")

    runs = place.local / "trials" / "sum"
    assert sorted(p.name for p in runs.iterdir()) == ["t-div", "t-ok"]  # an error waits: Tune may retry it
    assert is_complete(runs / "t-ok") and is_complete(runs / "t-div")
    assert (runs / "t-ok" / "summary.json").read_bytes() == (ok / "summary.json").read_bytes()
    db = optuna.load_study(study_name="syn/sum", storage=f"sqlite:///{place.local / 'optuna.db'}")
    assert {t.user_attrs["tune_trial_id"]: t.state.name for t in db.get_trials()} == {
        "t-ok": "COMPLETE",
        "t-div": "PRUNED",
    }


def test_a_replicate_is_collected_not_recorded_and_outside_a_command_nothing_is(ended, tmp_path, capsys):
    cfg = load_preset("smoke").override("where", name="syn", storage=str(tmp_path))
    place = storage.place(tmp_path, "syn")
    rep = {"_rerun": {"task": "sum", "family": "mse", "rank": 1, "source_trial_id": "t-ok", "seed": 1000}}
    ckpt, last = _last_checkpoint(tmp_path, ended, "ok", "r1")
    rec = Recorder("rerun", "sum", total=1, epochs=EPOCHS, cfg=cfg, record=False)
    rec.on_trial_complete(0, [], _trial("r0", rep, last, ckpt))  # no seqsum command: nothing is collected
    assert not place.local.exists()
    with storage.active(place):
        rec.on_trial_complete(0, [], _trial("r1", rep, last, ckpt))
    out = capsys.readouterr().out
    assert "(sum mse #1 of t-ok, seed 1000)" in out
    assert is_complete(place.local / "rerun" / "sum" / "r1") and not (place.local / "optuna.db").exists()


def test_a_trial_that_cannot_be_collected_is_a_note_not_a_failure(tmp_path, capsys):
    cfg = load_preset("smoke").override("where", name="syn", storage=str(tmp_path))
    place = storage.place(tmp_path, "syn")
    broken = tmp_path / "ckpt-broken"
    broken.mkdir()
    (broken / PARAMS).write_text("{ not json")  # a damaged checkpoint
    rec = Recorder("trials", "sum", total=1, epochs=EPOCHS, cfg=cfg, record=True)
    with storage.active(place):
        rec.on_trial_complete(0, [], _trial("t-x", POINT, {"epoch": EPOCHS, "status": "ok"}, broken))
    out, err = capsys.readouterr()
    assert "[sum] trial 1/1 t-x ok" in out and "[sum] note: t-x not collected yet" in err
    assert not (place.local / "trials" / "sum" / "t-x").exists()
    assert rec.done == 1  # counted: the study goes on
