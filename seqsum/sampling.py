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

from collections.abc import Iterable

import torch

from .choices import ALL_DIGITS, BALANCES, MAX_TUPLE_LEN  # MAX_TUPLE_LEN: 10^6 tuples, the largest length enumerated
from .digits import allowed_rows


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
