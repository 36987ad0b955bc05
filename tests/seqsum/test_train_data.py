"""The training switches (seqsum.train_data), each on a tiny run: data.balance and train.class_weight, data.holdout,
data.train_images, model.outputs every_step, model.head nau/nmu, length extrapolation and `seqsum evaluate`."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import torch

from seqsum.config import RunConfig
from seqsum.data import Pools, Sequences
from seqsum.errors import ConfigError
from seqsum.evaluate import evaluate, predict, value_metrics
from seqsum.memory import parameters
from seqsum.model import build
from seqsum.results import finish_run, read_run
from seqsum.sampling import contains_pair
from seqsum.targets import running_target, target
from seqsum.train import train
from seqsum.train_data import class_weights, holdout_pairs, tuple_sampler
from tests.helpers import run_cli, tiny_config, tree


def _drawn(cfg: RunConfig, pools) -> tuple[Sequences, object]:
    """Every training batch train() steps on, concatenated, and the TrainResult."""
    seen: list[Sequences] = []
    res = train(cfg, pools, on_batch=lambda b: seen.append(b))
    return Sequences(*(torch.cat([getattr(b, k) for b in seen]) for k in ("idx", "lengths", "digits"))), res


def _distance_to_uniform(seqs: Sequences, task: str, length: int) -> float:
    """Total variation distance between the drawn targets of one length and the uniform distribution over
    that length's achievable targets."""
    rows = seqs.lengths == length
    values = target(task, seqs.digits[rows], seqs.lengths[rows]).long().tolist()
    support = {int(v) for v in target(task, *_all_tuples(length)).long().tolist()}
    counts = Counter(values)
    n = len(values)
    return 0.5 * sum(abs(counts.get(v, 0) / n - 1 / len(support)) for v in support)


def _all_tuples(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    from seqsum.sampling import digit_tuples

    t = digit_tuples(length)
    return t, torch.full((len(t),), length)


# --- 1. data.balance and train.class_weight ---------------------------------------------------------------
@pytest.mark.parametrize("task", ["sum", "product"])
def test_balance_moves_the_drawn_training_targets_toward_uniform(pools, task):
    over = {"train__task": task, "data__max_len": 3, "data__train_size": 3000, "train__epochs": 1}
    over["train__batch_size"] = 500
    plain, _ = _drawn(tiny_config(**over), pools)
    balanced, res = _drawn(tiny_config(**over, data__balance="target"), pools)
    for length in (2, 3):
        before, after = _distance_to_uniform(plain, task, length), _distance_to_uniform(balanced, task, length)
        assert after < before / 2, (length, before, after)
    # images really show the digits drawn, lengths stay uniform
    assert torch.equal(pools.labels[balanced.idx] * balanced.mask, balanced.digits)
    assert set(balanced.lengths.tolist()) == {1, 2, 3}
    assert res.status == "ok" and json.loads(json.dumps(res.history))


def test_the_default_draw_is_unchanged_by_the_switches(pools):
    """balance none, no holdout: seqsum.data.sample, the sequences of every run before the switches."""
    from seqsum.data import sample

    cfg = tiny_config(train__epochs=1)
    drawn, _ = _drawn(cfg, pools)
    d = cfg.data
    again = sample(pools, pools.train, d.train_size, d.min_len, d.max_len, torch.Generator().manual_seed(0))
    assert torch.equal(drawn.idx, again.idx) and torch.equal(drawn.lengths, again.lengths)


@pytest.mark.parametrize("every_step", [False, True])
def test_inverse_frequency_weights_make_the_weighted_targets_uniform(every_step):
    cfg = tiny_config(train__task="product", data__max_len=3, train__class_weight="inverse_frequency")
    if every_step:
        cfg = cfg.replace({"model.outputs": "every_step"})
    weigh = class_weights(cfg)
    values, probs = tuple_sampler(cfg).distribution(every_step=every_step)
    w = weigh(values)
    assert (w * probs).sum().item() == pytest.approx(1.0)  # average weight 1 under the training distribution
    assert torch.allclose(w * probs, torch.full_like(probs, 1 / len(values)))  # each target the same mass
    assert w[values == 0].item() < 1 < w[values == 729].item()  # product 0 is common, 9*9*9 rare
    assert weigh(torch.tensor([-5.0, 1e9])).tolist() == [0.0, 0.0]  # never a training target
    assert class_weights(tiny_config()) is None


@pytest.mark.parametrize("loss", ["classify", "mse", "log"])
def test_class_weighted_runs_train(pools, loss):
    cfg = tiny_config(train__task="product", train__loss=loss, train__class_weight="inverse_frequency", train__epochs=1)
    res = train(cfg, pools)
    assert res.status == "ok"
    assert res.history[-1]["train/loss"] > 0


def test_class_weight_changes_the_loss_only_when_on():
    codec = build(tiny_config(train__loss="classify"))[1]
    out, v = torch.randn(6, codec.out_dim), torch.tensor([0.0, 1, 2, 3, 4, 5])
    assert codec.loss(out, v, torch.ones(6)).item() == pytest.approx(codec.loss(out, v).item())
    w = torch.tensor([2.0, 0, 0, 0, 0, 0])
    per = torch.nn.functional.cross_entropy(out, v.long(), reduction="none")
    assert codec.loss(out, v, w).item() == pytest.approx((2 * per[0] / 6).item())


# --- 2. data.holdout -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("holdout", [[[9, 9], [7, 3]], "random:0.1"])
def test_a_held_out_pair_never_appears_in_any_training_batch(pools, holdout):
    over = {"data__train_size": 1000, "train__batch_size": 250, "model__gru_hidden": [4]}
    cfg = tiny_config(train__task="product", data__holdout=holdout, **over)
    pairs = holdout_pairs(cfg)
    assert len(pairs) == (2 if isinstance(holdout, list) else 6)
    drawn, res = _drawn(cfg, pools)
    assert len(drawn) == 2 * 1000  # every batch of both epochs
    masked = torch.where(drawn.mask, drawn.digits, torch.full_like(drawn.digits, -1))
    assert not contains_pair(masked, pairs).any()
    assert torch.equal(pools.labels[drawn.idx] * drawn.mask, drawn.digits)  # the images show those digits
    # ... while a plain run's batches do contain them
    plain, _ = _drawn(tiny_config(train__task="product", train__epochs=1, **over), pools)
    assert contains_pair(torch.where(plain.mask, plain.digits, torch.full_like(plain.digits, -1)), pairs).any()
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "product")
    held = ev.predictions.held_out
    assert held.any() and (~held).any()
    assert held.tolist() == [bool(contains_pair(torch.tensor([d]), pairs)[0]) for d in ev.predictions.digits]
    assert set(ev.pairs[ev.pairs.held_out][["a", "b"]].apply(lambda r: tuple(sorted(r)), axis=1)) == set(pairs)
    for k in ("test/held_out/exact", "test/seen/exact", "pairs/held_out/exact", "pairs/seen/exact"):
        assert 0 <= ev.metrics[k] <= 1
    assert ev.metrics["test/held_out/n"] + ev.metrics["test/seen/n"] == len(ev.predictions)


def test_without_holdout_no_held_out_column(pools):
    cfg = tiny_config(train__epochs=1)
    res = train(cfg, pools)
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "sum")
    assert "held_out" not in ev.predictions and "held_out" not in ev.pairs
    assert not any("held_out" in k or "extrapolated" in k or "step=" in k for k in ev.metrics)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("data.holdout", "random:2", "random:F"),
        ("data.holdout", [[9, 10]], "two digits 0..9"),
        ("data.holdout", [9, 9], "two digits"),
        ("data.balance", "uniform", "allowed: none, target"),
        ("train.class_weight", "balanced", "allowed: none, inverse_frequency"),
        ("data.train_images", 5, "integer >= 10"),
        ("model.outputs", "all", "allowed: last, every_step"),
        ("model.head", "nalu", "allowed: dense, nau, nmu"),
        ("train.sparsity", -0.5, ">= 0"),
        ("train.sparsity_ramp", [5, 2], "start <= end"),
        ("train.sparsity_ramp", [1], "start <= end"),
        ("data.digits", [], "non-empty list of distinct digits 0..9"),
        ("data.digits", "123456789", "non-empty list of distinct digits 0..9"),
        ("data.digits", 7, "non-empty list of distinct digits 0..9"),
        ("data.digits", [1, 2, 2], "repeats"),
        ("data.digits", [1, 10], "10, which is no digit 0..9"),
        ("data.digits", [-1, 2], "-1, which is no digit 0..9"),
        ("data.digits", [1.0, 2], "1.0, which is no digit 0..9"),
        ("data.digits", [True, 2], "True, which is no digit 0..9"),
        ("data.digits", [[1], 2], "no digit 0..9"),
        ("train.sparsity_shape", "cubic", "allowed: squared, linear"),
        ("train.rz", -1.0, ">= 0"),
        ("train.rz", float("nan"), ">= 0"),
        ("model.accumulator", "fixed", "allowed: learned, solved"),
        ("model.accumulator", "solved", "needs model.head nau or nmu"),
    ],
)
def test_bad_switch_values_are_one_line_config_errors(key, value, words):
    with pytest.raises(ConfigError, match=words.replace("+", r"\+")) as e:
        RunConfig().replace({key: value})
    assert "\n" not in str(e.value) and key.split(".")[1] in str(e.value)


def test_enumerating_switches_refuse_long_training_sequences():
    with pytest.raises(ConfigError, match="max_len must be <= 6"):
        RunConfig().replace({"data.balance": "target", "data.max_len": 7})


def test_switches_round_trip_through_config_json(tmp_path):
    cfg = RunConfig().replace(
        {"data.holdout": [[9, 9]], "data.balance": "target", "data.train_images": 1000, "model.head": "nmu"}
    )
    cfg.save(tmp_path / "c.json")
    assert RunConfig.load(tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["data"]["holdout"] == [[9, 9]]


# --- 3. data.train_images --------------------------------------------------------------------------------------
def test_train_images_uses_a_nested_seeded_subset_of_the_training_pool(pools):
    small, res = _drawn(tiny_config(data__train_images=200, train__epochs=1), pools)
    assert len(res.pools.train) == 200 and set(small.idx.unique().tolist()) <= set(res.pools.train.tolist())
    assert torch.equal(res.pools.test, pools.test) and torch.equal(res.pools.valid, pools.valid)
    big = train(tiny_config(data__train_images=400, train__epochs=1), pools).pools.train
    assert set(res.pools.train.tolist()) < set(big.tolist())
    with pytest.raises(ConfigError, match="more than the training pool holds"):
        train(tiny_config(data__train_images=len(pools.train) + 1), pools)
    with pytest.raises(ConfigError, match="no image of digit"):
        train(tiny_config(data__train_images=10), pools)


def test_a_train_images_value_the_pool_cannot_give_is_refused_before_writing(tmp_path):
    out = tmp_path / "r"
    rc, _, err = run_cli("train", "--smoke", "--out", out, "--set", "data.train_images=100000")
    assert rc == 2 and "data.train_images=100000" in err and not out.exists()


def test_train_images_with_balance_draws_only_from_the_subset(pools):
    drawn, res = _drawn(tiny_config(data__train_images=300, data__balance="target", train__epochs=1), pools)
    assert set(drawn.idx.unique().tolist()) <= set(res.pools.train.tolist())


# --- 4. model.outputs every_step -------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "classify"])
def test_every_step_gives_one_output_per_step_and_its_last_target_is_lasts(pools, loss):
    cfg = tiny_config(train__task="product", train__loss=loss, model__outputs="every_step", train__epochs=1)
    res = train(cfg, pools)
    seqs = res.sets.test
    images = res.pools.images[seqs.idx]
    res.model.eval()
    with torch.no_grad():
        steps, last = res.model(images, seqs.lengths, steps=True), res.model(images, seqs.lengths)
    assert steps.shape == (len(seqs), seqs.idx.shape[1], res.codec.out_dim)
    rows = torch.arange(len(seqs))
    assert torch.allclose(steps[rows, seqs.lengths - 1], last, atol=1e-5)
    running = running_target("product", seqs.digits, seqs.lengths)
    assert torch.equal(running[rows, seqs.lengths - 1], target("product", seqs.digits, seqs.lengths))
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "product")
    assert ev.metrics["test/step=1/n"] == len(seqs) and ev.metrics["test/step=4/n"] == int((seqs.lengths == 4).sum())
    per_step = predict(res.model, res.codec, res.pools, seqs, steps=True)
    assert torch.equal(per_step[rows, seqs.lengths - 1], predict(res.model, res.codec, res.pools, seqs))


def test_running_target_by_hand():
    digits, lengths = torch.tensor([[2, 3, 4], [5, 0, 0]]), torch.tensor([3, 1])
    assert running_target("sum", digits, lengths).tolist() == [[2, 5, 9], [5, 5, 5]]
    assert running_target("product", digits, lengths).tolist() == [[2, 6, 24], [5, 5, 5]]


# --- 5. model.head nau / nmu -----------------------------------------------------------------------------------
def _digit_pools(n_per_digit: int = 30) -> Pools:
    """Synthetic 'images' whose top-left pixel is 20 x the digit: a linear read-out gives the digit."""
    labels = torch.arange(10).repeat_interleave(n_per_digit)
    images = torch.zeros(len(labels), 28, 28, dtype=torch.uint8)
    images[:, 0, 0] = (labels * 20).to(torch.uint8)
    idx = torch.arange(len(labels))
    return Pools(images, labels, idx, idx, idx, "synthetic")


@pytest.mark.parametrize("head, task", [("nau", "sum"), ("nmu", "product")])
def test_an_arithmetic_head_with_ideal_weights_computes_exactly_through_the_model(head, task):
    cfg = tiny_config(
        model__head=head, train__task=task, model__conv_channels=[], model__conv_kernels=[], data__max_len=4
    )
    model, codec = build(cfg)
    assert parameters(cfg) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model.head.digit.weight.zero_()
        model.head.digit.weight[0, 0] = 255.0 / 20.0  # pixel / 255 * 12.75 = the digit
        model.head.digit.bias.zero_()
        model.head.unit.W.fill_(1.0)
    pools = _digit_pools()
    g = torch.Generator().manual_seed(0)
    from seqsum.data import sample

    seqs = sample(pools, pools.test, 500, 1, 4, g)
    pred, tgt = predict(model, codec, pools, seqs), target(task, seqs.digits, seqs.lengths)
    assert value_metrics(pred, tgt)["exact"] == 1.0
    assert torch.allclose(pred, tgt, rtol=1e-5, atol=1e-4)
    steps = predict(model, codec, pools, seqs, steps=True)
    real = seqs.mask
    assert torch.allclose(steps[real], running_target(task, seqs.digits, seqs.lengths)[real], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("head, loss", [("nau", "mse"), ("nmu", "log")])
def test_an_arithmetic_head_trains_with_its_regulariser_and_clamped_weights(pools, head, loss):
    cfg = tiny_config(model__head=head, train__loss=loss, train__task="sum" if head == "nau" else "product")
    res = train(cfg, pools)
    assert res.status == "ok" and len(res.history) == 2
    W = res.model.head.unit.W
    assert W.min() >= (-1 if head == "nau" else 0) and W.max() <= 1
    ev = evaluate(res.model, res.codec, res.pools, res.sets, cfg.train.task)
    assert 0 <= ev.metrics["test/exact"] <= 1


@pytest.mark.parametrize("over", [{"train.loss": "classify"}, {"train.standardize": True}])
def test_an_arithmetic_head_refuses_what_it_cannot_predict(over):
    with pytest.raises(ConfigError, match="model.head nmu"):
        RunConfig().replace({"model.head": "nmu", **over})


def test_the_sparsity_weight_ramps_with_training_steps(pools):
    """sparsity 0 and a huge sparsity differ only through the regulariser (same data, same init)."""
    cfg = tiny_config(model__head="nmu", train__task="product", train__sparsity_ramp=[1, 6])
    a = train(cfg.replace({"train.sparsity": 0.0}), pools)
    b = train(cfg.replace({"train.sparsity": 1e3}), pools)
    # epoch 1 is steps 0..3: the ramp starts at step 1, so the losses already differ
    assert a.history[-1]["train/loss"] != b.history[-1]["train/loss"]
    Wb = b.model.head.unit.W
    assert (Wb * (1 - Wb)).abs().max() < (a.model.head.unit.W * (1 - a.model.head.unit.W)).abs().max()


# --- 6. length extrapolation and seqsum evaluate ---------------------------------------------------------------
def test_extrapolation_tables_hold_lengths_5_to_8(pools, tmp_path):
    cfg = tiny_config(train__loss="classify", data__eval_max_len=8, data__test_size=400, train__epochs=1)
    res = train(cfg, pools)
    summary = finish_run(tmp_path, cfg, res)
    assert summary["trained_lengths"] == [1, 2, 3, 4] and summary["extrapolated_lengths"] == [5, 6, 7, 8]
    for k in range(1, 9):
        assert 0 <= summary[f"test/len={k}/exact"] <= 1
        unreachable = summary[f"test/len={k}/unreachable"]
        assert unreachable == 0.0 if k <= 4 else unreachable > 0  # sums > 36 were never a training class
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    assert set(preds.length) == set(range(1, 9))
    share = (preds[preds.length == 8].target > 36).mean()
    assert summary["test/len=8/unreachable"] == pytest.approx(share)


def test_a_regression_run_marks_extrapolated_lengths_without_unreachable(pools, tmp_path):
    cfg = tiny_config(data__max_len=2, data__eval_max_len=4, train__epochs=1)
    summary = finish_run(tmp_path, cfg, train(cfg, pools))
    assert summary["extrapolated_lengths"] == [3, 4]
    assert not any(k.endswith("/unreachable") for k in summary)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    rc, _, err = run_cli("train", "--smoke", "--epochs", "1", "--loss", "classify", "--out", out)
    assert rc == 0, err
    return out


def test_evaluate_scores_a_run_on_longer_sequences(trained_run, tmp_path):
    before = tree(trained_run)
    out = tmp_path / "ev"
    rc, stdout, err = run_cli("evaluate", trained_run, "--out", out, "--eval-max-len", "8", "--test-size", "400")
    assert rc == 0, err
    assert tree(trained_run) == before  # the run itself is untouched
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "config.json", "predictions.parquet", "per_target.csv", "pairs.csv"} <= names
    assert "checkpoint.pt" not in names
    config, summary = read_run(out)
    assert config["data"]["eval_max_len"] == 8 and summary["extrapolated_lengths"] == [5, 6, 7, 8]
    assert summary["evaluated_from"] == str((trained_run / "checkpoint.pt").resolve())
    assert all(f"test/len={k}/unreachable" in summary for k in range(1, 9))
    # the classifier kept its class set (sums 0..36): longer sums are unreachable, not silently scored
    assert summary["test/len=8/unreachable"] > 0.5
    assert set(pd.read_parquet(out / "predictions.parquet").length) == set(range(1, 9))


def test_evaluate_at_the_runs_own_settings_reproduces_its_test_metrics(trained_run, tmp_path):
    rc, _, err = run_cli("evaluate", trained_run, "--out", tmp_path / "same")
    assert rc == 0, err
    _, ours = read_run(trained_run)
    _, again = read_run(tmp_path / "same")
    for k in ("test/exact", "test/mae", "pairs/9x9/exact"):
        assert again[k] == pytest.approx(ours[k])


def test_evaluate_never_overwrites_foreign_files_or_the_run_itself(trained_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        rc, _, err = run_cli("evaluate", trained_run, "--out", other, *extra)
        assert rc == 2 and err.startswith("seqsum: error:") and len(err.strip().splitlines()) == 1
    assert tree(other) == {"notes.txt": b"mine"}
    before = tree(trained_run)
    rc, _, err = run_cli("evaluate", trained_run, "--out", trained_run, "--overwrite")
    assert rc == 2 and "another folder" in err
    assert tree(trained_run) == before
    rc, _, err = run_cli("evaluate", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert rc == 2 and "does not exist" in err and not (tmp_path / "x").exists()


def test_switches_work_from_the_train_command_line(tmp_path):
    out = tmp_path / "r"
    rc, _, err = run_cli(
        "train", "--smoke", "--epochs", "1", "--task", "product", "--out", out,
        "--set", "data.holdout=[[9, 9]]", "--set", "data.balance=target", "--set", "model.outputs=every_step",
        "--set", "train.class_weight=inverse_frequency", "--set", "data.train_images=1000",
    )  # fmt: skip
    assert rc == 0, err
    config, summary = read_run(out)
    assert config["data"]["holdout"] == [[9, 9]] and config["model"]["outputs"] == "every_step"
    assert "test/held_out/exact" in summary and "test/step=2/exact" in summary
    rc, _, err = run_cli("train", "--smoke", "--out", tmp_path / "bad", "--set", "model.head=nmu", "--loss", "classify")
    assert rc == 2 and "model.head nmu" in err and not (tmp_path / "bad").exists()


def test_switches_are_searchable_in_a_study_space():
    """A study's space names the keys directly (study/ needs no code for them)."""
    import yaml

    from study.config import PRESET_DIR, StudyConfig

    d = yaml.safe_load((PRESET_DIR / "smoke.yaml").read_text())
    d["what"]["space"] = {
        "loss": {"choices": ["mse", "log"]},
        "model.head": {"choices": ["dense", "nmu"]},
        "model.outputs": {"choices": ["last", "every_step"]},
        "data.balance": {"choices": ["none", "target"]},
        "data.holdout": {"choices": ["random:0.1"]},
        "train.class_weight": {"choices": ["none", "inverse_frequency"]},
        "data.train_images": {"choices": [1000, 2000]},
    }
    point = {"loss": "log", "model.head": "nmu", "model.outputs": "every_step", "data.balance": "target"}
    point |= {"data.holdout": "random:0.1", "train.class_weight": "inverse_frequency", "data.train_images": 1000}
    run = StudyConfig.from_dict(d).run_config("product", point)
    assert (run.model.head, run.model.outputs, run.data.balance, run.data.holdout) == (
        "nmu",
        "every_step",
        "target",
        "random:0.1",
    )
    assert (run.train.class_weight, run.data.train_images, run.train.loss) == ("inverse_frequency", 1000, "log")
