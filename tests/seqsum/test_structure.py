"""The structure switches: the digit bottleneck (model.bottleneck), the exact head (seqsum.exact), the conv
stack's padding and pooling (seqsum.stack), and the digit accuracy and confusion table they report."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from seqsum.bottleneck import digit_accuracy, digit_report, slot_matching
from seqsum.config import ModelConfig, RunConfig, preset
from seqsum.data import Sequences, sample
from seqsum.errors import ConfigError
from seqsum.exact import LOG_ZERO, ExactOperator, eval_batch
from seqsum.memory import check_memory, estimate, parameters
from seqsum.model import CnnGru, build
from seqsum.optim import make_optimizer
from seqsum.stack import conv_layers, feature_size
from seqsum.targets import achievable_values, target
from seqsum.train import Extras, train, train_epoch
from tests.helpers import REPO, run_cli, tiny_config, tree

GB = 2**30
EXACT = {"model__bottleneck": "digits", "model__head": "exact", "train__loss": "classify"}


def brute_force(task: str, p: torch.Tensor, length: int, values: tuple[int, ...]) -> torch.Tensor:
    """The result's distribution by enumerating every digit tuple: p (T, 10) per-step digit probabilities."""
    out = torch.zeros(len(values), dtype=torch.float64)
    for ds in itertools.product(range(10), repeat=length):
        v = sum(ds) if task == "sum" else math.prod(ds)
        out[values.index(v)] += math.prod(float(p[t, d]) for t, d in enumerate(ds))
    return out


# --- the exact operator ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["sum", "product"])
def test_the_exact_operator_is_the_enumerated_distribution_and_padding_changes_nothing(task):
    gen = torch.Generator().manual_seed(1)
    values = achievable_values(task, 3)
    op = ExactOperator(task, values)
    logp = (3 * torch.randn(4, 5, 10, generator=gen)).log_softmax(-1)  # T = 4 > the longest length 3
    lengths = torch.tensor([1, 2, 3, 3, 2])
    mask = torch.arange(4)[:, None] < lengths
    out = op(logp, mask)
    for b in range(5):
        ref = brute_force(task, logp[:, b].exp(), int(lengths[b]), values)
        assert torch.allclose(out[b].double().exp(), ref, atol=1e-6)
    steps = op(logp, mask, steps=True)  # (B, T, C): after every step, a padded step keeps the last real one
    assert torch.equal(steps[torch.arange(5), lengths - 1], out) and torch.equal(steps[:, -1], out)
    garbage = logp.clone()
    garbage[~mask] = torch.randn(int((~mask).sum()), 10, generator=gen).log_softmax(-1)
    assert torch.equal(op(garbage, mask), out)


def test_long_products_stay_finite_in_log_space_with_finite_gradients():
    values = achievable_values("product", 12)
    op = ExactOperator("product", values)
    logits = (300 * torch.randn(12, 4, 10, generator=torch.Generator().manual_seed(0))).requires_grad_()
    out = op(logits.log_softmax(-1), torch.ones(12, 4, dtype=torch.bool))
    assert torch.isfinite(out).all() and (out >= LOG_ZERO).all()
    assert torch.allclose(torch.logsumexp(out, 1), torch.zeros(4), atol=1e-4)  # still a distribution
    # the true result of a confident model far below float32's smallest probability still has a finite NLL
    out[:, values.index(9**12)].sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_a_class_set_from_fewer_digits_picks_its_classes():
    values = achievable_values("product", 3, (1, 2, 3, 4, 5, 6, 7, 8, 9))  # no 0: the codec of data.digits 1..9
    op = ExactOperator("product", values)
    logp = torch.randn(3, 2, 10).log_softmax(-1)
    out = op(logp, torch.ones(3, 2, dtype=torch.bool))
    assert out.shape == (2, len(values))
    full = ExactOperator("product", achievable_values("product", 3))(logp, torch.ones(3, 2, dtype=torch.bool))
    ix = [achievable_values("product", 3).index(v) for v in values]
    assert torch.allclose(out, full[:, ix])


def test_exact_evaluation_batches_shrink_with_the_classes():
    assert eval_batch(226) == 4096
    assert 1 <= eval_batch(len(achievable_values("product", 30))) < 64


# --- the model --------------------------------------------------------------------------------------------
def test_the_exact_model_gives_a_log_distribution_over_the_codec_classes(pools):
    cfg = tiny_config(train__task="product", **EXACT)
    torch.manual_seed(0)
    model, codec = build(cfg)
    assert model.digits is not None and not any(n.startswith("head") for n, _ in model.named_parameters())
    seqs = sample(pools, pools.train, 32, 1, 4, torch.Generator().manual_seed(0))
    out = model(pools.images[seqs.idx], seqs.lengths)
    assert out.shape == (32, codec.out_dim)
    assert torch.allclose(torch.logsumexp(out, 1), torch.zeros(32), atol=1e-4)
    pooled = model.forward_pool(pools.images, seqs.idx, seqs.lengths)  # the evaluation path agrees
    assert torch.allclose(pooled, out, atol=1e-5)


@pytest.mark.parametrize(
    "over",
    [
        {"model.bottleneck": "digits"},
        {"model.bottleneck": "digits", "model.head": "nmu", "train.loss": "log"},
        {"model.bottleneck": "digits", "model.head": "nau", "train.loss": "mse"},
        {"model.bottleneck": "digits", "model.head": "exact", "train.loss": "classify", "train.task": "product"},
        {"model.conv_pool": [2, 2], "model.conv_padding": [1, 1], "model.activation": "relu"},
        {"model.conv_channels": [32, 64], "model.conv_kernels": [3, 3], "model.conv_pool": [2, 1]},
    ],
)
def test_shapes_and_parameter_counts_come_from_one_conv_shape_function(over):
    cfg = preset("seed").replace(over)
    model = build(cfg)[0]
    assert parameters(cfg) == sum(p.numel() for p in model.parameters())
    assert model.feat_dim == feature_size(cfg.model)
    f = model.cnn(torch.zeros(2, 1, 28, 28))
    last = conv_layers(cfg.model)[-1]
    assert f.shape == (2, last.c_out * last.side_out**2)


def test_pooling_and_padding_shapes():
    m = ModelConfig(conv_channels=(32, 64), conv_kernels=(3, 3), conv_padding=(1, 1), conv_pool=(2, 2))
    assert [(x.side_conv, x.side_out) for x in conv_layers(m)] == [(28, 14), (14, 7)]
    assert feature_size(m) == 64 * 7 * 7
    assert feature_size(RunConfig().model) == 16 * 23 * 23  # the seed stack: 28 -> 25 (4x4) -> 23 (3x3)
    assert CnnGru(RunConfig().model).feat_dim == 8464


def test_the_nmu_reads_the_expected_digit():
    cfg = tiny_config(model__bottleneck="digits", model__head="nmu", train__loss="log")
    model = build(cfg)[0]
    p = torch.softmax(torch.randn(3, 10), 1)
    assert torch.allclose(model.head.digit(p)[:, 0], p @ torch.arange(10.0))


# --- digit labels are never trained on ---------------------------------------------------------------------
@pytest.mark.parametrize("head", [{"model__head": "exact", "train__loss": "classify"}, {"model__head": "dense"}])
def test_training_reads_results_only_never_the_digit_labels(pools, head):
    """Two training epochs from the same start, one with every digit label garbage (the pools' labels
    permuted, the sequences' digits random): the same results give the same losses and the same weights."""
    cfg = tiny_config(train__task="product", model__bottleneck="digits", **head)
    seqs = sample(pools, pools.train, 256, 1, 4, torch.Generator().manual_seed(3))
    values = target("product", seqs.digits, seqs.lengths)  # the results: all that training may see
    garbage_pools = type(pools)(**{**pools.__dict__, "labels": pools.labels[torch.randperm(len(pools.labels))]})
    garbage_seqs = Sequences(seqs.idx, seqs.lengths, torch.randint(0, 10, seqs.digits.shape))
    runs = []
    for p, s in ((pools, seqs), (garbage_pools, garbage_seqs)):
        torch.manual_seed(0)
        model, codec = build(cfg)
        opt = make_optimizer(cfg, model.parameters())
        losses = [train_epoch(model, codec, opt, p, s, values, 64, None, Extras()).item() for _ in range(2)]
        runs.append((losses, model.state_dict()))
    (l1, w1), (l2, w2) = runs
    assert l1 == l2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


# --- digit accuracy and the confusion table ----------------------------------------------------------------
def test_slot_matching_undoes_a_permutation():
    conf = np.diag(np.arange(10, 20))
    perm = np.array([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])  # slot perm[k] holds digit k
    permuted = np.zeros_like(conf)
    permuted[:, perm] = conf
    matching = slot_matching(permuted)
    assert all(matching[perm[k]] == k for k in range(10))


def test_the_gru_readers_accuracy_is_found_under_the_validation_matching(pools):
    """Relabelling the bottleneck's slots (permuting the rows of its layer) changes nothing for the GRU reader
    (its slots are matched to digits on validation), and the matching found on validation is the one used on
    test; the exact head's slots are the digits themselves, so a relabelling changes its reads."""
    torch.manual_seed(0)
    res = train(tiny_config(train__task="sum", model__bottleneck="digits", train__epochs=1), pools)
    model = res.model
    metrics, table = digit_report(model, pools)
    assert metrics["valid/digit_acc"] == res.history[-1]["valid/digit_acc"] == digit_accuracy(model, pools)
    assert table.shape == (10, 11) and int(table.drop(columns="digit").to_numpy().sum()) == len(pools.test)
    assert metrics["test/digit_acc"] == np.trace(table.drop(columns="digit").to_numpy()) / len(pools.test)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        model.digits.weight.copy_(model.digits.weight[perm])
        model.digits.bias.copy_(model.digits.bias[perm])
    again, table2 = digit_report(model, pools)
    assert again == metrics and table2.equals(table)
    model.kind = "exact"  # read as the exact head reads: slot k is digit k
    assert digit_report(model, pools)[0]["test/digit_acc"] != metrics["test/digit_acc"]


# --- the run folder and seqsum evaluate --------------------------------------------------------------------
def test_an_exact_run_reports_digit_accuracy_and_scores_longer_sequences(tmp_path):
    run, ev = tmp_path / "run", tmp_path / "eval"
    args = ["--smoke", "--task", "sum", "--loss", "classify", "--set", "model.bottleneck=digits"]
    rc, out, err = run_cli("train", *args, "--set", "model.head=exact", "--out", run)
    assert rc == 0, err
    assert all("valid/digit_acc" in json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    summary = json.loads((run / "summary.json").read_text())
    assert 0 <= summary["valid/digit_acc"] <= 1 and 0 <= summary["test/digit_acc"] <= 1
    conf = pd.read_csv(run / "confusion.csv")
    assert list(conf.columns) == ["digit"] + [f"read_{k}" for k in range(10)] and len(conf) == 10
    rc, out, err = run_cli("evaluate", run, "--out", ev, "--eval-max-len", 6)
    assert rc == 0, err
    s = json.loads((ev / "summary.json").read_text())
    assert s["extrapolated_lengths"] == [5, 6] and "test/len=6/exact" in s
    assert not any(k.endswith("/unreachable") for k in s)  # every class is computed
    preds = pd.read_parquet(ev / "predictions.parquet")
    assert (preds.prediction > 9 * 4).any()  # results no 4-digit sum reaches are predicted
    assert (ev / "confusion.csv").is_file()


def test_a_run_without_the_bottleneck_has_no_digit_accuracy(tmp_path):
    rc, _, err = run_cli("train", "--smoke", "--epochs", "1", "--out", tmp_path / "r")
    assert rc == 0, err
    assert not (tmp_path / "r" / "confusion.csv").exists()
    assert "test/digit_acc" not in json.loads((tmp_path / "r" / "summary.json").read_text())


# --- bad values ---------------------------------------------------------------------------------------------
BAD = [
    (["--set", "model.head=exact", "--loss", "classify"], ["model.head exact", "model.bottleneck digits", "'none'"]),
    (["--set", "model.head=exact", "--set", "model.bottleneck=digits"], ["loss must be classify", "'mse'"]),
    (["--set", "model.bottleneck=labels"], ["'labels'", "none, digits"]),
    (["--set", "model.conv_pool=[2, 2]"], ["model.conv_pool [2, 2]", "one entry per conv layer", "[]"]),
    (["--set", "model.conv_padding=[1, 1]"], ["model.conv_padding [1, 1]", "one entry per conv layer"]),
    (["--set", "model.conv_pool=[0]"], ["model.conv_pool", ">= 1", "[0]"]),
    (["--set", "model.conv_padding=[-1]"], ["model.conv_padding", ">= 0", "[-1]"]),
    (["--set", "model.conv_padding=[5]"], ["model.conv_padding 5", "allowed: 0..4"]),
    (["--set", "model.conv_pool=[32]"], ["shrinks a 28x28 image to nothing", "after pool 32"]),
    (["--set", 'model.conv_pool="x"'], ["model.conv_pool", "'x'"]),
]


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_structure_values_exit_2_one_line_nothing_written(tmp_path, argv, expected):
    before = tree(tmp_path)
    rc, stdout, stderr = run_cli("train", "--smoke", *argv, "--out", tmp_path / "out")
    lines = stderr.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and stdout == "", (rc, stdout, stderr)
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_the_config_refuses_an_exact_head_without_what_it_needs():
    with pytest.raises(ConfigError, match="needs model.bottleneck digits"):
        RunConfig().replace({"model.head": "exact", "train.loss": "classify"})
    with pytest.raises(ConfigError, match="loss must be classify, got 'log'"):
        RunConfig().replace({"model.head": "exact", "model.bottleneck": "digits", "train.loss": "log"})


# --- memory ---------------------------------------------------------------------------------------------
def test_the_budget_counts_the_exact_heads_classes():
    cfg = preset("seed").replace({"train.task": "product", "train.loss": "classify"})
    exact = cfg.replace({"model.bottleneck": "digits", "model.head": "exact"})
    parts = {p.what: p.bytes for p in estimate(exact.replace({"data.eval_max_len": 20}))}
    assert parts["the exact head's class map"] == 80 * len(achievable_values("product", 20))
    small = {p.what: p.bytes for p in estimate(exact)}
    batch = "a training batch's activations and gradients"
    assert parts[batch] > 50 * small[batch]
    longest = exact.replace({"data.eval_max_len": 30})
    with pytest.raises(ConfigError) as e:  # training over 246,017 classes at every step of every batch
        check_memory(longest, host=4 * GB, device=None)
    assert len(str(e.value).splitlines()) == 1 and "allowed here: data.eval_max_len <= " in str(e.value)
    check_memory(exact.replace({"data.eval_max_len": 8}), host=4 * GB, device=None)
    check_memory(longest, host=4 * GB, device=None, evaluating=True)  # scoring them: its batches shrink


def test_the_pipeline_is_unchanged_without_the_switches():
    """The default stack builds the same modules as before the options existed (checkpoints load)."""
    keys = list(CnnGru(RunConfig().model).state_dict())
    assert keys[:4] == ["cnn.0.weight", "cnn.0.bias", "cnn.2.weight", "cnn.2.bias"]
    assert not any(k.startswith("digits") for k in keys)


def test_layout_names_the_confusion_table():
    layout = (REPO / "docs" / "STUDY_LAYOUT.md").read_text()
    assert "| `confusion.csv` |" in layout and "| `test/digit_acc` |" in layout
