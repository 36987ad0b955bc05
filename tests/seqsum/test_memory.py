"""seqsum.memory: memory a run config needs, refused before anything is allocated; non-finite and
out-of-range numbers in a run config."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqsum.config import RunConfig, preset
from seqsum.errors import ConfigError
from seqsum.memory import check_memory, estimate, machine_memory, parameters
from seqsum.model import build
from seqsum.train import train
from tests.helpers import run_cli, tiny_config

GB = 2**30


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"train.loss": "classify"},
        {"train.loss": "classify", "train.task": "product", "data.eval_max_len": 6},
        {"model.bottleneck": "digits"},
        {"model.bottleneck": "digits", "model.head": "exact", "train.loss": "classify", "train.task": "product"},
        {"model.bottleneck": "digits", "model.head": "nmu", "train.loss": "log"},
        {"model.conv_padding": [1], "model.conv_pool": [2], "model.conv_channels": [8], "model.conv_kernels": [3]},
    ],
)
@pytest.mark.parametrize("name", ["smoke", "seed"])
def test_parameters_counts_what_build_makes(name, over):
    cfg = preset(name).replace(over)
    assert parameters(cfg) == sum(p.numel() for p in build(cfg)[0].parameters())


def test_the_presets_fit_in_a_small_machine():
    for name in ("smoke", "seed"):
        check_memory(preset(name), host=4 * GB, device=None)
    assert machine_memory() > GB


# The memory bound against a real run: a fresh process trains one config and reports how far its resident
# memory rose above what it held before train() (VmHWM after resetting it through /proc/self/clear_refs).
PEAK = r"""
import gc, json, sys
import torch
from seqsum.memory import estimate
from seqsum.config import RunConfig
from seqsum.data import load_pools
from seqsum.train import train

def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))

cfg = RunConfig().replace(json.loads(sys.argv[1]))
torch.set_num_threads(1)
pools = load_pools(cfg.data)
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
base = kib("VmRSS")
assert train(cfg, pools).status == "ok"
print(json.dumps({"measured": (kib("VmHWM") - base) * 1024, "estimate": sum(p.bytes for p in estimate(cfg))}))
"""
# one optimizer step on 512 sequences of 4 digits, validation in one evaluation batch of 4,096: the batch's
# activations, the evaluation batch and the model hold nearly all of what train() allocates
MEASURED = {
    "data.train_size": 512,
    "train.batch_size": 512,
    "data.valid_size": 4096,
    "data.test_size": 64,
    "data.pairs_per_cell": 1,
    "train.epochs": 1,
    "train.device": "cpu",
    "train.precision": "fp32",
}
FACTOR = 3  # the bound is an upper bound: at least the measured peak, at most FACTOR times it


@pytest.mark.slow  # a fresh process: torch's import and one real training step
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_the_bound_holds_a_real_runs_measured_peak():
    r = subprocess.run([sys.executable, "-c", PEAK, json.dumps(MEASURED)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got["measured"] > 100 * 2**20, got  # big enough that the process's own noise does not decide it
    assert got["measured"] <= got["estimate"] <= FACTOR * got["measured"], got


@pytest.mark.parametrize(
    "over, key",
    [
        ({"data.max_len": 100_000}, "data.max_len"),
        ({"train.batch_size": 10**7}, "train.batch_size"),
        ({"data.test_size": 10**9}, "data.test_size"),
        ({"data.train_size": 10**10}, "data.train_size"),
        ({"data.max_len": 8, "data.eval_max_len": 10**6}, "data.eval_max_len"),
    ],
)
def test_a_config_too_big_names_the_value_and_the_largest_that_fits(over, key):
    cfg, host = preset("smoke").replace(over), 8 * GB
    with pytest.raises(ConfigError) as e:
        check_memory(cfg, host=host, device=None)
    msg = str(e.value)
    value = over[key]
    assert len(msg.splitlines()) == 1 and f"{key}={value}" in msg and f"allowed here: {key} <= " in msg, msg
    bound = int(msg.split(f"{key} <= ")[1].split()[0].replace(",", ""))
    assert 0 < bound < value
    check_memory(cfg.replace({key: bound}), host=host, device=None)  # the bound fits ...
    with pytest.raises(ConfigError):
        check_memory(cfg.replace({key: bound + 1}), host=host, device=None)  # ... and is the largest


def test_a_huge_model_is_named_by_its_parameters():
    with pytest.raises(ConfigError, match=r"parameters; make model.conv_channels / model.gru_hidden smaller"):
        check_memory(preset("smoke").replace({"model.gru_hidden": [10**6]}), host=8 * GB, device=None)


def test_on_a_gpu_the_device_parts_meet_the_gpu_memory():
    cfg = preset("smoke").replace({"train.batch_size": 200_000})
    check_memory(cfg, host=64 * GB, device=None)  # fits in the host's 64 GB ...
    with pytest.raises(ConfigError, match="of GPU memory, more than 80% of the 1.0 GB"):
        check_memory(cfg, host=64 * GB, device=GB)  # ... not in a 1 GB GPU
    parts = {p.what: p.where for p in estimate(cfg)}
    assert parts["an epoch's training sequences"] == "host" and parts["the digit images"] == "device"


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--max-len", "100000"], "data.max_len=100000"),
        (["--batch-size", "100000000"], "train.batch_size=100000000"),
        (["--set", "data.test_size=100000000000"], "data.test_size=100000000000"),
        (["--eval-max-len", "10000000"], "data.eval_max_len=10000000"),
        (["--train-size", "100000000000"], "data.train_size=100000000000"),
    ],
)
def test_train_refuses_what_the_machine_cannot_hold_at_once(tmp_path, argv, named):
    t0 = time.perf_counter()
    rc, stdout, stderr = run_cli("train", "--smoke", *argv, "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 10
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, stderr
    assert named in stderr and "allowed here:" in stderr and "GB" in stderr
    assert list(tmp_path.iterdir()) == []


def test_train_itself_checks_before_allocating(pools):
    with pytest.raises(ConfigError, match="data.max_len=100000"):
        train(tiny_config(data__max_len=100_000, train__batch_size=64), pools)


# --- non-finite and out-of-range numbers ----------------------------------------------------------------
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("train.lr", NAN, ["lr", "finite", "nan"]),
        ("train.lr", INF, ["lr", "finite", "inf"]),
        ("train.lr", -INF, ["lr", "finite", "-inf"]),
        ("train.grad_clip", INF, ["grad_clip", "finite", "inf"]),
        ("model.dropout", NAN, ["dropout", "[0, 1)", "nan"]),
        ("data.valid_frac", NAN, ["valid_frac", "(0, 1)", "nan"]),
        ("data.test_frac", INF, ["test_frac", "(0, 1)", "inf"]),
        ("train.seed", -1, ["seed", "0..", "-1"]),
        ("train.seed", 2**64, ["seed", "0.."]),
        ("data.split_seed", 1.5, ["split_seed", "integer"]),
        ("data.max_len", 10**30, []),  # refused by the memory check, not here: valid in itself
    ],
)
def test_non_finite_and_out_of_range_numbers_are_one_line(key, value, words):
    if not words:
        RunConfig().replace({key: value})
        return
    with pytest.raises(ConfigError) as e:
        RunConfig().replace({key: value})
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and all(w in msg for w in words), msg


def test_classify_on_product_is_bounded_in_length():
    RunConfig().replace({"train.loss": "classify", "train.task": "product", "data.eval_max_len": 30})
    with pytest.raises(ConfigError, match="must be <= 30 .* got 31"):
        RunConfig().replace({"train.loss": "classify", "train.task": "product", "data.eval_max_len": 31})
    RunConfig().replace({"train.loss": "classify", "data.eval_max_len": 1000})  # sum: 9001 classes, fine


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--lr", "nan"], "got nan"),
        (["--lr", "inf"], "got inf"),
        (["--dropout", "nan"], "got nan"),
        (["--set", "data.valid_frac=NaN"], "got nan"),
        (["--set", "train.grad_clip=Infinity"], "got inf"),
        (["--seed", "-3"], "got -3"),
    ],
)
def test_train_refuses_non_finite_flags(tmp_path, argv, named):
    rc, stdout, stderr = run_cli("train", "--smoke", *argv, "--out", tmp_path / "o")
    assert rc == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1 and named in stderr, stderr
    assert list(tmp_path.iterdir()) == []


def test_a_yaml_config_with_inf_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("train: {lr: .inf}\n")
    rc, _, stderr = run_cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "o")
    assert rc == 2 and "lr must be a finite number > 0, got inf" in stderr and not (tmp_path / "o").exists()
