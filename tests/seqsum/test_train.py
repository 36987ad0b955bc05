"""train(): metrics per epoch, determinism, divergence, checkpoints and resume, evaluation tables,
and one learning test (the sum task is learnable on held-out digits within a minute of CPU)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from seqsum.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from seqsum.config import RunConfig
from seqsum.data import eval_sets
from seqsum.device import autocast_dtype, bf16_fast, resolve_device
from seqsum.errors import ConfigError
from seqsum.evaluate import evaluate, predict, value_metrics
from seqsum.stats import wilson
from seqsum.targets import target
from seqsum.train import train
from tests.helpers import tiny_config

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


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_reports_every_epoch_with_all_metrics(pools, strip_times):
    seen = []
    res = train(tiny_config(train__epochs=3), pools, report=lambda m, s: seen.append((m, s)))
    assert res.status == "ok" and len(res.history) == 3 and res.train_seconds > 0
    assert [m["epoch"] for m, _ in seen] == [1, 2, 3]
    for m, state in seen:
        assert set(m) == METRIC_KEYS and m["status"] == "ok"
        assert all(math.isfinite(m[k]) for k in METRIC_KEYS - {"status", "precision"})
        assert 0 <= m["valid/exact"] <= 1 and m["valid/mse"] >= m["valid/mae"] ** 2 - 1e-9
        assert state["epoch"] == m["epoch"] and len(state["history"]) == m["epoch"]
        assert {"config", "model", "optimizer", "generator", "torch_rng", "history"} <= set(state)
    assert strip_times([m for m, _ in seen]) == strip_times(res.history)


def test_train_is_deterministic_for_a_seed(pools, strip_times):
    cfg = tiny_config(train__epochs=2, model__dropout=0.3)
    a, b = train(cfg, pools), train(cfg, pools)
    assert strip_times(a.history) == strip_times(b.history)
    assert same_weights(a.model, b.model)
    c = train(tiny_config(train__epochs=2, model__dropout=0.3, train__seed=1), pools)
    assert strip_times(c.history) != strip_times(a.history)


def test_loads_pools_from_the_config_when_none_given(pools, strip_times):
    cfg = tiny_config(train__epochs=1)
    assert strip_times(train(cfg).history) == strip_times(train(cfg, pools).history)


def test_validation_metrics_are_those_of_the_returned_model(pools):
    res = train(tiny_config(train__epochs=1, train__task="product", train__loss="log"), pools)
    tgt = target("product", res.sets.valid.digits, res.sets.valid.lengths)
    vm = value_metrics(predict(res.model, res.codec, res.pools, res.sets.valid), tgt)
    last = res.history[-1]
    assert {k: last[f"valid/{k}"] for k in vm} == pytest.approx(vm)


# --- divergence ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "log", "classify"])
def test_divergence_ends_the_run_with_status_and_metrics(pools, loss):
    # lr=1e6 is not enough: RMSprop's normalized steps and the bounded GRU state keep the loss
    # finite (~1e13); 1e20 overflows it to inf/NaN within the first epoch.
    cfg = tiny_config(train__lr=1e20, model__activation="relu", train__loss=loss, train__epochs=3)
    seen = []
    res = train(cfg, pools, report=lambda m, s: seen.append(m))
    assert res.status == "diverged"
    assert len(res.history) == 1 and seen == res.history  # stopped at once, and reported it
    m = res.history[0]
    assert m["status"] == "diverged" and not math.isfinite(m["train/loss"])
    assert set(m) == METRIC_KEYS


def test_divergence_keeps_the_metrics_so_far(pools, tmp_path):
    cfg = tiny_config(train__epochs=3)
    ckpt = tmp_path / "checkpoint.pt"
    train(cfg.replace({"train.epochs": 1}), pools, report=lambda m, s: save_checkpoint(s, ckpt))
    state = load_checkpoint(ckpt)
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = 1e20  # the resumed optimizer blows up in epoch 2
    res = train(cfg, pools, resume=state)
    assert res.status == "diverged"
    assert [m["status"] for m in res.history] == ["ok", "diverged"]
    assert math.isfinite(res.history[0]["valid/mse"]) and math.isnan(res.history[1]["valid/mse"])
    # resuming a diverged run does not train again
    again = train(cfg, pools, resume={**state, "history": res.history, "epoch": 2})
    assert again.status == "diverged" and len(again.history) == 2


# --- checkpoints and resume ----------------------------------------------------------------------------
HEADS = {
    "dense": {},
    # the regulariser ramps in over steps 2..10 of the 12 (4 per epoch): extending a 1-epoch run must keep it
    "nau": {"model.head": "nau", "train.task": "sum", "train.sparsity_ramp": [2, 10]},
    "nmu": {"model.head": "nmu", "train.task": "product", "train.sparsity_ramp": [2, 10]},
}


@pytest.mark.parametrize("head", HEADS)
def test_resume_gives_the_same_result_as_an_uninterrupted_run(pools, tmp_path, strip_times, head):
    """Extending a run (trained as 1 epoch, resumed to 3) ends exactly where the uninterrupted run does."""
    cfg = tiny_config(train__epochs=3, model__dropout=0.3).replace(HEADS[head])  # dropout: the torch RNG too
    whole = train(cfg, pools)
    ckpt = tmp_path / "checkpoint.pt"
    train(cfg.replace({"train.epochs": 1}), pools, report=lambda m, s: save_checkpoint(s, ckpt))
    resumed = train(cfg, pools, resume=load_checkpoint(ckpt))
    assert strip_times(resumed.history) == strip_times(whole.history)
    assert same_weights(resumed.model, whole.model)


def test_train_seconds_is_the_total_over_every_segment(pools):
    states = []
    first = train(tiny_config(train__epochs=1), pools, report=lambda m, s: states.append(s))
    assert 0 < states[0]["train_seconds"] <= first.train_seconds
    state = {**states[0], "train_seconds": 1000.0}  # as if the first segment had taken 1000 s
    resumed = train(tiny_config(train__epochs=2), pools, resume=state)
    assert 1000.0 + resumed.history[-1]["time/epoch_s"] <= resumed.train_seconds < 1000.0 + 60
    old = {k: v for k, v in states[0].items() if k != "train_seconds"}  # an older checkpoint: epochs' times
    again = train(tiny_config(train__epochs=1), pools, resume=old)  # nothing left to train
    assert again.train_seconds == pytest.approx(first.history[0]["time/epoch_s"], abs=0.05)


def test_checkpoints_hold_the_cpu_generator_state(pools, tmp_path):
    """The data stream's state is a CPU generator's (resumable on any device), not a device generator's."""
    states = []
    train(tiny_config(train__epochs=1), pools, report=lambda m, s: states.append(s))
    g = states[0]["generator"]
    assert g.device.type == "cpu" and g.shape == torch.Generator().get_state().shape
    torch.Generator().set_state(g)  # loads into a CPU generator


# A CUDA generator's state is 16 bytes (a Philox seed and offset), a CPU generator's the whole Mersenne
# Twister (5,056 bytes): what an older seqsum that drew on the GPU left in a checkpoint.
CUDA_GENERATOR_STATE = torch.zeros(16, dtype=torch.uint8)


def test_resume_refuses_a_non_cpu_generator_state(pools):
    states = []
    train(tiny_config(train__epochs=1), pools, report=lambda m, s: states.append(s))
    with pytest.raises(RuntimeError):
        torch.Generator().set_state(CUDA_GENERATOR_STATE)  # what the refusal guards against
    state = {**states[0], "generator": CUDA_GENERATOR_STATE.clone()}
    with pytest.raises(ConfigError, match="not a CPU generator's.*train the run again"):
        train(tiny_config(train__epochs=2), pools, resume=state)


@pytest.mark.parametrize("loss", ["classify", "mse"])
def test_class_weight_reaches_the_training_loss(pools, loss):
    """Epoch 2 trains one batch from the same checkpoint with and without class weights: each run's
    train/loss is that batch's loss at the checkpoint's weights, weighted per sequence exactly when
    train.class_weight says so (and the two differ)."""
    from seqsum.train import batch_images
    from seqsum.train_data import class_weights

    over = {"train__task": "product", "train__loss": loss, "train__precision": "fp32", "model__dropout": 0.0}
    base = tiny_config(**over, train__epochs=1, train__batch_size=256)  # one batch per epoch (train_size 256)
    states = []
    train(base, pools, report=lambda m, s: states.append(s))
    got = {}
    for cw in ("none", "inverse_frequency"):
        seen = []
        cfg = base.replace({"train.class_weight": cw, "train.epochs": 2})
        res = train(cfg, pools, resume={**states[0]}, on_batch=seen.append)
        assert len(seen) == 1
        got[cw] = (res.history[-1]["train/loss"], seen[0])
    batch = got["none"][1]
    assert torch.equal(batch.idx, got["inverse_frequency"][1].idx)  # the same batch
    _, model, codec = model_from_checkpoint(states[0])
    model.train()
    with torch.no_grad():
        out = model(batch_images(pools, batch), batch.lengths).float()
    values = target("product", batch.digits, batch.lengths)
    w = class_weights(base.replace({"train.class_weight": "inverse_frequency"}))(values)
    assert not torch.allclose(w, torch.ones_like(w))
    assert got["none"][0] == pytest.approx(codec.loss(out, values).item(), rel=1e-4)
    assert got["inverse_frequency"][0] == pytest.approx(codec.loss(out, values, w).item(), rel=1e-4)
    assert got["none"][0] != pytest.approx(got["inverse_frequency"][0], rel=1e-2)


def test_checkpoint_round_trip(pools, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    res = train(
        tiny_config(train__epochs=1, train__loss="classify"), pools, report=lambda m, s: save_checkpoint(s, ckpt)
    )
    assert not (tmp_path / "checkpoint.pt.tmp").exists()
    cfg, model, codec = model_from_checkpoint(load_checkpoint(ckpt))
    assert cfg == tiny_config(train__epochs=1, train__loss="classify")
    assert not model.training
    assert torch.equal(predict(model, codec, pools, res.sets.test), predict(res.model, res.codec, pools, res.sets.test))


def test_bad_checkpoints_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02this is not a checkpoint" * 10)
    with pytest.raises(ConfigError, match="unreadable or corrupted") as e:
        load_checkpoint(junk)
    assert "\n" not in str(e.value)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match="not a seqsum checkpoint"):
        load_checkpoint(other)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda'.*auto, cpu"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "overrides",
    [{}, {"model__outputs": "every_step"}, {"model__head": "nau"}, {"train__loss": "classify"}],
)
def test_bf16_autocast_trains_with_float32_weights_and_state(pools, overrides):
    cfg = tiny_config(train__epochs=2, train__precision="bf16", **overrides)
    res = train(cfg, pools)
    assert res.status == "ok" and all(math.isfinite(m["train/loss"]) for m in res.history)
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    fp32 = train(tiny_config(train__epochs=2, train__precision="fp32", **overrides), pools)
    assert {m["precision"] for m in res.history} == {"bf16"} and {m["precision"] for m in fp32.history} == {"fp32"}
    assert res.history[-1]["train/loss"] != fp32.history[-1]["train/loss"]  # bf16 matmuls really ran
    assert abs(res.history[0]["train/loss"] - fp32.history[0]["train/loss"]) < 0.1 * abs(fp32.history[0]["train/loss"])


def test_shared_evaluation_sets_are_used_only_where_they_fit(pools, strip_times):
    """A study draws the base config's evaluation sets once; train() uses them when
    its data config draws the same ones (training-only fields may differ) and draws its own otherwise."""
    cfg = tiny_config(train__epochs=1)
    shared = eval_sets(pools, cfg.data)
    a, b = train(cfg, pools, sets=shared), train(cfg, pools)
    assert a.sets.valid.idx is shared.valid.idx and b.sets.valid.idx is not shared.valid.idx
    assert strip_times(a.history) == strip_times(b.history)
    d = train(tiny_config(train__epochs=1, data__train_size=128, data__balance="target"), pools, sets=shared)
    assert d.sets.valid.idx is shared.valid.idx
    other = tiny_config(train__epochs=1, data__max_len=3)
    c = train(other, pools, sets=shared)
    assert c.sets.valid.idx is not shared.valid.idx and c.sets.fit(other.data) and not shared.fit(other.data)
    assert int(c.sets.valid.lengths.max()) <= 3


def test_precision_choices():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if bf16_fast(cpu) else None)
    with pytest.raises(ConfigError, match="train.precision.*fp32"):
        tiny_config(train__precision="fp16")


def test_precision_default_is_auto_and_the_run_records_what_it_resolved_to(pools):
    """auto became the default once bf16 and fp32 learning intervals overlapped
    (docs/PERFORMANCE.md); every epoch records the precision it really trained in."""
    assert RunConfig().train.precision == "auto"
    res = train(tiny_config(train__epochs=1), pools)
    assert res.history[0]["precision"] == ("bf16" if bf16_fast(torch.device("cpu")) else "fp32")


# --- evaluation ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(pools):
    cfg = tiny_config(train__epochs=1, train__task="product", data__pairs_per_cell=3, data__eval_max_len=5)
    res = train(cfg, pools)
    return cfg, res, evaluate(res.model, res.codec, res.pools, res.sets, "product")


def test_prediction_frame(trained):
    cfg, res, ev = trained
    p = ev.predictions
    assert list(p.columns) == ["length", "digits", "target", "prediction", "rounded", "error", "abs_error", "correct"]
    assert len(p) == cfg.data.test_size and set(p.length) <= set(range(1, 6)) and p.length.max() == 5
    assert all(len(d) == n for d, n in zip(p.digits, p.length))
    assert (p.target == [int(np.prod(d)) for d in p.digits]).all()
    assert np.allclose(p.error, p.prediction - p.target) and (p.abs_error == p.error.abs()).all()
    assert (p.correct == (p.prediction.round() == p.target)).all()
    m = ev.metrics
    assert m["test/exact"] == pytest.approx(p.correct.mean())
    assert m["test/mse"] == pytest.approx((p.error**2).mean())
    assert sum(m[f"test/len={k}/n"] for k in range(1, 6)) == len(p)


def test_per_target_table(trained):
    _, _, ev = trained
    t, p = ev.per_target, ev.predictions
    assert list(t.columns) == ["target", "n", "exact", "mae", "rmse", "rel_err", "mean_prediction"]
    assert t.n.sum() == len(p) and t.target.is_unique and set(t.target) == set(p.target)
    row = t[t.target == 0].iloc[0]
    zero = p[p.target == 0]
    assert row.n == len(zero) and row.exact == pytest.approx(zero.correct.mean())
    assert row.rmse == pytest.approx(np.sqrt((zero.error**2).mean()))
    assert (t.rmse >= t.mae - 1e-9).all()


def test_pair_grid(trained):
    _, _, ev = trained
    g = ev.pairs
    assert list(g.columns) == ["a", "b", "n", "target", "exact", "ci_low", "ci_high", "mae", "mean_prediction"]
    assert len(g) == 100 and (g.n == 3).all()
    low, high = wilson(g.exact * g.n, g.n)
    assert np.allclose(g.ci_low, low) and np.allclose(g.ci_high, high) and (g.ci_low <= g.exact).all()
    assert (g.target == g.a * g.b).all()
    nine = g[(g.a == 9) & (g.b == 9)].iloc[0]
    assert ev.metrics["pairs/9x9/exact"] == nine.exact
    assert ev.metrics["pairs/exact"] == pytest.approx(g.exact.mean())


def test_relative_error_is_defined_for_target_zero():
    from seqsum.evaluate import relative_error

    err, tgt = torch.tensor([3.0, -2.0, 5.0]), torch.tensor([0.0, 1.0, 10.0])
    assert relative_error(err, tgt).tolist() == [3.0, 2.0, 0.5]
    assert relative_error(err.numpy(), tgt.numpy()).tolist() == [3.0, 2.0, 0.5]


def test_value_metrics_by_hand():
    pred = torch.tensor([1.4, 2.6, float("nan"), 10.0])
    tgt = torch.tensor([1.0, 2.0, 3.0, 0.0])
    m = value_metrics(pred[[0, 1, 3]], tgt[[0, 1, 3]])
    assert m["exact"] == pytest.approx(1 / 3)
    assert m["mae"] == pytest.approx((0.4 + 0.6 + 10) / 3)
    assert m["mse"] == pytest.approx((0.16 + 0.36 + 100) / 3)
    assert m["rel_err"] == pytest.approx((0.4 + 0.3 + 10) / 3)  # target 0 divides by 1
    assert value_metrics(pred, tgt)["exact"] == 0.25  # NaN counts wrong


def test_a_classifier_scores_its_posterior_mean_by_squared_error_beside_its_mode(pools):
    res = train(tiny_config(train__epochs=1, train__loss="classify"), pools)
    ev = evaluate(res.model, res.codec, pools, res.sets, "sum")
    p = ev.predictions
    assert ev.metrics["test/mean_mse"] == pytest.approx(((p.posterior_mean - p.target) ** 2).mean())
    assert ev.metrics["test/mse"] == pytest.approx((p.error**2).mean())  # the mode's, unchanged
    assert "test/len=2/mean_mse" in ev.metrics
    assert ((p.posterior_mean >= 0) & (p.posterior_mean <= res.codec.values.max().item())).all()
    reg = train(tiny_config(train__epochs=1, train__loss="mse"), pools)
    ev = evaluate(reg.model, reg.codec, pools, reg.sets, "sum")  # a regressor has one prediction
    assert "posterior_mean" not in ev.predictions and "test/mean_mse" not in ev.metrics


def test_predict_restores_training_mode(pools):
    res = train(tiny_config(train__epochs=1), pools)
    res.model.train()
    predict(res.model, res.codec, pools, res.sets.valid)
    assert res.model.training


# --- it learns --------------------------------------------------------------------------------------
# Classification over the 28 sums of 1..3 digits learns much faster than regression here (MSE,
# standardized or not, sat at ~0.45 exact after the same budget). About 1.5 s per epoch on 2 idle
# cores; seeds 0, 1, 2 reached test exact 0.68-0.75 (chance: ~0.1).
LEARNING = {
    "train__task": "sum",
    "train__loss": "classify",
    "data__max_len": 3,
    "data__train_size": 4000,
    "data__valid_size": 500,
    "data__test_size": 1000,
    "model__conv_channels": [8],
    "model__conv_kernels": [5],
    "model__gru_hidden": [64],
    "model__activation": "relu",
    "model__dropout": 0.0,
    "train__optimizer": "adam",
    "train__lr": 3e-3,
    "train__batch_size": 32,
    "train__epochs": 8,
}


@pytest.mark.slow  # about a minute of training on an idle 2-core box
def test_sum_is_learned_on_held_out_digits(pools):
    cfg = tiny_config(**LEARNING)
    t0 = time.process_time()
    res = train(cfg, pools)
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "sum")
    cpu = time.process_time() - t0
    print(f"learning test: test exact {ev.metrics['test/exact']:.3f}, {cpu:.0f} s CPU")
    assert res.status == "ok"
    assert ev.metrics["test/exact"] >= 0.5
    assert ev.metrics["test/len=1/exact"] > ev.metrics["test/len=3/exact"]  # longer sums are harder
