"""The NAU paper's protocol as config values: data.digits (the digits sequences draw from), the sparsity
regulariser's shape, R_z, the solved-accumulator reference, the nmu-paper presets and the paper's success
criterion (seqsum/paper_success.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seqsum.config import RunConfig
from seqsum.config_checks import digits_problem
from seqsum.data import eval_sets, sample
from seqsum.evaluate import evaluate
from seqsum.heads import NAU, NMU, ArithmeticHead
from seqsum.memory import check_memory
from seqsum.paper_success import main as success_main
from seqsum.paper_success import success, threshold
from seqsum.targets import achievable_values, make_codec, value_stats
from seqsum.train import train
from seqsum.train_data import tuple_sampler
from study.config import load_preset
from tests.helpers import run_cli, tiny_config

NO_ZERO = list(range(1, 10))


# --- data.digits --------------------------------------------------------------------------------------------
def _real_digits(seqs) -> set[int]:
    return set(seqs.digits[seqs.mask].tolist())


@pytest.mark.parametrize("balance", ["none", "target"])
def test_every_drawn_sequence_holds_only_the_allowed_digits(pools, balance):
    seen = []
    cfg = tiny_config(train__task="product", data__digits=NO_ZERO, data__balance=balance, data__eval_max_len=6)
    res = train(cfg, pools, on_batch=seen.append)
    for b in seen:
        assert _real_digits(b) == set(NO_ZERO)  # every allowed digit shows up, 0 never
        assert torch.equal(pools.labels[b.idx.cpu()] * b.mask, b.digits)  # the images show those digits
    for seqs in (res.sets.valid, res.sets.test):
        assert _real_digits(seqs) <= set(NO_ZERO) and 0 not in _real_digits(seqs)
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "product")
    assert len(ev.pairs) == 81 and ev.pairs.a.min() == 1 and ev.pairs.b.min() == 1  # no cell with a 0: absent
    assert not math.isnan(ev.metrics["pairs/9x9/exact"])


def test_a_grid_without_nine_has_no_nine_by_nine_cell(pools):
    cfg = tiny_config(data__digits=[0, 1, 2], train__epochs=1)
    res = train(cfg, pools)
    ev = evaluate(res.model, res.codec, res.pools, res.sets, "sum")
    assert len(ev.pairs) == 9 and set(ev.pairs.a) == {0, 1, 2}
    assert math.isnan(ev.metrics["pairs/9x9/exact"]) and 0 <= ev.metrics["pairs/exact"] <= 1


def test_all_ten_digits_draw_exactly_what_was_drawn_before(pools):
    """The default (and all ten in any order) leaves the pools unfiltered: the same draws as without the key."""
    gen = lambda: torch.Generator().manual_seed(3)
    plain = sample(pools, pools.train, 300, 1, 4, gen())
    for digits in (tuple(range(10)), tuple(reversed(range(10)))):
        again = sample(pools, pools.train, 300, 1, 4, gen(), digits=digits)
        assert torch.equal(plain.idx, again.idx) and torch.equal(plain.digits, again.digits)
    a = eval_sets(pools, RunConfig().data)
    b = eval_sets(pools, RunConfig().replace({"data.digits": list(range(9, -1, -1))}).data)
    assert torch.equal(a.test.idx, b.test.idx) and torch.equal(a.pairs.idx, b.pairs.idx)


def test_classes_and_enumerations_follow_the_digits():
    assert achievable_values("sum", 2, (1, 2)) == (1, 2, 3, 4)
    two = achievable_values("product", 2, tuple(NO_ZERO))
    assert 0 not in two and set(two) == set(NO_ZERO) | {a * b for a in NO_ZERO for b in NO_ZERO}
    assert achievable_values("sum", 3) == tuple(range(28))  # all ten: as before
    cfg = RunConfig().replace({"train.task": "product", "train.loss": "classify", "data.digits": NO_ZERO})
    assert make_codec(cfg.train, cfg.data).out_dim == len(achievable_values("product", 4, tuple(NO_ZERO)))
    s = tuple_sampler(cfg.replace({"data.balance": "target"}))
    assert all(bool((t > 0).all()) for t in s.tuples)
    assert len(s.tuples[1]) == 81  # the 9 x 9 length-2 tuples
    # standardizing: the exact moments of uniform allowed digits; all ten keep the old 4.5 / 28.5 formulas
    mean, std = value_stats("sum", 1, 1, (1, 2, 3))
    assert mean == pytest.approx(2.0) and std == pytest.approx(math.sqrt(2 / 3))
    mean, _ = value_stats("product", 2, 2)
    assert mean == pytest.approx(4.5**2)


def test_digits_problems_name_the_value_and_what_is_allowed():
    assert digits_problem(tuple(NO_ZERO)) is None
    for bad, words in [((), "non-empty"), ((3, 3), "repeats [3]"), ((1, 12), "12, which is no digit")]:
        msg = digits_problem(bad)
        assert words in msg and "distinct digits 0..9" in msg and "\n" not in msg


def test_bad_digits_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--smoke", "--out", out, "--set", "data.digits=[1, 1]")
    assert code == 2 and "data.digits repeats [1]" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_holdout_counts_only_the_allowed_digits():
    """With only 9 allowed, holding out (9, 9) leaves no training sequence of length 2."""
    with pytest.raises(Exception, match="max_len <= 1"):
        RunConfig().replace({"data.digits": [9], "data.holdout": [[9, 9]], "data.max_len": 2})
    RunConfig().replace({"data.digits": [8, 9], "data.holdout": [[9, 9]], "data.max_len": 4})


# --- the units: sparsity shape, R_z, the solved accumulator ---------------------------------------------------
def test_the_linear_sparsity_shape_is_the_distance_to_the_nearest_solution():
    nmu, nau = NMU(2, 1), NAU(2, 1)
    with torch.no_grad():
        nmu.W.copy_(torch.tensor([[0.3, 0.9]]))
        nau.W.copy_(torch.tensor([[-0.3, 0.9]]))
    assert nmu.regularizer("linear").item() == pytest.approx((0.3 + 0.1) / 2)
    assert nau.regularizer("linear").item() == pytest.approx((0.3 + 0.1) / 2)
    assert nmu.regularizer().item() == pytest.approx((0.09 * 0.49 + 0.81 * 0.01) / 2)  # squared, the default
    for W in ([[0.0, 1.0]], [[1.0, 1.0]]):
        with torch.no_grad():
            nmu.W.copy_(torch.tensor(W))
        assert nmu.regularizer("linear").item() == 0 and nmu.regularizer().item() == 0


def test_rz_uses_the_mean_unit_input_over_the_real_steps_of_the_batch():
    head = ArithmeticHead("nmu", 1)
    with torch.no_grad():
        head.digit.weight.fill_(1.0)
        head.digit.bias.zero_()
        head.unit.W.copy_(torch.tensor([[0.5, 0.25]]))
    feats = torch.tensor([[[2.0], [3.0]], [[4.0], [100.0]]])  # (T=2, B=2, 1); the second row has length 1
    mask = torch.tensor([[True, True], [True, False]])
    head.train()
    out = head(feats, mask)
    # real steps: (x, h) = (2, 1), (3, 1), (4, h1 of row 0)
    h1 = out[0, 0, 0].item()
    x_bar = torch.tensor([(2 + 3 + 4) / 3, (1 + 1 + h1) / 3])
    assert torch.allclose(head.x_bar, x_bar)
    want = ((1 - torch.tensor([0.5, 0.25])) * (1 - x_bar) ** 2).mean()
    assert head.penalty(0.0, rz=2.0).item() == pytest.approx(2 * want.item(), rel=1e-6)
    nau = NAU(2, 1)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[-0.5, 1.0]]))
    assert nau.rz(torch.tensor([2.0, 3.0])).item() == pytest.approx(0.5 * 4 / 2)


def test_the_penalty_without_rz_is_exactly_the_ramped_sparsity_term():
    head = ArithmeticHead("nau", 3)
    assert torch.equal(head.penalty(0.7), 0.7 * head.regularizer())
    assert head.penalty(0.0).item() == 0


@pytest.mark.parametrize("kind, op", [("nau", torch.add), ("nmu", torch.mul)])
def test_the_solved_accumulator_is_the_exact_operator_and_never_trains(pools, kind, op):
    head = ArithmeticHead(kind, 1, solved=True)
    assert torch.equal(head.unit.W, torch.ones(1, 2)) and not head.unit.W.requires_grad
    with torch.no_grad():
        head.digit.weight.fill_(1.0)
        head.digit.bias.zero_()
    x = torch.tensor([[[3.0]], [[7.0]], [[2.0]]])  # (T=3, B=1, 1)
    out = head(x, torch.ones(3, 1, dtype=torch.bool))[:, 0, 0]
    assert out.tolist() == [3.0, op(torch.tensor(3.0), 7.0).item(), op(op(torch.tensor(3.0), 7.0), 2.0).item()]
    task = "sum" if kind == "nau" else "product"
    cfg = tiny_config(model__head=kind, train__task=task, model__accumulator="solved", train__rz=1.0)
    res = train(cfg.replace({"train.sparsity_shape": "linear", "train.sparsity_ramp": [0, 2]}), pools)
    assert res.status == "ok" and torch.equal(res.model.head.unit.W, torch.ones(1, 2))


def test_rz_changes_training_only_through_its_term(pools):
    cfg = tiny_config(model__head="nmu", train__task="product", data__digits=NO_ZERO, train__sparsity=0.0)
    a = train(cfg, pools)
    b = train(cfg.replace({"train.rz": 50.0}), pools)
    assert a.history[0]["train/loss"] != b.history[0]["train/loss"]
    assert not torch.equal(a.model.head.unit.W, b.model.head.unit.W)
    again = train(cfg.replace({"train.sparsity_shape": "linear"}), pools)  # sparsity 0: the shape is inert
    assert again.history[-1]["train/loss"] == a.history[-1]["train/loss"]


# --- the presets and the success criterion ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, task, digits, train_len, test_len",
    [("nmu-paper-product", "product", NO_ZERO, 2, 20), ("nmu-paper-sum", "sum", list(range(10)), 10, 100)],
)
def test_the_paper_presets_set_its_protocol(name, task, digits, train_len, test_len):
    cfg = load_preset(name)
    assert cfg.what.tasks == (task,) and cfg.how.scheduler == "fifo"
    runs = [cfg.run_config(task, p) for p in cfg.first_points()]
    assert {r.model.accumulator for r in runs} == {"learned", "solved"}
    for r in runs:
        d, m, t = r.data, r.model, r.train
        assert list(d.digits) == digits and d.min_len == d.max_len == train_len and d.test_max_len == test_len
        assert m.head == ("nmu" if task == "product" else "nau") and m.outputs == "every_step"
        assert (t.optimizer, t.lr, t.batch_size, t.loss, t.precision) == ("adam", 1e-3, 64, "mse", "fp32")
        assert (t.sparsity, t.sparsity_shape) == (10.0, "linear")
        check_memory(r.replace({"train.epochs": 40}))  # the replicates' budget fits this machine


def _summary(mse: dict[int, float], exact: float = 0.5) -> dict:
    out = {"status": "ok"}
    for L, v in mse.items():
        out.update({f"test/len={L}/mse": v, f"test/len={L}/exact": exact})
    return out


def test_success_is_an_mse_below_the_references_upper_bound():
    assert threshold([4.0]) == 4.0
    ref = [1.0, 2.0, 3.0]  # mean 2, sd 1, t_{0.99, 2} = 6.965
    assert threshold(ref) == pytest.approx(2 + 6.964557 / math.sqrt(3), rel=1e-5)
    rows = success([_summary({1: 1.0, 2: 100.0}), _summary({1: 5.0, 2: 1.0})], [_summary({1: 2.0, 2: 3.0})])
    assert [(r["length"], r["success"], r["solved_seeds"]) for r in rows] == [(1, 0.5, 1), (2, 0.5, 1)]


def _write_run(folder, cfg: RunConfig, summary: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    (folder / "summary.json").write_text(json.dumps(summary))


def test_success_report_groups_run_folders_into_arms(tmp_path, capsys):
    base = RunConfig().replace({"model.head": "nmu", "train.task": "product", "train.loss": "mse"})
    for seed, mse in enumerate([1.0, 9.0]):
        _write_run(tmp_path / f"learned{seed}", base.replace({"train.seed": seed}), _summary({1: mse}))
    for seed, mse in enumerate([2.0, 2.0]):
        solved = base.replace({"train.seed": seed, "model.accumulator": "solved"})
        _write_run(tmp_path / f"solved{seed}", solved, _summary({1: mse}))
    out = tmp_path / "success.json"
    assert success_main([str(tmp_path), "--json", str(out)]) == 0
    (arm,) = json.loads(out.read_text())
    assert arm["reference_seeds"] == 2 and arm["rows"][0]["success"] == 0.5
    assert arm["seeds"] == [0, 1]  # what the learned arm ran, and its budget from config.json
    d, t = base.data, base.train
    assert arm["budget"]["steps"] == t.epochs * math.ceil(d.train_size / t.batch_size)
    assert arm["budget"]["train_lengths"] == [d.min_len, d.max_len]
    assert "success" in capsys.readouterr().out
    assert success_main([str(tmp_path), "--json", str(out)]) == 2  # nothing is overwritten
    assert success_main([str(tmp_path / "learned0")]) == 2  # no solved reference: one line, exit 2
    assert "solved" in capsys.readouterr().err


def test_the_constant_baselines_draw_from_the_allowed_digits(pools):
    from analysis.baselines import training_constants

    data = RunConfig().replace({"data.digits": [5], "data.min_len": 2, "data.max_len": 2}).data
    assert training_constants(pools, data, "sum") == (10.0, 10.0)
