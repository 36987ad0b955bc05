"""What a run trains on: the training-side switches that change it: which sequences are drawn
(`data.balance`, `data.holdout`), how each one's loss is weighed (`train.class_weight`), and which part of
the training pool is used (`data.train_images`).

With the defaults (balance none, no holdout) training sequences come from `seqsum.data.sample`, exactly
as before these switches existed; otherwise from `seqsum.sampling.TupleSampler` (digit tuples first, then
an image of every digit from the pool), drawn from the same CPU generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import RunConfig
from .data import Pools, Sequences, sample
from .errors import ConfigError
from .holdout import parse_holdout
from .sampling import TupleSampler, pick_images

Draw = Callable[[torch.Generator], Sequences]


def holdout_pairs(cfg: RunConfig) -> tuple[tuple[int, int], ...]:
    """data.holdout as sorted unordered pairs ("random:F" seeded by data.split_seed)."""
    return parse_holdout(cfg.data.holdout, cfg.data.split_seed)


def tuple_sampler(cfg: RunConfig) -> TupleSampler:
    d = cfg.data
    return TupleSampler(cfg.train.task, d.min_len, d.max_len, d.balance, holdout_pairs(cfg), d.digits)


def training_draw(cfg: RunConfig, pools: Pools) -> Draw:
    """gen -> one epoch's training sequences (data.train_size of them), on the images' device."""
    d = cfg.data
    if d.balance == "none" and not d.holdout:
        return lambda gen: sample(pools, pools.train, d.train_size, d.min_len, d.max_len, gen, digits=d.digits)
    sampler = tuple_sampler(cfg)

    def draw(gen: torch.Generator) -> Sequences:
        digits, lengths = sampler.sample(d.train_size, gen)
        try:
            idx = pick_images(pools.labels, pools.train, digits, gen)
        except ValueError as e:
            raise ConfigError(f"training pool ({len(pools.train)} images): {e}; use more data.train_images") from None
        return Sequences(idx, lengths, digits).to(pools.device)

    return draw


def class_weights(cfg: RunConfig) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """train.class_weight inverse_frequency: values -> weights 1 / (K p(value)), p the exact distribution of
    the training targets (of every step with model.outputs every_step) and K its number of values, so the
    weights average 1 over the training distribution. None for class_weight none."""
    if cfg.train.class_weight == "none":
        return None
    values, probs = tuple_sampler(cfg).distribution(every_step=cfg.model.outputs == "every_step")
    table = 1.0 / (len(values) * probs)

    def weigh(v: torch.Tensor) -> torch.Tensor:
        vals, tab = values.to(v.device), table.to(v.device)
        i = torch.searchsorted(vals, v.double()).clamp(max=len(vals) - 1)
        return torch.where(vals[i] == v, tab[i], torch.zeros_like(tab[i]))

    return weigh


def subset_train_pool(pools: Pools, cfg: RunConfig) -> Pools:
    """data.train_images N: the first N of a split_seed-seeded permutation of the training pool (nested:
    a smaller N is a subset of a larger one). Unchanged when null."""
    n = cfg.data.train_images
    if n is None:
        return pools
    if n > len(pools.train):
        raise ConfigError(
            f"data.train_images={n} is more than the training pool holds ({len(pools.train)} images of "
            f"{pools.source}); allowed: 10..{len(pools.train)} or null"
        )
    perm = torch.randperm(len(pools.train), generator=torch.Generator().manual_seed(cfg.data.split_seed + 7))
    train = pools.train.cpu()[perm[:n]].sort().values
    missing = sorted(set(cfg.data.digits) - set(pools.labels.cpu()[train].tolist()))
    if missing:
        raise ConfigError(
            f"data.train_images={n}: the subset has no image of digit(s) {missing}; use more training images"
        )
    return Pools(pools.images, pools.labels, train, pools.valid, pools.test, pools.source)
