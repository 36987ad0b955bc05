"""`seqsum train`: the run folder it writes, progress lines, --overwrite, --resume, divergence, bad
inputs (exit 2, one line, nothing written), --help, and one real run of the console script."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from seqsum.checkpoint import load_checkpoint
from seqsum.config import PRESETS, RunConfig
from seqsum.files import read_jsonl
from seqsum.results import FILES, MARKER, is_run_folder
from tests.helpers import history_without_times, run_cli, tree

METRIC_KEYS = {
    "epoch",
    "train/loss",
    "valid/exact",
    "valid/mae",
    "valid/mse",
    "valid/rel_err",
    "time/epoch_s",
    "precision",
    "status",
}
SMOKE = RunConfig.from_dict(PRESETS["smoke"])
# params.json is a study trial's identity; confusion.csv comes with model.bottleneck digits only
TRAIN_FILES = sorted(set(FILES) - {"params.json", "confusion.csv"})


def strict_json(text: str):
    def no_nan(name):
        raise AssertionError(f"{name} in strict JSON")

    return json.loads(text, parse_constant=no_nan)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    rc, stdout, stderr = run_cli("train", "--smoke", "--out", out)
    assert rc == 0, stderr
    return out, stdout, stderr


# --- the run folder ------------------------------------------------------------------------------------
def test_smoke_run_writes_every_file_of_the_run_folder(smoke_run):
    out, _, _ = smoke_run
    assert sorted(p.name for p in out.iterdir()) == TRAIN_FILES
    assert set(FILES) == {
        MARKER,
        "params.json",
        "config.json",
        "metrics.jsonl",
        "predictions.parquet",
        "per_target.csv",
        "pairs.csv",
        "confusion.csv",
        "checkpoint.pt",
        "summary.json",
    }


def test_config_json(smoke_run):
    out, _, _ = smoke_run
    d = strict_json((out / "config.json").read_text())
    assert set(d) == {"data", "model", "train"}
    assert RunConfig.from_dict(d) == SMOKE


def test_metrics_jsonl(smoke_run):
    out, _, _ = smoke_run
    lines = [strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    for m in lines:
        assert set(m) == METRIC_KEYS and m["status"] == "ok" and m["train/loss"] > 0


def test_predictions_parquet(smoke_run):
    out, _, _ = smoke_run
    p = pd.read_parquet(out / "predictions.parquet")
    assert list(p.columns) == ["length", "digits", "target", "prediction", "rounded", "error", "abs_error", "correct"]
    assert len(p) == SMOKE.data.test_size
    assert all(len(d) == n and sum(d) == t for d, n, t in zip(p.digits, p.length, p.target))
    assert set(p.length) == {1, 2, 3, 4}


def test_per_target_and_pairs_csv(smoke_run):
    out, _, _ = smoke_run
    t = pd.read_csv(out / "per_target.csv")
    assert list(t.columns) == ["target", "n", "exact", "mae", "rmse", "rel_err", "mean_prediction"]
    assert t.n.sum() == SMOKE.data.test_size and t.target.between(0, 36).all()
    g = pd.read_csv(out / "pairs.csv")
    assert list(g.columns) == ["a", "b", "n", "target", "exact", "ci_low", "ci_high", "mae", "mean_prediction"]
    assert SMOKE.data.pairs_per_cell == 200 and RunConfig().data.pairs_per_cell == 200  # every preset
    assert len(g) == 100 and (g.n == 200).all() and (g.target == g.a + g.b).all()
    assert ((g.ci_low <= g.exact) & (g.exact <= g.ci_high) & (g.ci_low >= 0) & (g.ci_high <= 1)).all()


def test_checkpoint_pt(smoke_run):
    out, _, _ = smoke_run
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 2 and RunConfig.from_dict(state["config"]) == SMOKE
    assert len(state["history"]) == 2
    assert {"optimizer", "generator", "torch_rng"} <= set(state)


def test_summary_json(smoke_run):
    out, _, _ = smoke_run
    s = strict_json((out / "summary.json").read_text())
    assert s["status"] == "ok" and s["epochs"] == 2 and s["train_seconds"] > 0 and s["params"] > 0
    for key in (
        "train/loss",
        "valid/exact",
        "test/exact",
        "test/mae",
        "test/mse",
        "test/rel_err",
        "test/len=1/exact",
        "test/len=4/mae",
        "pairs/exact",
        "pairs/9x9/exact",
    ):
        assert key in s, key
    p = pd.read_parquet(out / "predictions.parquet")
    assert s["test/exact"] == pytest.approx(p.correct.mean())
    last = read_jsonl(out / "metrics.jsonl")[-1]
    assert s["valid/mse"] == last["valid/mse"]


def test_progress_lines(smoke_run):
    _, stdout, stderr = smoke_run
    lines = stdout.splitlines()
    assert lines[0].startswith("seqsum train: sum/mse") and "mnist5k" in lines[0]
    assert lines[1].startswith("epoch 1/2") and "valid/exact" in lines[1]
    assert lines[2].startswith("epoch 2/2")
    assert lines[-1].startswith("done: test exact")
    assert stderr == ""


# --- refusing and replacing a non-empty folder ------------------------------------------------------------
def test_refuses_a_non_empty_out_and_leaves_it_untouched(smoke_run):
    out, _, _ = smoke_run
    before = tree(out)
    rc, stdout, stderr = run_cli("train", "--smoke", "--task", "product", "--out", out)
    assert rc == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and str(out) in stderr and "--overwrite" in stderr
    assert tree(out) == before


def test_overwrite_replaces_a_run_folder(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", out)[0] == 0
    (out / ".config.json.abc123.tmp").write_text("{")  # left by a crash mid-write: seqsum's own
    rc, _, stderr = run_cli("train", "--smoke", "--task", "product", "--epochs", "1", "--out", out, "--overwrite")
    assert rc == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == TRAIN_FILES
    assert RunConfig.load(out / "config.json").train.task == "product"


def _plant(folder: Path) -> dict[str, bytes]:
    """A user's files in `folder`; returns what must survive."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my thesis")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "x.csv").write_text("1,2\n")
    return {k: v for k, v in tree(folder).items() if k in ("notes.txt", "data/x.csv")}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_of_other_files_is_refused_and_survives(tmp_path, overwrite):
    out = tmp_path / "home"
    _plant(out)
    before = tree(out)
    rc, stdout, stderr = run_cli("train", "--smoke", "--epochs", "1", "--out", out, *overwrite)
    assert rc == 2 and stdout == "" and len(stderr.splitlines()) == 1 and str(out) in stderr
    assert tree(out) == before
    assert not is_run_folder(out)


USER_CONTENT = {
    "config.json": '{"train": {"task": "product", "epochs": 1}}',  # parses as a (partial) RunConfig
    "metrics.jsonl": '{"epoch": 1, "train/loss": 0.5}\n',
    "summary.json": '{"status": "ok"}',
}


@pytest.mark.parametrize("name", sorted(set(FILES) - {MARKER}))
def test_a_users_folder_holding_a_file_with_one_of_seqsums_names_survives_overwrite(tmp_path, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text(USER_CONTENT.get(name, "my own file"))
    before = tree(out)
    rc, stdout, stderr = run_cli("train", "--smoke", "--epochs", "1", "--out", out, "--overwrite")
    assert rc == 2 and stdout == "" and len(stderr.splitlines()) == 1 and "not a seqsum run folder" in stderr
    assert tree(out) == before


def test_a_run_folder_holding_a_users_file_is_refused_and_survives(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", out)[0] == 0
    _plant(out)
    before = tree(out)
    rc, _, stderr = run_cli("train", "--smoke", "--epochs", "1", "--out", out, "--overwrite")
    assert rc == 2 and len(stderr.splitlines()) == 1 and "notes.txt" in stderr and "did not write" in stderr
    assert tree(out) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_resume_into_a_folder_of_other_files_is_refused(tmp_path, overwrite):
    run, other = tmp_path / "run", tmp_path / "other"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", run)[0] == 0
    _plant(other)
    before, run_before = tree(other), tree(run)
    rc, _, stderr = run_cli("train", "--resume", run, "--epochs", "2", "--out", other, *overwrite)
    assert rc == 2 and len(stderr.splitlines()) == 1 and str(other) in stderr
    assert tree(other) == before and tree(run) == run_before


def test_resume_in_place_keeps_a_users_file(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", run)[0] == 0
    kept = _plant(run)
    assert run_cli("train", "--resume", run, "--epochs", "2")[0] == 0
    assert {k: v for k, v in tree(run).items() if k in kept} == kept
    assert strict_json((run / "summary.json").read_text())["epochs"] == 2


def test_an_empty_existing_out_is_fine(tmp_path):
    (tmp_path / "run").mkdir()
    rc, _, stderr = run_cli("train", "--smoke", "--epochs", "1", "--out", tmp_path / "run")
    assert rc == 0, stderr


# --- resume -------------------------------------------------------------------------------------------
def test_resume_continues_to_the_same_result(smoke_run, tmp_path):
    whole, _, _ = smoke_run
    part = tmp_path / "part"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", part)[0] == 0
    assert strict_json((part / "summary.json").read_text())["epochs"] == 1
    rc, stdout, stderr = run_cli("train", "--resume", part, "--epochs", "2")
    assert rc == 0, stderr
    second = strict_json((part / "summary.json").read_text())
    epoch_times = [m["time/epoch_s"] for m in read_jsonl(part / "metrics.jsonl")]
    assert second["train_seconds"] >= sum(epoch_times)  # both segments, not only the resumed one
    assert "epoch 2/2" in stdout and "epoch 1/2" not in stdout  # only the missing epoch ran
    assert history_without_times(read_jsonl(part / "metrics.jsonl")) == history_without_times(
        read_jsonl(whole / "metrics.jsonl")
    )
    a, b = (strict_json((d / "summary.json").read_text()) for d in (whole, part))
    assert {k: v for k, v in a.items() if k != "train_seconds"} == {k: v for k, v in b.items() if k != "train_seconds"}
    assert pd.read_parquet(part / "predictions.parquet").equals(pd.read_parquet(whole / "predictions.parquet"))
    assert RunConfig.load(part / "config.json").train.epochs == 2


def test_resume_into_another_folder_keeps_the_original(smoke_run, tmp_path):
    whole, _, _ = smoke_run
    part, cont = tmp_path / "part", tmp_path / "cont"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", part)[0] == 0
    before = tree(part)
    rc, _, stderr = run_cli(
        "train", "--resume", part / "checkpoint.pt", "--epochs", "2", "--device", "cpu", "--out", cont
    )
    assert rc == 0, stderr
    assert RunConfig.load(cont / "config.json").train.device == "cpu"
    assert tree(part) == before
    assert sorted(p.name for p in cont.iterdir()) == TRAIN_FILES
    assert history_without_times(read_jsonl(cont / "metrics.jsonl")) == history_without_times(
        read_jsonl(whole / "metrics.jsonl")
    )


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--smoke", "--epochs", "1", "--out", run)[0] == 0
    with open(run / "metrics.jsonl", "a") as f:  # a crash between the metrics line and the checkpoint
        f.write(json.dumps({"epoch": 2, "status": "ok"}) + "\n")
    assert run_cli("train", "--resume", run, "--epochs", "2")[0] == 0
    assert [m["epoch"] for m in read_jsonl(run / "metrics.jsonl")] == [1, 2]


# --- divergence ---------------------------------------------------------------------------------------
def test_divergence_exits_non_zero_with_a_message_and_the_metrics(tmp_path):
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli("train", "--smoke", "--lr", "1e20", "--activation", "relu", "--out", out)
    assert rc == 1
    assert "diverged" in stderr and str(out / "metrics.jsonl") in stderr and len(stderr.splitlines()) == 1
    assert "DIVERGED" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MARKER, "config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"]
    )
    (m,) = [strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert m["status"] == "diverged" and m["train/loss"] is None  # NaN -> null: strict JSON
    s = strict_json((out / "summary.json").read_text())
    assert s["status"] == "diverged" and s["epochs"] == 1 and "test/exact" not in s


# --- bad inputs ------------------------------------------------------------------------------------------
BAD = [
    (["--task", "divide"], ["'divide'", "sum, product"]),
    (["--loss", "hinge"], ["'hinge'", "mse, log, classify"]),
    (["--preset", "huge"], ["'huge'", "seed, smoke"]),
    (["--max-len", "0"], ["max_len", "got 0", ">= 1"]),
    (["--max-len", "x"], ["--max-len", "'x'", "int"]),
    (["--gru-hidden", "0"], ["gru hidden", "got 0", "positive integers"]),
    (["--gru-hidden", "64,-3"], ["gru hidden", "got -3", "positive integers"]),
    (["--gru-hidden", ""], ["gru hidden", "non-empty"]),
    (["--conv-channels", "0"], ["conv channels", "got 0", "positive integers"]),
    (["--conv-channels", "8,16", "--conv-kernels", "5"], ["[8, 16]", "[5]", "differ in length"]),
    (["--epochs", "0"], ["epochs", "got 0", ">= 1"]),
    (["--dropout", "1.5"], ["dropout", "got 1.5", "[0, 1)"]),
    (["--device", "tpu"], ["'tpu'", "auto, cpu, cuda"]),
    (["--data", "cifar"], ["'cifar'", "mnist5k, mnist"]),
    (["--data", "mnist"], ["'mnist'", "--data-root"]),
    (["--set", "train.learning_rate=1"], ["learning_rate", "train has:"]),
    (["--preset", "seed", "--config", "x.json"], ["--preset", "--config", "not both"]),
]


def assert_refused(tmp_path: Path, argv: list, expected: list[str], out: Path | None = None):
    out = out or tmp_path / "out"
    existed = out.exists()
    before = tree(tmp_path)
    rc, stdout, stderr = run_cli("train", *argv, "--out", out)
    assert rc == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("seqsum"), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert stdout == ""
    assert tree(tmp_path) == before and out.exists() == existed  # nothing written


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, argv, expected):
    assert_refused(tmp_path, argv, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_writing(tmp_path):
    assert_refused(tmp_path, ["--smoke", "--device", "cuda"], ["'cuda'", "auto, cpu"])


@pytest.mark.parametrize("with_data_flag", [True, False])
def test_data_root_without_mnist_files(tmp_path, with_data_flag):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "notes.txt").write_text("nothing to see")
    argv = (["--data", "mnist"] if with_data_flag else []) + ["--data-root", root]
    assert_refused(tmp_path, argv, ["no MNIST IDX files", str(root), "train-images-idx3-ubyte"])


def test_data_root_that_does_not_exist(tmp_path):
    assert_refused(
        tmp_path, ["--data", "mnist", "--data-root", tmp_path / "nope"], [str(tmp_path / "nope"), "not a directory"]
    )


def test_config_file_with_unknown_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  task: sum\n  lerning_rate: 0.1\n")
    assert_refused(tmp_path, ["--config", cfg], ["lerning_rate", "allowed", "lr"])
    cfg.write_text("training:\n  task: sum\n")
    assert_refused(tmp_path, ["--config", cfg], ["'training'", "allowed: data, model, train"])


def test_missing_config_file(tmp_path):
    assert_refused(tmp_path, ["--config", tmp_path / "none.json"], ["cannot read", "none.json"])


def test_out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_refused(tmp_path, ["--smoke"], ["not a directory"], out=tmp_path / "f")


def test_missing_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run without --out would land, if the command wrote one
    rc, _, stderr = run_cli("train", "--smoke")
    assert rc == 2 and "--out" in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_a_checkpoint_with_a_device_generator_state(tmp_path, smoke_run):
    """A data generator state of a CUDA generator (16 bytes: what an older seqsum that drew on the GPU
    saved) cannot continue the CPU data stream: one line, exit 2, the run folder left as it was."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run[0], run)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, run / "checkpoint.pt")
    before = tree(tmp_path)
    rc, stdout, stderr = run_cli("train", "--resume", run, "--epochs", "3")
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, stderr
    assert "random state cannot be restored" in stderr and str(run / "checkpoint.pt") in stderr
    assert tree(tmp_path) == before


def test_resume_from_a_corrupted_checkpoint(tmp_path, smoke_run):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (run / name).write_bytes((smoke_run[0] / name).read_bytes())
    good = (smoke_run[0] / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(good[: len(good) // 2])  # truncated
    before = tree(tmp_path)
    rc, stdout, stderr = run_cli("train", "--resume", run, "--epochs", "3")
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "unreadable or corrupted" in stderr and str(run / "checkpoint.pt") in stderr
    assert tree(tmp_path) == before
    (run / "checkpoint.pt").write_bytes(b"garbage")
    rc, _, stderr = run_cli("train", "--resume", run / "checkpoint.pt")
    assert rc == 2 and "unreadable or corrupted" in stderr and len(stderr.strip().splitlines()) == 1


def test_resume_from_nothing(tmp_path):
    rc, _, stderr = run_cli("train", "--resume", tmp_path / "nope")
    assert rc == 2 and "does not exist" in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_command():
    rc, _, stderr = run_cli("trian")
    assert rc == 2 and "'trian'" in stderr and "train" in stderr and len(stderr.strip().splitlines()) == 1


# --- one table of flags, one --set parser ------------------------------------------------------------------
def test_every_run_flag_sets_its_config_key(tmp_path):
    from seqsum.cli import build_parser
    from seqsum.flags import RUN_FLAGS, run_config_from_args

    values = {"task": "product", "loss": "log", "data": "mnist", "device": "cpu", "optimizer": "adam"}
    values |= {"activation": "relu", "data-root": str(tmp_path), "lr": "0.01", "dropout": "0.3"}
    values |= {"conv-channels": "3,5", "conv-kernels": "3,3", "gru-hidden": "7", "max-len": "5"}
    values |= {"eval-max-len": "6", "epochs": "4", "seed": "9", "batch-size": "7", "train-size": "99"}
    argv = []
    for f in RUN_FLAGS:
        argv += [f.option] if f.kind is None else [f.option, values[f.name]]
    cfg = run_config_from_args(build_parser().parse_args(["train", *argv])).to_dict()
    for f in RUN_FLAGS:
        section, name = f.key.split(".")
        want = True if f.kind is None else f.kind(values[f.name])
        assert cfg[section][name] == want, f.option


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("data.valid_size=500", ("data.valid_size", 500)),
        ("train.lr=1e-3", ("train.lr", 1e-3)),
        ("model.gru_hidden=[8, 4]", ("model.gru_hidden", [8, 4])),
        ("data.root=/my/mnist", ("data.root", "/my/mnist")),
        ("train.grad_clip=null", ("train.grad_clip", None)),
        (" train.standardize =true", ("train.standardize", True)),
        ("data.root=a=b", ("data.root", "a=b")),
    ],
)
def test_parse_set(text, parsed):
    from seqsum.cli import parse_set

    assert parse_set(text) == parsed


@pytest.mark.parametrize("text", ["lr=0.1", "train.lr", "optim.lr=1", "train.=1", "train.lr.x=1", "=1"])
def test_parse_set_refuses_malformed_keys(tmp_path, text):
    rc, _, stderr = run_cli("train", "--smoke", "--set", text, "--out", tmp_path / "o")
    assert rc == 2 and len(stderr.strip().splitlines()) == 1 and "KEY=VALUE" in stderr
    assert not (tmp_path / "o").exists()


# --- help ------------------------------------------------------------------------------------------------
def test_help():
    rc, stdout, _ = run_cli("--help")
    assert rc == 0 and "usage: seqsum" in stdout and "train" in stdout
    rc, stdout, _ = run_cli("train", "--help")
    assert rc == 0 and "usage: seqsum train" in stdout
    for flag in (
        "--preset",
        "--config",
        "--task",
        "--loss",
        "--max-len",
        "--eval-max-len",
        "--epochs",
        "--data",
        "--data-root",
        "--download",
        "--seed",
        "--device",
        "--out",
        "--overwrite",
        "--resume",
        "--smoke",
    ):
        assert flag in stdout, flag


# --- full MNIST from a data root --------------------------------------------------------------------------
def test_train_on_an_idx_data_root(mnist_root, tmp_path):
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli("train", "--smoke", "--epochs", "1", "--data-root", mnist_root, "--out", out)
    assert rc == 0, stderr
    assert str(mnist_root / "MNIST" / "raw") in stdout.splitlines()[0]
    cfg = RunConfig.load(out / "config.json")
    assert cfg.data.source == "mnist" and cfg.data.root == str(mnist_root)
    assert strict_json((out / "summary.json").read_text())["status"] == "ok"


# --- the real console script ------------------------------------------------------------------------------
def _script() -> list[str]:
    exe = Path(sys.executable).parent / "seqsum"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seqsum"]


@pytest.mark.slow  # the installed command in a fresh process
def test_console_script_smoke_run(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(
        [*_script(), "train", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 2/2" in r.stdout and "done: test exact" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == TRAIN_FILES
    s = strict_json((out / "summary.json").read_text())
    assert s["status"] == "ok" and math.isfinite(s["test/mse"])
    r = subprocess.run([*_script(), "train", "--smoke", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--overwrite" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # the installed command in a fresh process
def test_python_m_seqsum_help(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "seqsum", "train", "--help"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0 and "--smoke" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "seqsum", "train", "--task", "divide", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and r.stderr.strip() == "seqsum: error: unknown task 'divide'; allowed: sum, product"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--lr", "0.1"], "--lr"),
        (["--task", "product"], "--task"),
        (["--smoke"], "--smoke"),
        (["--set", "data.valid_size=10"], "--set"),
        (["--preset", "seed"], "--preset"),
        (["--epochs", "1"], "--epochs 1"),
    ],
)
def test_resume_refuses_flags_it_would_ignore(smoke_run, tmp_path, argv, named):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((smoke_run[0] / "checkpoint.pt").read_bytes())  # at epoch 2
    before = tree(tmp_path)
    rc, stdout, stderr = run_cli("train", "--resume", run, *argv)
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert named in stderr and "allowed" in stderr
    assert tree(tmp_path) == before
