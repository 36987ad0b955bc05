"""Digit-tuple sampling (seqsum/sampling.py): balance makes targets near-uniform per length, held-out
pairs never appear, images match their digits, and the draws are reproducible from a CPU generator."""

from __future__ import annotations

import pytest
import torch

from seqsum.holdout import parse_holdout
from seqsum.sampling import TupleSampler, contains_pair, digit_tuples, pick_images, tuple_values
from seqsum.targets import target


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_parse_holdout():
    assert parse_holdout([[9, 9], [7, 3], [3, 7]]) == ((3, 7), (9, 9))
    r = parse_holdout("random:0.1", seed=1)
    assert len(r) == 6 and r == parse_holdout("random:0.1", seed=1) and r != parse_holdout("random:0.1", seed=2)
    for bad in ([[9, 10]], [[1]], "random:0", "random:x", "all", [[True, 1]]):
        with pytest.raises(ValueError):
            parse_holdout(bad)


def test_contains_pair():
    t = torch.tensor([[9, 1, 9], [9, 1, 2], [3, 7, 0], [7, 0, 0]])
    assert contains_pair(t, [(9, 9)]).tolist() == [True, False, False, False]
    assert contains_pair(t, [(3, 7)]).tolist() == [False, False, True, False]


def _share_of_most_common_target(task, digits, lengths):
    values = target(task, digits, lengths)
    out = {}
    for L in lengths.unique().tolist():
        v = values[lengths == L]
        out[L] = v.unique(return_counts=True)[1].max().item() / len(v)
    return out


@pytest.mark.parametrize("task", ["sum", "product"])
def test_balance_moves_the_target_distribution_toward_uniform(task):
    n = 20_000
    plain = TupleSampler(task, 1, 4, "none").sample(n, _gen())
    bal = TupleSampler(task, 1, 4, "target").sample(n, _gen())
    top_plain = _share_of_most_common_target(task, *plain)
    top_bal = _share_of_most_common_target(task, *bal)
    for L in (2, 3, 4):
        n_values = len(tuple_values(task, digit_tuples(L)).unique())
        assert top_bal[L] < top_plain[L]
        assert top_bal[L] < 3.0 / n_values  # near uniform over the achievable values
    # product: 0 is about 34% of length-4 sequences without balance, about 1/226 with it
    if task == "product":
        v = target(task, *bal)[bal[1] == 4]
        assert (v == 0).float().mean() < 0.02


def test_held_out_pairs_never_appear_and_lengths_stay_uniform():
    holdout = parse_holdout([[9, 9], [3, 7]])
    digits, lengths = TupleSampler("product", 1, 4, "target", holdout).sample(20_000, _gen())
    real = [d[:L].tolist() for d, L in zip(digits, lengths)]
    assert not any(s.count(9) >= 2 or (3 in s and 7 in s) for s in real)
    assert any(9 in s for s in real) and any(3 in s for s in real)  # the digits themselves still appear
    counts = torch.bincount(lengths, minlength=5)[1:].float() / len(lengths)
    assert torch.all((counts - 0.25).abs() < 0.02)


def test_same_generator_state_same_draws():
    s = TupleSampler("sum", 1, 3, "target")
    a, b = s.sample(500, _gen(3)), s.sample(500, _gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_pick_images_matches_digits():
    labels = torch.arange(200) % 10
    pool = torch.arange(50, 200)
    digits = torch.randint(0, 10, (300, 4), generator=_gen())
    idx = pick_images(labels, pool, digits, _gen(1))
    assert torch.equal(labels[idx], digits)
    assert bool(torch.isin(idx, pool).all())
    with pytest.raises(ValueError, match="digit"):
        pick_images(labels, pool[labels[pool] != 5], digits, _gen())
