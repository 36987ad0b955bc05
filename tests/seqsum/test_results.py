"""seqsum.results: the one writer and reader of a run folder; recognising and clearing one; damaged
files (truncated config.json, summary.json, metrics.jsonl, checkpoint.pt) give one line or are rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqsum.checkpoint import load_checkpoint
from seqsum.errors import ConfigError, CorruptFile
from seqsum.results import (
    FILES,
    MARKER,
    check_clearable,
    clear_run_folder,
    is_run_folder,
    read_metrics,
    read_run,
    write_run,
)
from tests.helpers import run_cli, tiny_config, tree

HISTORY = [
    {"epoch": 1, "train/loss": 2.0, "valid/exact": 0.1, "status": "ok"},
    {"epoch": 2, "train/loss": float("nan"), "valid/exact": 0.2, "status": "ok"},
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "run"
    rc, _, stderr = run_cli("train", "--smoke", "--epochs", "1", "--out", out)
    assert rc == 0, stderr
    return out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_write_run_then_read_run(tmp_path):
    cfg = tiny_config()
    s = write_run(tmp_path / "r", cfg, HISTORY, "stopped", 12.5, params={"trial_id": "t1"}, extra={"params": 7})
    assert s == {
        "status": "stopped",
        "epochs": 2,
        "train_seconds": 12.5,
        "train/loss": None,
        "valid/exact": 0.2,
        "params": 7,
    }
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        [MARKER, "config.json", "metrics.jsonl", "params.json", "summary.json"]
    )
    config, summary = read_run(tmp_path / "r")
    assert config == cfg.to_dict() and summary == s
    assert read_metrics(tmp_path / "r") == [{**HISTORY[0]}, {**HISTORY[1], "train/loss": None}]
    # completing it again rebuilds metrics.jsonl (no duplicated lines)
    write_run(tmp_path / "r", cfg.to_dict(), HISTORY, "ok", 13.0)
    assert len(read_metrics(tmp_path / "r")) == 2 and read_run(tmp_path / "r")[1]["status"] == "ok"


def test_an_unfinished_run_reads_an_empty_summary(tmp_path):
    write_run(tmp_path, tiny_config(), HISTORY, "ok", 1.0)
    (tmp_path / "summary.json").unlink()
    assert read_run(tmp_path)[1] == {}


@pytest.mark.parametrize(
    "name, damage, words",
    [
        ("config.json", lambda b: b[: len(b) // 2], ["config.json", "is corrupt", "checkpoint.pt"]),
        ("config.json", lambda b: b'{"data": {"max_len": -1}}', ["config.json", "not a valid run config"]),
        ("summary.json", lambda b: b[: len(b) // 2], ["summary.json", "is corrupt", "--resume"]),
        ("summary.json", lambda b: b"[1, 2]", ["summary.json", "not a run summary", "--resume"]),
    ],
)
def test_read_run_names_a_damaged_file_in_one_line(tmp_path, name, damage, words):
    write_run(tmp_path, tiny_config(), HISTORY, "ok", 1.0)
    (tmp_path / name).write_bytes(damage((tmp_path / name).read_bytes()))
    with pytest.raises(CorruptFile) as e:
        read_run(tmp_path)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and all(w in msg for w in words), msg


def test_read_run_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(CorruptFile, match="not a seqsum run folder"):
        read_run(tmp_path)


def test_metrics_jsonl_torn_last_line_is_dropped_and_a_bad_middle_line_named(tmp_path):
    write_run(tmp_path, tiny_config(), HISTORY, "ok", 1.0)
    text = (tmp_path / "metrics.jsonl").read_text()
    (tmp_path / "metrics.jsonl").write_text(text[: len(text) - 10])  # a crash mid-append
    assert [m["epoch"] for m in read_metrics(tmp_path)] == [1]
    (tmp_path / "metrics.jsonl").write_text("{oops\n" + text)
    with pytest.raises(CorruptFile, match="metrics.jsonl' line 1 is not JSON"):
        read_metrics(tmp_path)


# --- recognising and clearing ----------------------------------------------------------------------------
def test_is_run_folder(tmp_path, smoke_run):
    assert is_run_folder(smoke_run)
    assert not is_run_folder(tmp_path) and not is_run_folder(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"not": "a run config"}')
    assert not is_run_folder(tmp_path)
    (tmp_path / "config.json").write_text('{"train": {"task": "product", "epochs": 1}}')  # a partial RunConfig
    assert not is_run_folder(tmp_path)
    unmarked = copy_run(smoke_run, tmp_path / "unmarked")  # every file of a run but the marker: not provably ours
    (unmarked / MARKER).unlink()
    assert not is_run_folder(unmarked)


def test_clear_run_folder_removes_only_seqsums_files(tmp_path, smoke_run):
    run = copy_run(smoke_run, tmp_path / "run")
    (run / "params.json").write_text("{}")
    (run / ".summary.json.x1y2.tmp").write_text("{")  # an interrupted atomic write
    clear_run_folder(run)
    assert list(run.iterdir()) == []
    clear_run_folder(tmp_path / "absent")  # nothing to do


@pytest.mark.parametrize("planted", ["a file", "a folder", "a folder under seqsum's name"])
def test_clear_run_folder_refuses_anything_else_and_deletes_nothing(tmp_path, smoke_run, planted):
    run = copy_run(smoke_run, tmp_path / "run")
    if planted == "a file":
        (run / "notes.txt").write_text("mine")
    elif planted == "a folder":
        (run / "sub").mkdir()
    else:
        (run / "summary.json").unlink()
        (run / "summary.json").mkdir()
    before = tree(run), sorted(p.name for p in run.iterdir())
    with pytest.raises(ConfigError) as e:
        clear_run_folder(run)
    assert len(str(e.value).splitlines()) == 1 and "did not write" in str(e.value)
    assert (tree(run), sorted(p.name for p in run.iterdir())) == before


def test_a_folder_without_the_marker_or_a_run_config_is_never_cleared(tmp_path):
    (tmp_path / "summary.json").write_text("{}")  # only seqsum-like names, but no run config
    with pytest.raises(ConfigError, match="not a seqsum run folder"):
        check_clearable(tmp_path)
    assert (tmp_path / "summary.json").exists()


def test_files_lists_every_file_write_run_and_train_write(smoke_run):
    assert {p.name for p in smoke_run.iterdir()} <= set(FILES)


# --- damaged files found by `seqsum train --resume` -----------------------------------------------------
@pytest.mark.parametrize("name", ["config.json", "summary.json", "metrics.jsonl"])
def test_resume_rebuilds_a_truncated_config_summary_or_metrics(tmp_path, smoke_run, name):
    run = copy_run(smoke_run, tmp_path / "run")
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[: len(data) // 2])
    rc, _, stderr = run_cli("train", "--resume", run, "--epochs", "2")
    assert rc == 0, stderr
    config, summary = read_run(run)
    assert config["train"]["epochs"] == 2 and summary["epochs"] == 2 and summary["status"] == "ok"
    assert [m["epoch"] for m in read_metrics(run)] == [1, 2]


@pytest.mark.parametrize("cut", [0, 100, 0.5, -10])
def test_resume_from_a_truncated_checkpoint_is_one_line(tmp_path, smoke_run, cut):
    run = copy_run(smoke_run, tmp_path / "run")
    data = (run / "checkpoint.pt").read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    (run / "checkpoint.pt").write_bytes(data[:n])
    before = tree(run)
    rc, stdout, stderr = run_cli("train", "--resume", run, "--epochs", "2")
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, stderr
    assert str(run / "checkpoint.pt") in stderr and "train the run again" in stderr
    assert tree(run) == before
    with pytest.raises(CorruptFile):
        load_checkpoint(run / "checkpoint.pt")


def test_a_checkpoint_missing_keys_is_not_a_seqsum_checkpoint(tmp_path, smoke_run):
    import torch

    state = load_checkpoint(smoke_run / "checkpoint.pt")
    del state["generator"]
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CorruptFile, match="missing generator"):
        load_checkpoint(tmp_path / "c.pt")


def test_config_json_is_written_atomically(tmp_path):
    cfg = tiny_config()
    cfg.save(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
