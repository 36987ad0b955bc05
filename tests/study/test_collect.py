"""Run folders from trial checkpoints (study/collect.py) and Optuna's record of them (study/optuna_bridge.py)
for every way a trial can end (ok, stopped by ASHA, diverged, errored), each from real training on a tiny
config and a real tune.Checkpoint (a folder: no Ray cluster starts). A complete run folder is final."""

from __future__ import annotations

import copy
import json
import math

import optuna
import pytest

from seqsum.checkpoint import save_checkpoint
from seqsum.files import write_json
from seqsum.results import write_run
from seqsum.train import train
from study.collect import PARAMS, collect_trial, finished_runs, is_complete, status_of
from study.config import load_preset
from study.optuna_bridge import record_runs
from tests.helpers import tiny_config, tree

SPACE_POINT = {"loss": "mse", "gru_width": 8, "lr": 0.001}  # inside the smoke preset's space
EPOCHS = 3


@pytest.fixture(scope="module")
def states(pools):
    """Checkpoint states of a 3-epoch run, and of one that diverged in epoch 2 (resumed with lr 1e20)."""
    cfg = tiny_config(train__epochs=EPOCHS, train__loss="mse")
    ok: list = []
    train(cfg, pools, report=lambda m, s: ok.append(copy.deepcopy(s)))
    blown = copy.deepcopy(ok[0])
    for group in blown["optimizer"]["param_groups"]:
        group["lr"] = 1e20
    diverged: list = []
    res = train(cfg, pools, resume=blown, report=lambda m, s: diverged.append(copy.deepcopy(s)))
    assert res.status == "diverged" and [m["status"] for m in res.history] == ["ok", "diverged"]
    return {"ok": ok, "diverged": diverged[-1]}


def _checkpoint(folder, trial_id: str, state, final_status: str | None = None):
    """What the trainable leaves in a checkpoint: checkpoint.pt and params.json, and for a trial's last
    report (ok or diverged) the whole run folder."""
    from ray import tune

    d = folder / f"ckpt-{trial_id}-{state['epoch']}"
    d.mkdir()
    save_checkpoint(state, d / "checkpoint.pt")
    info = {"task": "sum", "trial_id": trial_id, "family": "mse", "seed": 0, "kind": "search"}
    info.update(params=SPACE_POINT, status="running", started_at=0.0)
    if final_status:
        write_run(d, state["config"], state["history"], final_status, 1.0, params={**info, "status": final_status})
    else:
        write_json(d / PARAMS, info)
    return tune.Checkpoint.from_directory(str(d))


def test_every_ending_is_collected_and_recorded_once(states, tmp_path):
    study = tmp_path / "syn"
    root = study / "trials"
    ok, div = states["ok"], states["diverged"]
    ends = {  # trial id: (checkpoint, last reported metrics, errored)
        "ok": (_checkpoint(tmp_path, "ok", ok[2], "ok"), {"epoch": 3, "status": "ok"}, False),
        "stopped": (_checkpoint(tmp_path, "stopped", ok[0]), {"epoch": 1, "status": "ok"}, False),
        "diverged": (_checkpoint(tmp_path, "diverged", div, "diverged"), {"epoch": 2, "status": "diverged"}, False),
        "error": (_checkpoint(tmp_path, "error", ok[1]), {"epoch": 2, "status": "ok"}, True),
    }
    runs = {}
    for tid, (ckpt, last, errored) in ends.items():
        status = status_of(last, EPOCHS, errored)
        assert status == tid
        # the driver's callback passes the last reported epoch; the end-of-task collection does not
        runs[tid] = collect_trial(root, ckpt, status, epoch=None if errored else last["epoch"])
        assert runs[tid] == root / "sum" / tid
        summary = json.loads((runs[tid] / "summary.json").read_text())
        assert summary["status"] == json.loads((runs[tid] / PARAMS).read_text())["status"] == tid
        assert summary["epochs"] == last["epoch"] and (runs[tid] / "checkpoint.pt").is_file()
    assert {t for t, r in runs.items() if is_complete(r)} == {"ok", "stopped", "diverged"}
    done = finished_runs(root)  # what a restored trial reports instead of training again
    assert set(done) == {"ok", "stopped", "diverged"}
    assert [done[t]["epoch"] for t in ("ok", "stopped", "diverged")] == [3, 1, 2]
    assert done["diverged"]["status"] == "diverged" and done["diverged"]["valid/exact"] == 0.0
    assert status_of(done["stopped"], EPOCHS, False) == "stopped" and status_of(done["ok"], EPOCHS, False) == "ok"

    cfg = load_preset("smoke").override("where", name="syn", storage=str(tmp_path))
    all_runs = sorted(runs.values())
    assert record_runs(study, cfg, "sum", all_runs, with_errors=False) == 3  # an error waits: Tune may retry it
    assert record_runs(study, cfg, "sum", all_runs, with_errors=True) == 1
    assert record_runs(study, cfg, "sum", all_runs, with_errors=True) == 0  # each trial once
    trials = optuna.load_study(study_name="syn/sum", storage=f"sqlite:///{study / 'optuna.db'}").get_trials()
    got = {t.user_attrs["tune_trial_id"]: t for t in trials}
    S = optuna.trial.TrialState
    assert {k: t.state for k, t in got.items()} == {
        "ok": S.COMPLETE,
        "stopped": S.PRUNED,
        "diverged": S.PRUNED,
        "error": S.FAIL,
    }
    curve = [m["valid/exact"] for m in ok[2]["history"]]
    assert got["ok"].value == curve[-1] and got["ok"].intermediate_values == dict(enumerate(curve, 1))
    assert got["stopped"].value is None and got["stopped"].intermediate_values == {1: curve[0]}
    assert got["stopped"].user_attrs["last_value"] == curve[0]
    assert got["diverged"].user_attrs["status"] == "diverged" and got["diverged"].value is None
    assert list(got["diverged"].intermediate_values) == [1]  # the diverged epoch's NaN is not recorded
    assert math.isnan(div["history"][1]["valid/exact"])
    assert got["error"].params == SPACE_POINT and got["error"].user_attrs["status"] == "error"


def test_a_complete_run_folder_is_never_overwritten_and_an_errored_one_is(states, tmp_path):
    root = tmp_path / "trials"
    ok = states["ok"]
    done = collect_trial(root, _checkpoint(tmp_path, "t1", ok[2], "ok"), "ok")
    before = tree(done)
    # the same trial again (a restored experiment, the end-of-task collection): the folder stays as it is
    assert collect_trial(root, _checkpoint(tmp_path, "t1", ok[0]), "stopped") == done
    assert tree(done) == before
    # an errored trial's folder is not final: its retry's end replaces it
    failed = collect_trial(root, _checkpoint(tmp_path, "t2", ok[1]), "error")
    assert not is_complete(failed) and "t2" not in finished_runs(root)
    assert collect_trial(root, _checkpoint(tmp_path, "t2b", ok[2], "ok"), "ok") == root / "sum" / "t2b"
    retried = _checkpoint(tmp_path, "t2", ok[2], "ok")
    assert collect_trial(root, retried, "ok") == failed
    assert json.loads((failed / "summary.json").read_text())["status"] == "ok" and is_complete(failed)
    assert sorted(p.name for p in (root / "sum").iterdir()) == ["t1", "t2", "t2b"]  # no temporary left
