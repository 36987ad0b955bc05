"""MNIST digit pools and seeded sequence sampling.

The digit images come from seqsum.digit_sources (the embedded 5,000 or full MNIST). `make_pools` splits
them into disjoint train / valid / test pools with a seed.

Every random choice of data (the split, training sequences, evaluation sets, the pair grid) is drawn
from a CPU torch.Generator on CPU index tensors, and only the result moves to the training device: a
seed gives the same sequences on the CPU and on CUDA, and a checkpoint's generator state resumes on
either. Only the images live on the training device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .choices import ALL_DIGITS
from .config import DataConfig
from .digit_sources import Digits, load_digits
from .digits import restrict_pool
from .errors import ConfigError
from .holdout import parse_holdout
from .sampling import contains_pair


@dataclass
class Pools:
    """All digit images (on the training device) plus disjoint index sets for train / valid / test.

    Labels and index sets stay on the CPU, where sequences are drawn (see the module docstring)."""

    images: torch.Tensor  # (N, 28, 28) uint8, on the training device
    labels: torch.Tensor  # (N,) int64, CPU
    train: torch.Tensor  # (N_train,) int64 indices into images, CPU
    valid: torch.Tensor  # (N_valid,)
    test: torch.Tensor  # (N_test,)
    source: str = ""

    def to(self, device: torch.device | str) -> Pools:
        """The images on `device`; labels and index sets on the CPU."""
        cpu = (t.cpu() for t in (self.labels, self.train, self.valid, self.test))
        return Pools(self.images.to(device), *cpu, self.source)

    @property
    def device(self) -> torch.device:
        return self.images.device


def make_pools(digits: Digits, cfg: DataConfig) -> Pools:
    """Split the images into disjoint pools; the same split_seed gives the same split."""
    n = len(digits.labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    n_test, n_valid = round(n * cfg.test_frac), round(n * cfg.valid_frac)
    if min(n_test, n_valid, n - n_test - n_valid) < 10:
        raise ConfigError(
            f"{n} digit images are too few to split with valid_frac={cfg.valid_frac}, test_frac={cfg.test_frac}"
        )
    test, valid, train = perm[:n_test], perm[n_test : n_test + n_valid], perm[n_test + n_valid :]
    _test_images_by_digit(digits.labels[test], test, cfg.pairs_per_cell, cfg.digits)  # the pair grid fits
    return Pools(
        digits.images, digits.labels, train.sort().values, valid.sort().values, test.sort().values, digits.source
    )


def _check_every_digit(test_labels: torch.Tensor, digits: tuple[int, ...] = ALL_DIGITS) -> None:
    """The pair grid draws every digit of data.digits from the test pool: all of them must be there."""
    missing = sorted(set(digits) - set(test_labels.tolist()))
    if missing:
        raise ConfigError(
            f"the test pool ({len(test_labels)} images) has no image of digit(s) {missing}; "
            "the pair grid needs every digit of data.digits: use more digit images or a larger test_frac"
        )


def load_pools(cfg: DataConfig) -> Pools:
    return make_pools(load_digits(cfg), cfg)


@dataclass
class Sequences:
    """A set of digit sequences as indices into `Pools.images`, padded to a common length."""

    idx: torch.Tensor  # (B, T) int64 image indices; padded steps hold a real index that is never read
    lengths: torch.Tensor  # (B,) int64, 1..T
    digits: torch.Tensor  # (B, T) int64 digit labels; padded steps hold 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, s) -> Sequences:
        return Sequences(self.idx[s], self.lengths[s], self.digits[s])

    def to(self, device: torch.device | str) -> Sequences:
        return Sequences(self.idx.to(device), self.lengths.to(device), self.digits.to(device))

    @property
    def mask(self) -> torch.Tensor:  # (B, T) bool, True on real steps
        return torch.arange(self.idx.shape[1], device=self.idx.device) < self.lengths[:, None]


def cpu_generator(gen: torch.Generator) -> torch.Generator:
    """`gen`, checked to be a CPU generator: data is drawn on the CPU so it does not depend on the device."""
    if gen.device.type != "cpu":
        raise ValueError(f"sequences are drawn from a CPU torch.Generator, got one on {gen.device}")
    return gen


def sample(
    pools: Pools,
    pool: torch.Tensor,
    n: int,
    min_len: int,
    max_len: int,
    gen: torch.Generator,
    device: torch.device | str | None = None,
    digits: tuple[int, ...] = ALL_DIGITS,
) -> Sequences:
    """n sequences with lengths uniform in min_len..max_len, images drawn with replacement from the images
    of `pool` that show one of `digits` (data.digits; all of `pool` for all ten).

    Drawn on the CPU from the CPU generator `gen`, then moved to `device` (default: the images' device)."""
    cpu_generator(gen)
    labels = pools.labels.cpu()
    pool = restrict_pool(pool.cpu(), labels, digits)
    if not len(pool):
        raise ConfigError(f"the pool has no image of data.digits {list(digits)}; use more digit images")
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)  # (n,)
    pick = torch.randint(0, len(pool), (n, max_len), generator=gen)  # (n, T)
    idx = pool[pick]  # (n, T)
    mask = torch.arange(max_len) < lengths[:, None]
    digits = labels[idx] * mask
    return Sequences(idx, lengths, digits).to(pools.device if device is None else device)


def pair_grid_sequences(
    pools: Pools,
    per_cell: int,
    gen: torch.Generator,
    device: torch.device | str | None = None,
    digits: tuple[int, ...] = ALL_DIGITS,
) -> Sequences:
    """Length-2 test sequences for the pair grid (10x10 for all ten data.digits; a cell only for two allowed
    digits): for every (a, b), `per_cell` distinct ordered pairs (i, j) of test-pool images of a and b (no
    image pair repeats within a cell).

    Drawn on the CPU from `gen`; a cell with fewer than `per_cell` distinct image pairs raises ConfigError."""
    cpu_generator(gen)
    labels, test = pools.labels.cpu(), pools.test.cpu()
    digits = sorted(digits)
    by_digit = _test_images_by_digit(labels[test], test, per_cell, digits)
    k = len(digits)
    idx = torch.empty(k, k, per_cell, 2, dtype=torch.long)
    for i, a in enumerate(digits):
        for j, b in enumerate(digits):
            na, nb = len(by_digit[a]), len(by_digit[b])
            flat = _distinct(na * nb, per_cell, gen)  # (per_cell,) distinct indices into the na x nb pairs
            idx[i, j, :, 0] = by_digit[a][flat // nb]
            idx[i, j, :, 1] = by_digit[b][flat % nb]
    idx = idx.reshape(-1, 2)  # (k * k * per_cell, 2); all ten: cell (a, b) in rows (10 a + b) * per_cell ...
    lengths = torch.full((len(idx),), 2, dtype=torch.long)
    return Sequences(idx, lengths, labels[idx]).to(pools.device if device is None else device)


def _test_images_by_digit(
    test_labels: torch.Tensor, test: torch.Tensor, per_cell: int, digits=ALL_DIGITS
) -> dict[int, torch.Tensor]:
    """Test-pool image indices per digit of `digits`; ConfigError if one is missing or a cell cannot hold
    `per_cell` distinct image pairs (the smallest cell is the rarest digit with itself)."""
    _check_every_digit(test_labels, tuple(digits))
    by_digit = {d: test[test_labels == d] for d in sorted(digits)}
    n, d = min((len(x), d) for d, x in by_digit.items())
    if n * n < per_cell:
        raise ConfigError(
            f"pairs_per_cell={per_cell} is more than cell ({d}, {d}) can hold: the test pool has {n} images of "
            f"digit {d}, so {n * n} distinct image pairs; allowed: pairs_per_cell <= {n * n} "
            "(or use more digit images or a larger test_frac)"
        )
    return by_digit


def _distinct(cap: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """k distinct integers in [0, cap), uniformly at random (k <= cap), drawn from the CPU generator `gen`."""
    if cap <= 65_536 or cap < 8 * k:
        return torch.randperm(cap, generator=gen)[:k]
    seen: dict[int, None] = {}  # insertion-ordered: the first k distinct draws
    while len(seen) < k:
        for v in torch.randint(0, cap, (2 * k,), generator=gen).tolist():
            seen.setdefault(v, None)
    return torch.tensor(list(seen)[:k], dtype=torch.long)


def held_out_rows(digits: torch.Tensor, lengths: torch.Tensor, pairs) -> torch.Tensor:
    """(B,) bool: the sequence holds a held-out pair among its real digits."""
    real = torch.arange(digits.shape[1], device=digits.device) < lengths[:, None]
    return contains_pair(torch.where(real, digits, torch.full_like(digits, -1)).cpu(), pairs)


@dataclass
class EvalSets:
    """The fixed validation, test and pair-grid sequences of a run (same split_seed -> same sets)."""

    valid: Sequences
    test: Sequences
    pairs: Sequences
    holdout: tuple[tuple[int, int], ...] = ()  # data.holdout's pairs: evaluation reports them apart
    train_max_len: int | None = None  # the longest training length: longer test lengths are extrapolated
    drawn_for: DataConfig | None = None  # what decides them (eval_part): a run whose data matches can share them

    def to(self, device: torch.device | str) -> EvalSets:
        moved = (self.valid.to(device), self.test.to(device), self.pairs.to(device))
        return EvalSets(*moved, self.holdout, self.train_max_len, self.drawn_for)

    def fit(self, cfg: DataConfig) -> bool:
        """These are the sets eval_sets(pools, cfg) draws (from the same pools)."""
        return self.drawn_for is not None and self.drawn_for == eval_part(cfg)


def eval_part(cfg: DataConfig) -> DataConfig:
    """`cfg` without the fields that only shape training (how many sequences, which, from which images)."""
    return dataclasses.replace(cfg, train_size=0, balance="none", train_images=None)


def eval_sets(pools: Pools, cfg: DataConfig, device: torch.device | str | None = None) -> EvalSets:
    """The fixed evaluation sequences of `cfg.split_seed`, drawn on the CPU, on `device` (default: the images')."""
    gen = torch.Generator().manual_seed(cfg.split_seed + 1_000_003)
    valid = sample(pools, pools.valid, cfg.valid_size, cfg.min_len, cfg.max_len, gen, device, cfg.digits)
    test = sample(pools, pools.test, cfg.test_size, 1, cfg.test_max_len, gen, device, cfg.digits)
    pairs = pair_grid_sequences(pools, cfg.pairs_per_cell, gen, device, cfg.digits)
    return EvalSets(valid, test, pairs, parse_holdout(cfg.holdout, cfg.split_seed), cfg.max_len, eval_part(cfg))
