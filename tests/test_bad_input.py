"""Bad input, whole classes: every case is one command as a user types it, and each
must end in exactly one line `seqsum: error: ...` naming the offending value, exit code 2, within
seconds, with nothing written (the files and folders under the test's folder, a copied real study
included, are the same before and after).

Classes: out-of-range / non-finite / wrongly typed numbers in flags and config files; malformed or unknown
config keys and sections; output and storage paths that are files, read-only (a read-only tmpfs) or
unreachable URIs; names with separators or `..`; corrupt data files; targets that are not what they claim
or are half-written; resource requests the machine cannot meet; `study rerun` with zero counts.
Most cases run in-process (seqsum.cli.main); the `sub` cases run `python -m seqsum` to prove the real
exit code and stderr.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run_cli

IN_PROCESS_S = 30.0  # generous: CI machines are loaded; a refusal takes well under a second here
SUBPROCESS_S = 60.0  # python + torch import on a loaded machine


@dataclass(frozen=True)
class Case:
    """argv with placeholders ({tmp}, {study}, {run}, {ro}, {file}, ...) filled from the Places fixture;
    `names`: text the error line must contain (the offending value); `sub`: run as a real process."""

    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...]
    sub: bool = False
    env: dict[str, str] = field(default_factory=dict)


def C(id: str, argv: str, *names: str, sub: bool = False, env: dict[str, str] | None = None) -> Case:
    return Case(id, tuple(argv.split()), names, sub, env or {})


TRAIN = "train --smoke --out {tmp}/out"
LAUNCH = "study launch --preset smoke --storage {tmp}/studies"
S3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:{closed}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}

CASES: tuple[Case, ...] = (
    # --- train: numbers out of range, non-finite, wrong types --------------------------------------
    C("train-lr-nan", f"{TRAIN} --lr nan", "nan"),
    C("train-lr-inf", f"{TRAIN} --lr inf", "inf"),
    C("train-lr-neg", f"{TRAIN} --lr -1", "-1"),
    C("train-epochs-0", f"{TRAIN} --epochs 0", "epochs", "0"),
    C("train-epochs-huge", f"{TRAIN} --epochs 1000000000000", "1000000000000"),
    C("train-batch-0", f"{TRAIN} --batch-size 0", "batch_size"),
    C("train-batch-huge", f"{TRAIN} --batch-size 1000000000", "1000000000"),
    C("train-max-len-huge", f"{TRAIN} --max-len 100000", "100000", sub=True),
    C("train-test-size-huge", f"{TRAIN} --set data.test_size=1000000000", "1000000000"),
    C("train-valid-size-neg", f"{TRAIN} --set data.valid_size=-1", "valid_size", "-1"),
    C("train-dropout-1.5", f"{TRAIN} --dropout 1.5", "1.5"),
    C("train-dropout-nan-set", f"{TRAIN} --set model.dropout=NaN", "nan"),
    C("train-seed-neg", f"{TRAIN} --seed -1", "-1"),
    C("train-channels-0", f"{TRAIN} --conv-channels 0", "[0]"),
    C("train-gru-neg", f"{TRAIN} --gru-hidden -5", "-5"),
    C("train-str-for-int", f'{TRAIN} --set train.epochs="two"', "two"),
    C("train-bool-for-int", f"{TRAIN} --set train.batch_size=true", "True"),
    C("train-float-for-int", f"{TRAIN} --set train.batch_size=1.5", "1.5"),
    C("train-int-flag-text", f"{TRAIN} --epochs two", "two"),
    C("train-unknown-key", f"{TRAIN} --set train.bogus=1", "bogus"),
    C("train-unknown-section", f"{TRAIN} --set extra.x=1", "extra.x"),
    C("train-task-bogus", f"{TRAIN} --task divide", "divide"),
    C("train-lr-neg-inf", f"{TRAIN} --lr -inf", "-inf"),
    C("train-gru-huge", f"{TRAIN} --gru-hidden 10000000", "10000000"),
    C("train-root-not-text", f"{TRAIN} --set data.source=mnist --set data.root=5", "data.root", "5"),
    C("train-holdout-everything", f'{TRAIN} --set data.holdout="random:0.9999"', "random:0.9999"),
    # --- train: config files -------------------------------------------------------------------------
    C("train-config-bad-yaml", "train --config {bad_yaml} --out {tmp}/out", "bad.yaml"),
    C("train-config-bad-json", "train --config {bad_json} --out {tmp}/out", "bad.json"),
    C("train-config-list", "train --config {list_yaml} --out {tmp}/out", "list.yaml"),
    C("train-config-unknown-section", "train --config {extra_yaml} --out {tmp}/out", "extra"),
    C("train-config-unknown-key", "train --config {key_yaml} --out {tmp}/out", "bogus"),
    C("train-config-nan", "train --config {nan_yaml} --out {tmp}/out", "nan"),
    C("train-config-missing", "train --config {tmp}/nope.yaml --out {tmp}/out", "nope.yaml"),
    C("train-config-dup-key", "train --config {dup_yaml} --out {tmp}/out", "dup.yaml", "'epochs'"),
    C("train-config-binary", "train --config {binary_yaml} --out {tmp}/out", "binary.yaml", "UTF-8"),
    # --- train: paths ----------------------------------------------------------------------------------
    C("train-out-is-file", "train --smoke --out {file}", "afile"),
    C("train-out-parent-file", "train --smoke --out {file}/run", "afile"),
    C("train-out-read-only", "train --smoke --out {ro}/run", "{ro}"),
    C("train-out-not-seqsum", "train --smoke --overwrite --out {foreign}", "foreign"),
    C(
        "train-out-name-too-long",
        "train --smoke --out {tmp}/" + "a" * 300,
        "300 bytes",
        "255",
    ),
    C("train-out-in-proc", "train --smoke --out /proc/seqsum-audit", "/proc/seqsum-audit"),
    C("train-data-root-missing", "train --smoke --data-root {tmp}/nodata --out {tmp}/out", "nodata"),
    C("train-data-root-garbage", "train --smoke --data-root {garbage_data} --out {tmp}/out", "garbage"),
    C("train-data-root-truncated", "train --smoke --data-root {truncated_data} --out {tmp}/out", "truncated"),
    # --- train --resume: targets that are not what they claim ------------------------------------------
    C("train-resume-empty", "train --resume {empty}", "empty"),
    C("train-resume-missing", "train --resume {tmp}/nowhere", "nowhere"),
    C("train-resume-garbage-ckpt", "train --resume {garbage_run}", "checkpoint.pt"),
    C("train-resume-study", "train --resume {study}", "study"),
    C("train-resume-epochs-below", "train --resume {run} --epochs 0 --out {tmp}/out", "0"),
    C("train-resume-weights-mismatch", "train --resume {mismatch_run} --epochs 3", "mismatch_run", "weights"),
    C("train-resume-bad-epoch", "train --resume {bad_epoch_run} --epochs 3", "bad_epoch_run", "'x'"),
    C("train-resume-diverged", "train --resume {diverged_run} --epochs 3", "diverged_run", "diverged"),
    C("train-resume-empty-name", "train --resume=", "--resume ''"),
    # --- evaluate --------------------------------------------------------------------------------------
    C("evaluate-empty", "evaluate {empty} --out {tmp}/out", "empty"),
    C("evaluate-garbage-ckpt", "evaluate {garbage_run} --out {tmp}/out", "checkpoint.pt"),
    C("evaluate-study", "evaluate {study} --out {tmp}/out", "study"),
    C("evaluate-test-size-0", "evaluate {run} --test-size 0 --out {tmp}/out", "test_size"),
    C("evaluate-test-size-huge", "evaluate {run} --test-size 1000000000 --out {tmp}/out", "1000000000"),
    C("evaluate-eval-max-len-huge", "evaluate {run} --eval-max-len 100000 --out {tmp}/out", "100000"),
    C("evaluate-out-file", "evaluate {run} --out {file}", "afile"),
    C("evaluate-out-read-only", "evaluate {run} --out {ro}/ev", "{ro}"),
    C("evaluate-data-root-garbage", "evaluate {run} --data-root {garbage_data} --out {tmp}/out", "garbage"),
    C("evaluate-weights-mismatch", "evaluate {mismatch_run} --out {tmp}/out", "mismatch_run", "weights"),
    C("evaluate-device-empty", "evaluate {run} --device= --out {tmp}/out", "device ''"),
    # --- filters ---------------------------------------------------------------------------------------
    C("filters-out-read-only", "filters {run} --out {ro}/f.png", "{ro}"),
    C("filters-cache-file", "filters {run} --cache {file}", "afile"),
    C("filters-weights-mismatch", "filters {mismatch_run}", "mismatch_run"),
    # --- study launch ----------------------------------------------------------------------------------
    C("launch-gpus-2", f"{LAUNCH} --gpus-per-trial 2", "2 GPU", sub=True),
    C("launch-cpus-64", f"{LAUNCH} --cpus-per-trial 64", "64 CPU"),
    C("launch-cpus-nan", f"{LAUNCH} --cpus-per-trial nan", "nan"),
    C("launch-cpus-neg", f"{LAUNCH} --cpus-per-trial -1", "-1"),
    C("launch-gpus-inf", f"{LAUNCH} --gpus-per-trial inf", "inf"),
    C("launch-num-samples-0", f"{LAUNCH} --num-samples 0", "num_samples"),
    C("launch-max-concurrent-0", f"{LAUNCH} --max-concurrent 0", "max_concurrent"),
    C("launch-max-failures-neg", f"{LAUNCH} --max-failures -5", "-5"),
    C("launch-scheduler-bogus", f"{LAUNCH} --scheduler hyperband9", "hyperband9"),
    C("launch-set-unknown-key", f"{LAUNCH} --set train.bogus=1", "bogus"),
    C("launch-set-lr-nan", f"{LAUNCH} --set train.lr=NaN", "nan"),
    C("launch-set-bool-for-int", f"{LAUNCH} --set train.batch_size=true", "True"),
    C("launch-set-max-len-huge", f"{LAUNCH} --set data.max_len=100000", "100000"),
    C("launch-data-root-garbage", f"{LAUNCH} --set data.source=mnist --set data.root={{garbage_data}}", "garbage"),
    C("launch-name-slash", f"{LAUNCH} --name a/b", "a/b"),
    C("launch-name-dotdot", f"{LAUNCH} --name ..", ".."),
    C("launch-name-dotdot-sep", f"{LAUNCH} --name ../x", "../x"),
    C("launch-storage-file", "study launch --preset smoke --storage {file}", "afile"),
    C("launch-storage-parent-file", "study launch --preset smoke --storage {file}/s", "afile"),
    C("launch-storage-read-only", "study launch --preset smoke --storage {ro}/s", "{ro}"),
    C("launch-storage-in-proc", "study launch --preset smoke --storage /proc/seqsum-audit", "/proc", sub=True),
    C("launch-storage-mock-uri", "study launch --preset smoke --storage mock://bucket/s", "mock://bucket/s", sub=True),
    C("launch-storage-s3-unreachable", "study launch --preset smoke --storage s3://bucket/studies", "s3://", env=S3),
    C("launch-storage-s3-dotdot", "study launch --preset smoke --storage s3://bucket/a/../b", ".."),
    C("launch-config-bad-yaml", "study launch --config {bad_yaml} --storage {tmp}/studies", "bad.yaml"),
    C("launch-config-unknown-section", "study launch --config {extra_yaml} --storage {tmp}/studies", "extra"),
    C("launch-config-unknown-key", "study launch --config {study_key_yaml} --storage {tmp}/studies", "bogus"),
    C("launch-config-nan", "study launch --config {study_nan_yaml} --storage {tmp}/studies", "nan"),
    C("launch-config-binary", "study launch --config {binary_yaml} --storage {tmp}/studies", "binary.yaml"),
    C("launch-config-metric", "study launch --config {study_metric_yaml} --storage {tmp}/studies", "valid/bogus"),
    C("launch-config-seed", "study launch --config {study_seed_yaml} --storage {tmp}/studies", "how.seed", "-1"),
    C("launch-config-bool-count", "study launch --config {study_bool_yaml} --storage {tmp}/studies", "True"),
    C("launch-config-name-newline", "study launch --config {study_newline_yaml} --storage {tmp}/studies", "a\\nb"),
    C("launch-config-when-self", "study launch --config {study_when_yaml} --storage {tmp}/studies", "itself"),
    C("launch-config-choice-twice", "study launch --config {study_twice_yaml} --storage {tmp}/studies", "twice"),
    C("launch-config-bad-choice", "study launch --config {study_choice_yaml} --storage {tmp}/studies", "[0]"),
    C("launch-config-huge-corner", "study launch --config {study_huge_yaml} --storage {tmp}/studies", "100000000"),
    C("launch-config-tasks-null", "study launch --config {study_tasks_yaml} --storage {tmp}/studies", "None"),
    C("launch-set-task", f"{LAUNCH} --set train.task=product", "train.task"),
    C("launch-set-cuda-no-gpus", f"{LAUNCH} --set train.device=cuda", "cuda", "gpus_per_trial"),
    C("launch-storage-s3-no-bucket", "study launch --preset smoke --storage s3://", "s3://"),
    C("launch-storage-file-uri-read-only", "study launch --preset smoke --storage file://{ro}/s", "{ro}"),
    C("launch-optuna-not-journal", f"{LAUNCH} --optuna-storage {{file}}", "afile"),
    # --- study resume ----------------------------------------------------------------------------------
    C("resume-empty", "study resume {empty}", "empty"),
    C("resume-missing", "study resume {tmp}/nowhere", "nowhere"),
    C("resume-run", "study resume {run}", "run"),
    C("resume-truncated-yaml", "study resume {truncated_study}", "study.yaml"),
    C("resume-s3-unreachable", "study resume s3://bucket/studies/x", "s3://", env=S3),
    C("resume-state-not-mapping", "study resume {list_state_study}", "state.json"),
    C("resume-empty-spec", "study resume {empty_spec_study}", "study.yaml", "empty"),
    # --- study rerun -----------------------------------------------------------------------------------
    C("rerun-seeds-0", "study rerun {study} --seeds 0", "--seeds", sub=True),
    C("rerun-epochs-0", "study rerun {study} --epochs 0", "--epochs"),
    C("rerun-top-0", "study rerun {study} --top 0", "--top"),
    C("rerun-seeds-neg", "study rerun {study} --seeds -3", "-3"),
    C("rerun-epochs-huge", "study rerun {study} --epochs 1000000000000", "1000000000000"),
    C("rerun-empty", "study rerun {empty}", "empty"),
    C("rerun-run", "study rerun {run}", "run"),
    C("rerun-truncated-yaml", "study rerun {truncated_study}", "study.yaml"),
    C("rerun-seeds-huge", "study rerun {study} --seeds 100000000000", "100000000000"),
    C("rerun-top-huge", "study rerun {study} --top 1000", "1000"),
    C("rerun-resume-bad-plan", "study rerun {bad_plan_study} --resume", "plan.json"),
    # --- report ----------------------------------------------------------------------------------------
    C("report-empty", "report {empty} --no-reference", "empty", sub=True),
    C("report-missing", "report {tmp}/nowhere --no-reference", "nowhere"),
    C("report-run", "report {run} --no-reference", "run"),
    C("report-half-run", "report {half_run} --no-reference", "half"),
    C("report-truncated-yaml", "report {truncated_study} --no-reference", "study.yaml"),
    C("report-out-file", "report {study} --out {file} --no-reference", "afile"),
    C("report-out-read-only", "report {study} --out {ro}/rep --no-reference", "{ro}"),
    C("report-out-foreign", "report {study} --out {foreign} --no-reference", "foreign"),
    C("report-s3-unreachable", "report s3://bucket/studies/x --no-reference", "s3://", env=S3),
)


# --- the places the cases name ------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block ends: nothing listens there


@pytest.fixture(scope="module")
def read_only_dir(tmp_path_factory):
    """A read-only tmpfs (as root, chmod does not stop writes). Root: mount must work (a failure fails)."""
    d = tmp_path_factory.mktemp("ro")
    if os.geteuid() != 0:
        os.chmod(d, 0o555)  # an ordinary user is stopped by the mode
        yield d
        os.chmod(d, 0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, f"mount a read-only tmpfs as root failed: {r.stderr}"
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished `seqsum train --smoke` run folder (a few seconds)."""
    d = tmp_path_factory.mktemp("tinyrun") / "run"
    rc, out, err = run_cli("train", "--smoke", "--epochs", "1", "--out", d)
    assert rc == 0, out + err
    return d


@pytest.fixture(scope="module")
def places(tmp_path_factory, smoke_study, tiny_run, read_only_dir) -> dict[str, str]:
    """Every placeholder's path; damaged copies are made once, here (the shared study is never touched)."""
    from tests.helpers import fake_mnist, idx_bytes

    base = tmp_path_factory.mktemp("places")
    study = base / "study" / "smoke"
    shutil.copytree(smoke_study, study, ignore=shutil.ignore_patterns("tune"))
    truncated = base / "truncated" / "smoke"
    shutil.copytree(smoke_study, truncated, ignore=shutil.ignore_patterns("tune", "trials", "rerun", "report"))
    spec = (truncated / "study.yaml").read_bytes()
    (truncated / "study.yaml").write_bytes(spec[: len(spec) // 2] + b"\n  what: [")
    damaged = {}
    for key, name, text in (
        ("list_state_study", "state.json", "[1, 2]\n"),
        ("empty_spec_study", "study.yaml", ""),
        ("bad_plan_study", "rerun/plan.json", '{"points": 5}\n'),
    ):
        damaged[key] = base / key / "smoke"
        shutil.copytree(smoke_study, damaged[key], ignore=shutil.ignore_patterns("tune", "trials", "report"))
        (damaged[key] / name).write_text(text)
    empty = base / "empty"
    empty.mkdir()
    afile = base / "afile"
    afile.write_text("not a folder\n")
    foreign = base / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious\n")
    garbage_run = base / "garbage_run"
    garbage_run.mkdir()
    (garbage_run / "checkpoint.pt").write_bytes(b"\x00garbage" * 100)
    half = base / "half_run"
    shutil.copytree(tiny_run, half)
    (half / "summary.json").unlink()
    runs = _damaged_runs(base, tiny_run)
    garbage_data = base / "garbage_data"
    truncated_data = base / "truncated_data"
    images, labels = fake_mnist(600, seed=3)
    for split in ("train", "t10k"):
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            garbage_data.mkdir(exist_ok=True)
            truncated_data.mkdir(exist_ok=True)
            (garbage_data / f"{split}-{kind}").write_bytes(b"this is not an IDX file at all" * 10)
            (truncated_data / f"{split}-{kind}").write_bytes(idx_bytes(arr)[:1000])
    configs = {
        "bad_yaml": ("bad.yaml", "train:\n  epochs: [1,\n"),
        "bad_json": ("bad.json", '{"train": {"epochs": 1'),
        "list_yaml": ("list.yaml", "- 1\n- 2\n"),
        "extra_yaml": ("extra.yaml", "extra:\n  x: 1\n"),
        "key_yaml": ("key.yaml", "train:\n  bogus: 1\n"),
        "nan_yaml": ("nan.yaml", "train:\n  lr: .nan\n"),
        "dup_yaml": ("dup.yaml", "train:\n  epochs: 2\n  epochs: 3\n"),
    }
    study_spec = (smoke_study / "study.yaml").read_text()
    configs["study_key_yaml"] = ("study_key.yaml", study_spec.replace("how:\n", "how:\n  bogus: 1\n", 1))
    configs["study_nan_yaml"] = ("study_nan.yaml", study_spec.replace("low: 0.001", "low: .nan", 1))
    for key, old, new in (
        ("metric", "metric: valid/exact", "metric: valid/bogus"),
        ("seed", "  seed: 0", "  seed: -1"),
        ("bool", "num_samples: 3", "num_samples: true"),
        ("newline", "name: smoke", 'name: "a\\nb"'),
        ("when", "    lr:\n", "    lr:\n      when: {lr: 0.001}\n"),
        ("twice", "      - log\n", "      - log\n      - log\n"),
        ("choice", "  space:\n", "  space:\n    model.gru_hidden: {choices: [[16], [0]]}\n"),
        ("huge", "high: 32", "high: 100000000"),
        ("tasks", "  tasks:\n  - sum\n  - product\n", "  tasks: null\n"),
    ):
        assert old in study_spec, old
        configs[f"study_{key}_yaml"] = (f"study_{key}.yaml", study_spec.replace(old, new, 1))
    p = {
        "study": study,
        "truncated_study": truncated,
        "empty": empty,
        "file": afile,
        "foreign": foreign,
        "garbage_run": garbage_run,
        "half_run": half,
        "run": tiny_run,
        "garbage_data": garbage_data,
        "truncated_data": truncated_data,
        "ro": read_only_dir,
    }
    for key, (name, text) in configs.items():
        (base / name).write_text(text)
        p[key] = base / name
    (base / "binary.yaml").write_bytes(b"\xff\xfe\x00\x87 not text")
    p["binary_yaml"] = base / "binary.yaml"
    p.update(damaged)
    p.update(runs)
    return {k: str(v) for k, v in p.items()}


def _damaged_runs(base: Path, run: Path) -> dict[str, Path]:
    """Copies of a finished run whose checkpoint lies: weights of another model, a bad epoch, a diverged run."""
    import torch

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    model = state["config"]["model"]
    damaged = {
        "mismatch_run": {**state, "config": {**state["config"], "model": {**model, "gru_hidden": [32]}}},
        "bad_epoch_run": {**state, "epoch": "x"},
        "diverged_run": {**state, "history": [{**state["history"][-1], "status": "diverged"}]},
    }
    out = {}
    for key, s in damaged.items():
        out[key] = base / key
        out[key].mkdir()
        torch.save(s, out[key] / "checkpoint.pt")
    return out


def _state(roots: list[Path]) -> dict[str, object]:
    """Every entry under roots: folders by name, files by bytes and mode."""
    seen: dict[str, object] = {}
    for root in roots:
        if not root.exists():
            continue
        for q in sorted(root.rglob("*")):
            if q.is_dir():
                seen[str(q)] = "dir"
            else:
                seen[str(q)] = (q.read_bytes(), q.stat().st_mode)
    return seen


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case: Case, places, tmp_path, monkeypatch):
    fill = {**places, "tmp": str(tmp_path), "closed": str(_closed_port())}
    argv = [a.format(**fill) for a in case.argv]
    names = [n.format(**fill) for n in case.names]
    env = {k: v.format(**fill) for k, v in case.env.items()}
    cache = tmp_path / "cache"  # where a URI's working copy would go: nothing may appear there either
    env["SEQSUM_CACHE_DIR"] = str(cache)
    keys = ("study", "truncated_study", "empty", "run", "list_state_study", "empty_spec_study", "bad_plan_study")
    roots = [tmp_path, *(Path(places[k]).parent for k in keys)]
    before = _state(roots)
    t0 = time.monotonic()
    if case.sub:
        full = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0"}
        full.pop("RAY_ADDRESS", None)
        r = subprocess.run(
            [sys.executable, "-m", "seqsum", *argv], env=full, capture_output=True, text=True, timeout=300
        )
        rc, err = r.returncode, r.stderr
        bound = SUBPROCESS_S
    else:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        rc, _, err = run_cli(*argv)
        bound = IN_PROCESS_S
    took = time.monotonic() - t0
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc}, stderr:\n{err[-3000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[-3000:]}"
    assert lines[0].startswith("seqsum: error: "), lines[0]
    for n in names:
        assert n in lines[0], f"the error does not name {n!r}: {lines[0]}"
    assert took < bound, f"took {took:.1f}s"
    after = _state(roots)
    assert after == before, f"written: {sorted(set(after) ^ set(before)) or 'changed files'}"


def test_a_failed_download_leaves_no_folder_behind(tmp_path, monkeypatch):
    """--download that cannot reach MNIST (its mirrors pointed at a closed loopback port): one line, exit 2,
    and the data root folders torchvision made for it are gone; a folder that was there stays."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{_closed_port()}/"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for root in (tmp_path / "new", mine):
        argv = ["train", "--smoke", "--out", tmp_path / "out", "--set", "data.source=mnist", "--set",
                "data.download=true", "--data-root", root]  # fmt: skip
        rc, _, err = run_cli(*argv)
        assert rc == 2 and err.startswith("seqsum: error: could not download MNIST") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine", "notes.txt"]
