"""One contract, every storage backend: a study's files (study.storage: a local folder, and s3:// on the loopback
S3 server, tests/study/objectstore.py) and its Optuna record (study.optuna_bridge: optuna.db, an SQLite URL
elsewhere, a journal file). Each behaviour is written once and run against each backend, for real; what only
one backend does (the working copy's temporary files, a killed driver at a URI) is in test_object_store.py.

"Another machine" is a fresh working-copy cache ($SEQSUM_CACHE_DIR): for a folder it is the same folder."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from analysis.load import load_study
from seqsum.errors import StudyError
from study import storage
from study.config import load_preset
from study.optuna_bridge import check_storage, open_storage, record_runs
from tests.helpers import tree
from tests.report_fixtures import write_run
from tests.study.objectstore import BUCKET

BINARY = bytes(range(256)) * 4  # every byte value: nothing is decoded on the way


@dataclass(frozen=True)
class Backend:
    """Where studies live (`location`, as a user names it) and the store seen from outside seqsum."""

    name: str
    location: str
    put: Callable[[str, bytes], None]  # write a file at the store, relative to `location`
    stored: Callable[[], dict[str, bytes]]  # every file at the store under `location` with its bytes

    def machine(self, monkeypatch, cache: Path) -> None:
        """Work as another machine: a working-copy cache of its own."""
        monkeypatch.setenv(storage.CACHE_ENV, str(cache))


def _folder(tmp_path: Path) -> Backend:
    root = tmp_path / "studies"

    def put(rel: str, data: bytes) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    return Backend("folder", str(root), put, lambda: tree(root) if root.is_dir() else {})


def _s3(s3_env) -> Backend:
    prefix = f"contract-{uuid.uuid4().hex[:8]}"  # the server is shared by the package's tests

    def put(rel: str, data: bytes) -> None:
        with s3_env.fs.open_output_stream(f"{BUCKET}/{prefix}/{rel}") as f:
            f.write(data)

    return Backend(
        "s3", f"s3://{BUCKET}/{prefix}", put, lambda: {k: s3_env.read(f"{prefix}/{k}") for k in s3_env.files(prefix)}
    )


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path, monkeypatch) -> Backend:
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    if request.param == "folder":
        return _folder(tmp_path)
    return _s3(request.getfixturevalue("s3_env"))


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def test_a_new_place_is_empty_and_its_where_names_it_again(backend):
    p = storage.place(backend.location, "x")
    assert p.remote == (backend.name != "folder")
    assert p.where.rstrip("/").endswith("/x") and storage.place(p.where) == p
    assert p.tune_path("sum") == storage.join(p.where, "tune", "sum")
    assert storage.is_empty(p) and not storage.exists(p, "study.yaml")
    p.pull()  # nothing there yet: nothing comes, nothing fails
    assert storage.is_empty(p) and backend.stored() == {}


def test_pushed_files_reach_the_store_and_another_machine_byte_for_byte(backend, tmp_path, monkeypatch):
    a = storage.place(backend.location, "x")
    files = {"study.yaml": b"what: {}\n", "trials/sum/t1/checkpoint.pt": BINARY, "state.json": b'{"tasks": {}}'}
    _write(a.local, files)
    a.push()
    assert backend.stored() == {f"x/{k}": v for k, v in files.items()}
    assert not storage.is_empty(a) and storage.exists(a, "trials/sum/t1/checkpoint.pt")
    assert storage.read_text(a, "study.yaml") == "what: {}\n" and not storage.exists(a, "trials/sum/t2/checkpoint.pt")

    backend.machine(monkeypatch, tmp_path / "other")
    b = storage.place(a.where)
    b.pull()
    assert tree(b.local) == files
    assert storage.exists(b, "state.json") and storage.read_text(b, "state.json") == '{"tasks": {}}'


def test_changes_and_removals_go_both_ways(backend, tmp_path, monkeypatch):
    a = storage.place(backend.location, "x")
    _write(a.local, {"study.yaml": b"v1\n", "trials/sum/t1/summary.json": b"{}", "trials/sum/t2/summary.json": b"{}"})
    a.push()
    backend.machine(monkeypatch, tmp_path / "other")
    b = storage.place(a.where)
    b.pull()

    (b.local / "trials" / "sum" / "t1" / "summary.json").unlink()  # removed on one machine
    (b.local / "study.yaml").write_bytes(b"v2\n")  # changed there
    b.push()
    assert set(backend.stored()) == {"x/study.yaml", "x/trials/sum/t2/summary.json"}
    assert not storage.exists(b, "trials/sum/t1/summary.json")

    a.pull()  # the first machine sees both
    assert tree(a.local) == {"study.yaml": b"v2\n", "trials/sum/t2/summary.json": b"{}"}

    backend.put("x/trials/sum/t3/summary.json", b'{"status": "ok"}')  # written at the store by someone else
    a.pull()
    assert (a.local / "trials" / "sum" / "t3" / "summary.json").read_bytes() == b'{"status": "ok"}'


def test_a_skipped_part_stays_as_this_machine_has_it(backend, tmp_path, monkeypatch):
    a = storage.place(backend.location, "x")
    _write(a.local, {"study.yaml": b"s\n", "report/index.html": b"<html>"})
    a.push()
    backend.machine(monkeypatch, tmp_path / "other")
    b = storage.place(a.where)
    _write(b.local, {"report/draft.md": b"this machine's own"})  # the store lacks it
    mine = {k: v for k, v in tree(b.local).items() if k.startswith("report/")}
    b.pull(skip=("report",))
    got = tree(b.local)
    assert {k: v for k, v in got.items() if k.startswith("report/")} == mine  # as this machine had it
    assert {k: v for k, v in got.items() if not k.startswith("report/")} == {"study.yaml": b"s\n"}


def test_remove_tune_deletes_one_experiment_and_nothing_else(backend):
    p = storage.place(backend.location, "x")
    _write(p.local, {"study.yaml": b"s\n"})
    p.push()
    backend.put("x/tune/rerun/experiment_state-1.json", b"{}")  # Tune writes its experiments itself
    backend.put("x/tune/rerun/trial_1/result.json", b"{}")
    backend.put("x/tune/sum/experiment_state-1.json", b"{}")
    assert storage.exists(p, "tune/rerun/trial_1/result.json")
    p.remove_tune("rerun")
    assert set(backend.stored()) == {"x/study.yaml", "x/tune/sum/experiment_state-1.json"}
    p.remove_tune("rerun")  # already gone: nothing to do


# --- Optuna's record of a study, on each storage it can live in --------------------------------------------
OPTUNA = ["optuna.db", "sqlite-elsewhere", "journal"]


def _optuna_url(kind: str, tmp_path: Path) -> str | None:
    """where.optuna_storage for `kind` (None: optuna.db in the study folder); its folder exists."""
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    return {
        "optuna.db": None,
        "sqlite-elsewhere": f"sqlite:///{tmp_path / 'elsewhere' / 'record.db'}",
        "journal": str(tmp_path / "elsewhere" / "optuna.log"),
    }[kind]


def _runs(d: Path) -> list[Path]:
    """trials/sum/: one run that ended each way (identity in params.json, as a study collects it)."""
    out = []
    for i, (status, exact) in enumerate((("ok", 0.5), ("stopped", 0.25), ("diverged", 0.0), ("error", 0.0))):
        tid = f"t{i}-{status}"
        info = {"trial_id": tid, "kind": "search", "number": i}
        out.append(write_run(d / "trials" / "sum" / tid, "sum", "mse", i, exact, info=info, status=status))
    return out


@pytest.mark.parametrize("kind", OPTUNA)
def test_record_runs_writes_each_trial_once_and_the_reader_loads_it(kind, tmp_path):
    url = _optuna_url(kind, tmp_path)
    d = tmp_path / "syn"
    runs = _runs(d)
    cfg = load_preset("smoke").override("where", name="syn", optuna_storage=url)
    (d / "study.yaml").write_text(cfg.to_yaml())
    if url is not None:
        check_storage(url)  # a new storage is accepted, and checking it creates no study
        assert open_storage(url).get_all_studies() == []

    assert record_runs(d, cfg, "sum", runs, with_errors=False) == 3  # an error waits: Tune may retry it
    assert record_runs(d, cfg, "sum", runs, with_errors=True) == 1
    assert record_runs(d, cfg, "sum", runs, with_errors=True) == 0  # each trial once
    record = d / "optuna.db" if url is None else Path(url.removeprefix("sqlite:///"))
    assert record.is_file() and (d / "optuna.db").exists() == (url is None)  # where where.optuna_storage says

    trials = optuna.load_study(study_name="syn/sum", storage=open_storage(url or f"sqlite:///{d / 'optuna.db'}"))
    got = {t.user_attrs["tune_trial_id"]: t for t in trials.get_trials()}
    S = optuna.trial.TrialState
    assert {k: t.state for k, t in got.items()} == {
        "t0-ok": S.COMPLETE,
        "t1-stopped": S.PRUNED,
        "t2-diverged": S.PRUNED,
        "t3-error": S.FAIL,
    }
    assert got["t0-ok"].value == 0.5 and got["t0-ok"].intermediate_values == {1: 0.5}
    assert got["t1-stopped"].value is None and got["t1-stopped"].user_attrs["last_value"] == 0.25
    assert got["t2-diverged"].user_attrs["status"] == "diverged" and got["t0-ok"].params == {"loss": "mse"}

    study = load_study(d)  # the report's reader, from study.yaml alone
    assert set(study.optuna) == {"sum"} and len(study.optuna["sum"].trials) == 4
    assert study.trials[study.trials.task == "sum"].number.notna().all()


@pytest.mark.parametrize("kind", [k for k in OPTUNA if k != "optuna.db"])
def test_a_file_that_is_no_optuna_storage_is_refused_in_one_line_and_left_alone(kind, tmp_path):
    url = _optuna_url(kind, tmp_path)
    path = Path(url.removeprefix("sqlite:///"))  # an existing file of someone else's
    path.write_text("somebody else's notes\n")
    with pytest.raises(StudyError) as e:
        check_storage(url)
    assert url in str(e.value) and len(str(e.value).splitlines()) == 1
    assert path.read_text() == "somebody else's notes\n"
