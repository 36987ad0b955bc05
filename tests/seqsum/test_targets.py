"""Targets (sum, product over the real steps) and the three loss codecs (mse, log, classify)."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqsum.config import RunConfig
from seqsum.errors import ConfigError
from seqsum.targets import (
    ClassifyCodec,
    LogCodec,
    MseCodec,
    achievable_values,
    make_codec,
    target,
    value_stats,
)

# Three sequences padded to T=4; padded steps hold garbage digits that must be ignored.
DIGITS = torch.tensor([[3, 0, 7, 9], [5, 6, 9, 9], [0, 9, 9, 9], [9, 9, 9, 9]])
LENGTHS = torch.tensor([4, 2, 1, 4])


def test_sum_over_real_steps_only():
    assert target("sum", DIGITS, LENGTHS).tolist() == [19.0, 11.0, 0.0, 36.0]


def test_product_over_real_steps_only_with_digit_zero():
    assert target("product", DIGITS, LENGTHS).tolist() == [0.0, 30.0, 0.0, 6561.0]
    # one digit: the digit itself; the padding (ones) never changes a product
    one = torch.tensor([[7, 0, 0, 0]])
    assert target("product", one, torch.tensor([1])).item() == 7.0


def test_targets_are_float64():
    assert target("sum", DIGITS, LENGTHS).dtype == torch.float64
    assert target("product", DIGITS, LENGTHS).dtype == torch.float64


def test_unknown_task():
    with pytest.raises(ConfigError, match="'divide'.*sum, product"):
        target("divide", DIGITS, LENGTHS)


def brute_force_values(task: str, max_len: int) -> set[int]:
    out = set()
    for n in range(1, max_len + 1):
        for ds in itertools.product(range(10), repeat=n):
            out.add(sum(ds) if task == "sum" else int(torch.tensor(ds).prod()))
    return out


def test_product_classes_for_four_digits():
    values = achievable_values("product", 4)
    assert len(values) == 226
    assert values[0] == 0 and values[-1] == 6561
    assert list(values) == sorted(set(values))
    assert 2401 in values and 11 not in values and 6560 not in values


def test_sum_classes_for_four_digits():
    assert achievable_values("sum", 4) == tuple(range(37))


@pytest.mark.parametrize("task", ["sum", "product"])
@pytest.mark.parametrize("max_len", [1, 2, 4])
def test_achievable_values_match_brute_force(task, max_len):
    assert set(achievable_values(task, max_len)) == brute_force_values(task, max_len)


@pytest.mark.parametrize("task", ["sum", "product"])
def test_value_stats_are_exact_under_uniform_lengths_and_digits(task):
    # average over lengths 1..3 (uniform), digits uniform 0..9
    per_len = []
    for n in range(1, 4):
        vals = torch.tensor(
            [
                float(sum(ds) if task == "sum" else torch.tensor(ds).prod())
                for ds in itertools.product(range(10), repeat=n)
            ],
            dtype=torch.float64,
        )
        per_len.append((vals.mean(), (vals**2).mean()))
    m = sum(a for a, _ in per_len) / 3
    m2 = sum(b for _, b in per_len) / 3
    mean, std = value_stats(task, 1, 3)
    assert mean == pytest.approx(m.item(), rel=1e-12)
    assert std == pytest.approx((m2 - m * m).sqrt().item(), rel=1e-12)


ALL_PRODUCTS = torch.tensor(achievable_values("product", 4), dtype=torch.float64)


@pytest.mark.parametrize("standardize", [False, True])
def test_mse_round_trip(standardize):
    cfg = RunConfig().replace({"train.task": "product", "train.loss": "mse", "train.standardize": standardize})
    codec = make_codec(cfg.train, cfg.data)
    assert isinstance(codec, MseCodec) and codec.out_dim == 1
    enc = codec.encode(ALL_PRODUCTS)
    dec = codec.decode(enc[:, None].float())
    assert torch.equal(dec.round(), ALL_PRODUCTS)
    assert torch.allclose(dec, ALL_PRODUCTS, rtol=1e-6, atol=1e-3)
    if standardize:
        mean, std = value_stats("product", 1, 4)
        assert (codec.mean, codec.std) == (mean, std)
        assert torch.allclose(enc, (ALL_PRODUCTS - mean) / std)
        assert enc.abs().max() < 20  # vs 6561 raw
    else:
        assert torch.equal(enc, ALL_PRODUCTS)


def test_log_round_trip_and_nonnegative_decode():
    codec = LogCodec()
    enc = codec.encode(ALL_PRODUCTS)
    assert torch.allclose(enc, torch.log1p(ALL_PRODUCTS))
    dec = codec.decode(enc[:, None].float())
    assert torch.equal(dec.round(), ALL_PRODUCTS)
    # outputs below log1p(0) decode to 0, huge outputs stay finite
    assert codec.decode(torch.tensor([[-3.0], [1e6]])).tolist()[0] == 0.0
    assert torch.isfinite(codec.decode(torch.tensor([[1e6]]))).all()


@pytest.mark.parametrize("task, n", [("sum", 37), ("product", 226)])
def test_classify_round_trip(task, n):
    cfg = RunConfig().replace({"train.task": task, "train.loss": "classify"})
    codec = make_codec(cfg.train, cfg.data)
    assert isinstance(codec, ClassifyCodec) and codec.out_dim == n
    values = torch.tensor(achievable_values(task, 4), dtype=torch.float64)
    idx = codec.encode(values)
    assert idx.tolist() == list(range(n))
    logits = torch.nn.functional.one_hot(idx, n).float() * 5
    assert torch.equal(codec.decode(logits), values)


def test_the_posterior_mean_is_the_distributions_mean_not_its_mode():
    codec = ClassifyCodec((0, 2, 4))
    out = torch.tensor([[0.0, 0.0, 0.0], [-100.0, 1.0, 1.0], [-100.0, 5.0, -100.0]]).log_softmax(1)
    assert codec.mean(out).tolist() == pytest.approx([2.0, 3.0, 2.0])  # uniform; half 2, half 4; sure of 2
    assert codec.decode(out)[1] in (2.0, 4.0)  # the mode is one of them: squared error 1 where the mean's is 0


def test_classify_rejects_values_outside_the_class_set():
    codec = ClassifyCodec(achievable_values("product", 2))
    with pytest.raises(ValueError):
        codec.encode(torch.tensor([11.0]))  # prime > 9: no product of digits
    with pytest.raises(ValueError):
        codec.encode(torch.tensor([6561.0]))  # needs 4 digits, beyond the set


def test_classify_classes_cover_the_extrapolation_lengths():
    cfg = RunConfig().replace({"train.task": "product", "train.loss": "classify", "data.eval_max_len": 5})
    codec = make_codec(cfg.train, cfg.data)
    assert codec.out_dim == len(achievable_values("product", 5)) > 226
    assert codec.encode(torch.tensor([9.0**5])).item() == codec.out_dim - 1


def test_losses_are_zero_at_the_encoding_and_positive_elsewhere():
    values = torch.tensor([0.0, 12.0, 36.0], dtype=torch.float64)
    for codec in (MseCodec(), MseCodec(18.0, 8.0), LogCodec()):
        perfect = codec.encode(values)[:, None].float()
        assert codec.loss(perfect, values).item() == pytest.approx(0.0, abs=1e-10)
        assert codec.loss(perfect + 1, values).item() == pytest.approx(1.0, rel=1e-5)
    codec = ClassifyCodec(achievable_values("sum", 4))
    right = torch.nn.functional.one_hot(codec.encode(values), 37).float() * 20
    wrong = torch.roll(right, 1, dims=1)
    assert codec.loss(right, values) < 1e-6 < 10 < codec.loss(wrong, values)


def test_make_codec_unknown_loss():
    cfg = RunConfig()
    bad = cfg.train.__class__(loss="mse")
    object.__setattr__(bad, "loss", "hinge")  # bypass validation on purpose
    with pytest.raises(ConfigError, match="'hinge'"):
        make_codec(bad, cfg.data)
