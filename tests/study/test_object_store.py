"""Studies on an object store, for real: a local S3-compatible server (moto's server mode, on loopback),
the endpoint through AWS_ENDPOINT_URL. A smoke study to s3://, its driver killed, resumed and reported
from the URI alone on machines that never saw it (fresh working-copy caches); the storage module's
pull/push against the same server; bad URIs (one line, exit 2, within seconds, nothing written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from seqsum.cli import main
from seqsum.errors import StudyError
from study import storage
from tests.raytools import (
    SEQSUM,
    descendants,
    fault_env,
    kill_pids,
    ray_env,
    session_pids,
    wait_for,
    wait_paused,
    wait_saved,
    write_study,
)
from tests.study.objectstore import BUCKET, S3, free_port


def test_place_maps_folders_and_uris(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    p = storage.place(tmp_path / "st", "x")
    assert (p.where, p.local, p.remote) == (str(tmp_path / "st" / "x"), tmp_path / "st" / "x", False)
    assert p.tune_path("sum") == str(tmp_path / "st" / "x" / "tune" / "sum")
    u = storage.place("s3://bkt/studies/", "x")
    assert (u.where, u.remote) == ("s3://bkt/studies/x", True)
    assert u.local == tmp_path / "cache" / "studies" / "s3" / "bkt" / "studies" / "x"
    assert u.tune_path() == "s3://bkt/studies/x/tune" and u.tune_path("sum") == "s3://bkt/studies/x/tune/sum"
    assert storage.place("s3://bkt/studies/x") == u  # a study's URI names the same place
    assert storage.join("s3://b/p?endpoint_override=h", "x", "y") == "s3://b/p/x/y?endpoint_override=h"
    for bad in ("s3://bkt/../../home", "s3://bkt/./x", "s3://../x"):  # never a working copy outside the cache
        with pytest.raises(StudyError, match="'..' segments"):
            storage.place(bad)


def test_push_uploads_changes_and_pull_mirrors_the_uri(s3_env, tmp_path, monkeypatch):
    a = storage.place(f"s3://{BUCKET}/sync", "a")
    (a.local / "trials" / "sum" / "t1").mkdir(parents=True)
    (a.local / "study.yaml").write_text("what: {}\n")
    (a.local / "trials" / "sum" / "t1" / "summary.json").write_text("{}")
    (a.local / "trials" / "sum" / ".summary.json.abc.tmp").write_text("half")  # an atomic write under way
    (a.local / "tune").mkdir()
    (a.local / "tune" / "local.json").write_text("{}")  # Tune's own: never part of the working copy
    a.push()
    assert s3_env.files("sync/a") == {"study.yaml": 9, "trials/sum/t1/summary.json": 2}
    (a.local / "trials" / "sum" / "t1" / "summary.json").unlink()
    (a.local / "state.json").write_text('{"tasks": {}}')
    a.push()
    assert s3_env.files("sync/a") == {"study.yaml": 9, "state.json": 13}

    # another machine: an empty cache; pull mirrors the URI, tune/ excluded
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "other"))
    s3_env.fs.open_output_stream(f"{BUCKET}/sync/a/tune/sum/x.json").close()
    b = storage.place(f"s3://{BUCKET}/sync/a")
    b.pull()
    got = sorted(p.relative_to(b.local).as_posix() for p in b.local.rglob("*") if p.is_file())
    assert got == ["state.json", "study.yaml"] and b.local != a.local
    (b.local / "stale.txt").write_text("not at the URI")
    (b.local / "study.yaml").write_text("what: {changed: 1}\n")
    b.push()
    a.pull()  # the first machine sees the change
    assert (a.local / "study.yaml").read_text() == "what: {changed: 1}\n"
    s3_env.fs.delete_file(f"{BUCKET}/sync/a/stale.txt")
    b.pull()  # deleted at the URI: deleted in the working copy
    assert not (b.local / "stale.txt").exists()


@pytest.mark.parametrize(
    "storage_uri, expected",
    [
        ("foo://bkt/studies", "Unrecognized filesystem type"),
        (f"s3://no-such-{BUCKET}/studies", "bucket 'no-such-seqsum-test' does not exist"),
        ("s3:///studies", "Missing bucket name"),
        ("UNREACHABLE", "is unreachable"),
    ],
)
def test_bad_storage_uris_fail_fast_and_write_nothing(s3_env, tmp_path, monkeypatch, capsys, storage_uri, expected):
    if storage_uri == "UNREACHABLE":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        storage_uri = f"s3://{BUCKET}/studies"
    before = s3_env.files("")
    for argv in (
        ["study", "launch", "--preset", "smoke", "--storage", storage_uri],
        ["study", "resume", f"{storage_uri}/smoke"],
        ["study", "rerun", f"{storage_uri}/smoke"],
        ["report", f"{storage_uri}/smoke", "--out", str(tmp_path / "report")],
    ):
        t0 = time.time()
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and expected in err and len(err.splitlines()) == 1, (argv, err)
        assert time.time() - t0 < 20
    assert not (tmp_path / "cache").exists() and not (tmp_path / "report").exists()
    assert s3_env.files("") == before
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_uri_without_a_study_is_refused(s3_env, tmp_path, capsys):
    for argv in (
        ["study", "resume", f"s3://{BUCKET}/studies/none"],
        ["report", f"s3://{BUCKET}/studies/none", "--out", str(tmp_path / "r")],
    ):
        assert main(argv) == 2
        assert "is not a study URI (no study.yaml)" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()


def _finished(s3: S3, prefix: str) -> list[str]:
    return [k for k in s3.files(prefix) if k.startswith("trials/sum/") and k.endswith("/summary.json")]


def _state_at(s3: S3, prefix: str):
    """A reader of the newest experiment state Tune saved at the URI (for raytools.tune_snapshot)."""

    def read() -> str | None:
        names = sorted(k for k in s3.files(prefix) if k.startswith("experiment_state-") and k.endswith(".json"))
        return s3.read(f"{prefix}/{names[-1]}").decode() if names else None

    return read


@pytest.mark.slow
def test_study_on_s3_survives_a_killed_driver_and_reports_from_the_uri(s3, tmp_path):
    uri, name = f"s3://{BUCKET}/studies", "obj"
    prefix = f"studies/{name}"
    cfg = write_study(tmp_path / "s.yaml", uri, name, num_samples=2, epochs=2)  # type: ignore[arg-type]
    cfg.write_text(cfg.read_text().replace("scheduler: asha", "scheduler: fifo"))  # every trial runs to its end

    def env(machine: str) -> dict[str, str]:  # each "machine" has its own, empty working-copy cache
        return ray_env(**s3.env, **{storage.CACHE_ENV: str(tmp_path / machine)})

    launch = SEQSUM + ["study", "launch", "--config", str(cfg), "--no-report", "--max-concurrent", "1"]
    log = tmp_path / "driver.log"
    faults = tmp_path / "faults"  # the second trial pauses after epoch 1: work is left when the driver dies
    with open(log, "w") as f:
        proc = subprocess.Popen(
            launch,
            env=fault_env(faults, env("launcher"), pause={"epoch": 1, "nth": 2}),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = set()
    try:
        # kill once the first trial's run folder reached the URI (pushed by the driver) and Tune's experiment
        # state at the URI holds the paused one with its epoch-1 checkpoint
        tid = wait_paused(faults, proc, 300)["trial_id"]
        wait_for(lambda: _finished(s3, prefix), 120, "a finished trial at the URI")
        wait_saved(None, proc, tid, 1, 180, finished=1, read=_state_at(s3, f"{prefix}/tune/sum"))
        seen = session_pids(proc.pid) | descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_pids((seen | session_pids(proc.pid) | descendants(proc.pid)) - {os.getpid(), proc.pid})
    assert json.loads(s3.read(f"{prefix}/state.json"))["tasks"] == {}  # killed mid-study
    assert len(_finished(s3, prefix)) == 1
    first = f"{prefix}/{_finished(s3, prefix)[0].rsplit('/', 1)[0]}"  # the finished trial's run folder
    before = {k: s3.read(f"{first}/{k}") for k in s3.files(first)}

    # resume from the URI alone, on a machine that did not launch the study
    r = subprocess.run(
        SEQSUM + ["study", "resume", f"{uri}/{name}", "--no-report"],
        env=env("resumer"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = s3.files(prefix)
    for f in ("study.yaml", "state.json", "optuna.db", "trials.csv"):
        assert f in files, sorted(files)
    assert len(_finished(s3, prefix)) == 2 and any(k.startswith("tune/sum/") for k in files)
    assert {k: s3.read(f"{first}/{k}") for k in s3.files(first)} == before  # not run or written again
    assert json.loads(s3.read(f"{prefix}/state.json"))["tasks"]["sum"]["status"] == "done"
    # the paused trial went on from its epoch-1 checkpoint on the object store
    resumed = json.loads(s3.read(f"{prefix}/trials/sum/{tid}/params.json"))
    assert resumed["status"] == "ok" and resumed.get("resumed_from_epoch") == 1, resumed
    db = tmp_path / "optuna.db"
    db.write_bytes(s3.read(f"{prefix}/optuna.db"))
    trials = optuna.load_study(study_name=f"{name}/sum", storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    assert len(trials) == 2 and {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.user_attrs["tune_trial_id"] for t in trials}) == 2

    # replicates from the URI, on a third machine: run folders, plan and summary reach the URI
    r = subprocess.run(
        SEQSUM + ["study", "rerun", f"{uri}/{name}", "--top", "1", "--seeds", "1", "--epochs", "1"],
        env=env("rerunner"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = s3.files(prefix)
    assert {"rerun/plan.json", "rerun/state.json", "rerun/summary.csv"} <= set(files), sorted(files)
    assert len([k for k in files if k.startswith("rerun/sum/") and k.endswith("/summary.json")]) == 1
    assert any(k.startswith("tune/rerun/") for k in files)

    # the report from the URI into a fresh local folder, on a fourth machine; nothing uploaded with --out
    out = tmp_path / "report"
    report = SEQSUM + ["report", f"{uri}/{name}", "--no-reference"]
    r = subprocess.run(report + ["--out", str(out)], env=env("reader"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (out / "index.html").is_file() and (out / "tables").is_dir()
    assert "Compared (sum): the replicates" in (out / "report.md").read_text()  # rerun/ came from the URI
    assert not any(k.startswith("report/") for k in s3.files(prefix))
    # without --out the report goes to URI/report
    r = subprocess.run(report, env=env("reader"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {"report/index.html", "report/report.md"} <= set(s3.files(prefix))

    # the same study cannot be launched over itself (checked at the URI, before Ray starts)
    r = subprocess.run(launch, env=env("launcher"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"seqsum study resume {uri}/{name}" in r.stderr


def test_bad_optuna_storage_fails_before_ray_and_writes_nothing(tmp_path, capsys):
    for url in ("nosuch://host/db", str(tmp_path / "missing-dir" / "optuna.log")):
        argv = ["study", "launch", "--preset", "smoke", "--storage", str(tmp_path / "st"), "--optuna-storage", url]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "--optuna-storage" in err and url in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "st").exists() and not (tmp_path / "missing-dir").exists()


def test_storage_folder_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for st, expected in ((f, "is a file"), (f / "below", "is a file"), (tmp_path, None)):
        if expected is None:
            (tmp_path / "smoke").write_text("a file where the study folder goes")
            expected = "exists and is not a folder"
        assert main(["study", "launch", "--preset", "smoke", "--storage", str(st)]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "smoke"] and f.read_text() == "x"
