"""A full disk is one line, a non-zero exit, nothing earlier lost, and a rerun continues once space is freed.

Each test mounts a small tmpfs of its own (root only) as the run folder's, the report folder's or the study
storage's file system, fills it, and frees space by remounting it larger. No write is faked: the kernel
refuses it with ENOSPC, and torch.save, pandas and matplotlib meet it as they would on a real disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqsum.cli import main
from seqsum.files import DiskFull, append_line, free_bytes, write_json, write_with
from tests.report_fixtures import make_synthetic_study

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def resize(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def fill(where: Path, leave: int) -> Path:
    """A ballast file that leaves about `leave` bytes free on the file system of `where`."""
    ballast = where / "ballast"
    free = free_bytes(where)
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return ballast


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("seqsum: error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err and "RuntimeError" not in err, err
    return errors[0]


def test_atomic_writes_keep_the_old_file_and_say_what_and_where(tmp_path):
    with tmpfs(tmp_path / "fs", "256k") as fs:
        write_json(fs / "a.json", {"old": True})
        append_line(fs / "log.jsonl", '{"epoch": 1}')
        fill(fs, 4096)
        with pytest.raises(DiskFull) as e:
            write_with(fs / "a.json", lambda f: f.write(b"x" * 200_000))
        assert json.loads((fs / "a.json").read_text()) == {"old": True}
        assert repr(str(fs)) in str(e.value) and "a.json" in str(e.value) and "free there" in str(e.value)
        assert not [p for p in fs.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind
        with pytest.raises(DiskFull):
            append_line(fs / "log.jsonl", "x" * 200_000)
        assert (fs / "log.jsonl").read_text() == '{"epoch": 1}\n'  # cut back to its last whole line

        import torch

        with pytest.raises(DiskFull, match="big.pt"):  # torch.save wraps the ENOSPC in a RuntimeError
            write_with(fs / "big.pt", lambda f: torch.save(torch.zeros(100_000), f))


@pytest.mark.slow
def test_train_on_a_full_disk_stops_in_one_line_and_resumes(tmp_path, capsys):
    with tmpfs(tmp_path / "fs", "8m") as fs:
        run = fs / "run"
        assert main(["train", "--smoke", "--epochs", "1", "--out", str(run), "--set", "train.device=cpu"]) == 0
        capsys.readouterr()
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        ckpt = len(before["checkpoint.pt"])
        fill(fs, ckpt // 2)  # room for the logs, not for a second checkpoint beside the first
        assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert repr(str(run)) in line and "checkpoint.pt" in line and "free there" in line
        assert f"seqsum train --resume {run}" in line
        assert (run / "checkpoint.pt").read_bytes() == before["checkpoint.pt"]  # the last good checkpoint
        assert (run / ".seqsum-run").read_bytes() == before[".seqsum-run"]
        assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2  # the resumed run's budget
        assert (run / "metrics.jsonl").read_bytes().startswith(before["metrics.jsonl"])
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
        (fs / "ballast").unlink()  # space freed: the same command continues from the checkpoint
        assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "ok" and summary["epochs"] == 2


@pytest.mark.slow
def test_report_on_a_full_disk_stops_in_one_line_and_is_written_once_space_is_freed(tmp_path, capsys):
    d = make_synthetic_study(tmp_path, {("product", "log"): [0.2, 0.4, 0.3]})
    with tmpfs(tmp_path / "fs", "96k") as fs:
        out = fs / "report"
        assert main(["report", str(d), "--out", str(out), "--no-reference"]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert "no space left in" in line and str(out) in line and "free there" in line
        resize(fs, "64m")
        assert main(["report", str(d), "--out", str(out), "--no-reference"]) == 0
        assert (out / "index.html").is_file() and (out / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two smoke studies: the launch that stops, then its resume
def test_study_on_a_full_storage_stops_in_one_line_and_resumes(tmp_path):
    from tests.raytools import ray_env

    with tmpfs(tmp_path / "fs", "64m") as fs:
        cmd = [sys.executable, "-m", "seqsum.cli", "study"]
        env = ray_env()
        fill(fs, 6 * 2**20)  # room for the study folder and a few checkpoints, below the study's free-space floor
        p = subprocess.run([*cmd, "launch", "--preset", "smoke", "--storage", str(fs), "--name", "s", "--no-report"],
                           capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
        assert p.returncode == 1, p.stdout + p.stderr
        line = one_error_line(p.stderr)
        assert "no space left in" in line and str(fs) in line and f"seqsum study resume {fs / 's'}" in line, line
        (fs / "ballast").unlink()
        p = subprocess.run([*cmd, "resume", str(fs / "s"), "--no-report"], capture_output=True, text=True, env=env,
                           timeout=900)  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        assert (fs / "s" / "trials.csv").is_file()
