"""Training sequences chosen by their digits: balanced targets (`data.balance`) and held-out digit pairs
(`data.holdout`).

For a length L there are 10^L digit tuples (10,000 at L = 4). `TupleSampler` enumerates them once, drops
every tuple that contains a held-out pair (any two of its positions) or a digit outside `data.digits`, and
gives each remaining tuple a weight: uniform (`balance: none`, every digit tuple equally likely) or
1 / (number of allowed tuples with the same target) (`balance: target`, every achievable target of that
length equally likely). Lengths stay uniform in min_len..max_len. `pick_images` then draws, for every
digit, a random image of that digit from the pool. All random draws use the CPU generator given, so the
result does not depend on the device.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from itertools import combinations

import torch

from .config import ALL_DIGITS, BALANCES, MAX_TUPLE_LEN  # MAX_TUPLE_LEN: 10^6 tuples, the largest length enumerated
from .digits import allowed_rows

ALL_PAIRS = tuple((a, b) for a in range(10) for b in range(a, 10))  # the 55 unordered digit pairs


def parse_holdout(spec, seed: int = 0) -> tuple[tuple[int, int], ...]:
    """`[[9, 9], [3, 7]]` (order-free), `"random:F"` (a seeded share F of the 55 unordered pairs, at
    least one) or `"none"` (as `[]`) -> sorted unordered pairs. Raises ValueError with what is allowed."""
    if spec is None or spec == [] or spec == () or spec == "none":
        return ()
    if isinstance(spec, str):
        kind, _, frac = spec.partition(":")
        try:
            f = float(frac)
        except ValueError:
            f = -1.0
        if kind != "random" or not 0 < f < 1:
            raise ValueError(
                f"holdout {spec!r}: use a list of digit pairs like [[9, 9]], 'random:F' with 0 < F < 1, or 'none'"
            )
        k = max(1, round(f * len(ALL_PAIRS)))
        return tuple(sorted(random.Random(seed).sample(ALL_PAIRS, k)))
    pairs = set()
    for p in spec if isinstance(spec, (list, tuple)) else [spec]:
        ok = isinstance(p, (list, tuple)) and len(p) == 2
        ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 9 for d in p)
        if not ok:
            raise ValueError(f"holdout pair {p!r}: a pair is two digits 0..9, e.g. [9, 9]")
        pairs.add(tuple(sorted(p)))
    if len(pairs) == len(ALL_PAIRS):
        raise ValueError("holdout holds all 55 digit pairs: nothing of length >= 2 is left to train on")
    return tuple(sorted(pairs))


def longest_free_length(pairs: Iterable[tuple[int, int]], allowed: Iterable[int] = ALL_DIGITS) -> float:
    """The longest tuple of `allowed` digits that holds none of the (sorted) held-out `pairs`: unbounded while
    some (a, a) is allowed (a, a, a, ...), else the most distinct digits no two of which form a held-out pair."""
    held, allowed = set(pairs), sorted(set(allowed))
    if any((a, a) not in held for a in allowed):
        return math.inf
    best = 1
    for mask in range(1, 1 << len(allowed)):
        digits = [d for i, d in enumerate(allowed) if mask >> i & 1]
        if len(digits) > best and not any(p in held for p in combinations(digits, 2)):
            best = len(digits)
    return best


def digit_tuples(length: int) -> torch.Tensor:
    """Every tuple of `length` digits, (10^length, length) int64, in lexicographic order."""
    if not 1 <= length <= MAX_TUPLE_LEN:
        raise ValueError(f"digit tuples are enumerated for lengths 1..{MAX_TUPLE_LEN}, got {length}")
    n = 10**length
    i = torch.arange(n)
    return torch.stack([(i // 10 ** (length - 1 - p)) % 10 for p in range(length)], dim=1)


def contains_pair(tuples: torch.Tensor, pairs: Iterable[tuple[int, int]]) -> torch.Tensor:
    """(M, L) digit tuples -> (M,) bool: some two positions hold one of `pairs` (a pair (a, a) needs two a's)."""
    counts = torch.stack([(tuples == d).sum(1) for d in range(10)], dim=1)  # (M, 10)
    hit = torch.zeros(len(tuples), dtype=torch.bool)
    for a, b in pairs:
        hit |= (counts[:, a] >= 2) if a == b else (counts[:, a] >= 1) & (counts[:, b] >= 1)
    return hit


def tuple_values(task: str, tuples: torch.Tensor) -> torch.Tensor:
    return tuples.sum(1) if task == "sum" else tuples.prod(1)


class TupleSampler:
    """Samples (digits, lengths) of training sequences under a balance rule and held-out pairs."""

    def __init__(self, task: str, min_len: int, max_len: int, balance: str = "none", holdout=(), digits=ALL_DIGITS):
        if balance not in BALANCES:
            raise ValueError(f"unknown balance {balance!r}; allowed: {', '.join(BALANCES)}")
        self.task, self.max_len = task, max_len
        self.lengths = list(range(min_len, max_len + 1))
        self.tuples, self.weights = [], []
        for L in self.lengths:
            t = digit_tuples(L)
            keep = ~contains_pair(t, holdout) & allowed_rows(t, tuple(digits))
            t = t[keep]
            if balance == "target":
                v = tuple_values(task, t)
                _, inverse, counts = v.unique(return_inverse=True, return_counts=True)
                w = 1.0 / counts[inverse].double()
            else:
                w = torch.ones(len(t), dtype=torch.float64)
            self.tuples.append(t)
            self.weights.append(w)

    def distribution(self, every_step: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact distribution of training targets: (values, probabilities), values sorted, float64.

        With `every_step`, of the running values after every digit of every sequence (what a
        model.outputs=every_step loss sees), each sequence counting once per step."""
        values, probs = [], []
        for t, w in zip(self.tuples, self.weights):
            p = w / w.sum() / len(self.lengths)
            for k in range(1, t.shape[1] + 1) if every_step else [t.shape[1]]:
                values.append(tuple_values(self.task, t[:, :k]))
                probs.append(p)
        uniq, inverse = torch.cat(values).unique(return_inverse=True)
        total = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.cat(probs))
        return uniq.double(), total / total.sum()

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> digits (n, max_len) int64 (0 on padded steps), lengths (n,) int64; draws from CPU `gen`."""
        which = torch.randint(0, len(self.lengths), (n,), generator=gen)
        digits = torch.zeros(n, self.max_len, dtype=torch.long)
        lengths = torch.tensor(self.lengths)[which]
        for k, L in enumerate(self.lengths):
            rows = (which == k).nonzero().squeeze(1)
            if len(rows):
                pick = torch.multinomial(self.weights[k], len(rows), replacement=True, generator=gen)
                digits[rows, :L] = self.tuples[k][pick]
        return digits, lengths


def pick_images(labels: torch.Tensor, pool: torch.Tensor, digits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For every digit in `digits` (n, T), a uniformly random image of that digit from `pool` (indices into
    `labels`); CPU tensors in, (n, T) image indices out. Raises ValueError if a needed digit is missing."""
    pool_labels = labels[pool]
    order = pool_labels.argsort(stable=True)
    sorted_pool = pool[order]
    counts = torch.bincount(pool_labels, minlength=10)
    starts = torch.cumsum(counts, 0) - counts
    missing = sorted(set(digits.unique().tolist()) - set((counts > 0).nonzero().squeeze(1).tolist()))
    if missing:
        raise ValueError(f"the pool has no image of digit(s) {missing}")
    u = torch.rand(digits.shape, generator=gen, dtype=torch.float64)
    offset = (u * counts[digits]).long().clamp_max(counts[digits] - 1)
    return sorted_pool[starts[digits] + offset]
