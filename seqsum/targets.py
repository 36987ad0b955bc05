"""Tasks (sum, product of the digits) and one Codec per loss family.

A Codec turns target values into what the network is trained on (`encode`, `loss`) and the
network's output back into values (`decode`), so every model is scored the same way: in value
space, by `seqsum.evaluate`.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

from .choices import ALL_DIGITS
from .config import DataConfig, TrainConfig
from .digits import is_all, moments
from .errors import ConfigError


def target(task: str, digits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) digits, (B,) lengths -> (B,) float64 sum or product over the real steps."""
    mask = torch.arange(digits.shape[1], device=digits.device) < lengths[:, None]
    d = digits.to(torch.float64)
    if task == "sum":
        return (d * mask).sum(1)
    if task == "product":
        return torch.where(mask, d, torch.ones_like(d)).prod(1)
    raise ConfigError(f"unknown task {task!r}; allowed: sum, product")


def running_target(task: str, digits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) digits, (B,) lengths -> (B, T) float64 running sum or product after every step; padded
    steps keep the last real step's value (so column lengths - 1 is `target`)."""
    mask = torch.arange(digits.shape[1], device=digits.device) < lengths[:, None]
    d = digits.to(torch.float64)
    if task == "sum":
        return (d * mask).cumsum(1)
    if task == "product":
        return torch.where(mask, d, torch.ones_like(d)).cumprod(1)
    raise ConfigError(f"unknown task {task!r}; allowed: sum, product")


@cache
def achievable_values(task: str, max_len: int, digits: tuple[int, ...] = ALL_DIGITS) -> tuple[int, ...]:
    """Every value the task can produce from 1..max_len of `digits` (data.digits), sorted."""
    if task == "sum" and is_all(digits):
        return tuple(range(9 * max_len + 1))
    combine = (lambda v, d: v + d) if task == "sum" else (lambda v, d: v * d)
    values = {0} if is_all(digits) else set()
    layer = set(digits)
    values |= layer
    for _ in range(max_len - 1):
        layer = {combine(v, d) for v in layer for d in digits}
        values |= layer
    return tuple(sorted(values))


def value_stats(task: str, min_len: int, max_len: int, digits: tuple[int, ...] = ALL_DIGITS) -> tuple[float, float]:
    """Mean and std of the target under uniform lengths and uniform digits of `digits` (exact, for
    standardizing); mu = E[d], s = E[d^2] (4.5 and 28.5 for all ten digits)."""
    mu, s = moments(digits)
    ls = range(min_len, max_len + 1)
    if task == "sum":
        # E[sum | L] = mu L, Var[sum | L] = (s - mu^2) L
        m = sum(mu * k for k in ls) / len(ls)
        m2 = sum((s - mu * mu) * k + (mu * k) ** 2 for k in ls) / len(ls)
    else:
        # E[prod | L] = mu^L, E[prod^2 | L] = s^L
        m = sum(mu**k for k in ls) / len(ls)
        m2 = sum(s**k for k in ls) / len(ls)
    return m, math.sqrt(max(m2 - m * m, 1e-12))


class Codec:
    """Encode values for a loss, compute that loss on raw network outputs, decode outputs to values."""

    out_dim: int = 1

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, out: torch.Tensor, values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss of raw outputs `out` (B, out_dim) against (B,) target values; `weight` (B,) weighs
        each sequence's term (train.class_weight)."""
        if weight is None:
            return F.mse_loss(out[:, 0], self.encode(values).to(out.dtype))
        return _weighted((out[:, 0] - self.encode(values).to(out.dtype)) ** 2, weight)


def _weighted(per_item: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (per_item * weight.to(per_item.dtype)).mean()


class MseCodec(Codec):
    def __init__(self, mean: float = 0.0, std: float = 1.0):
        self.mean, self.std = mean, std

    def encode(self, values):
        return (values - self.mean) / self.std

    def decode(self, out):
        return out[:, 0].double() * self.std + self.mean


class LogCodec(Codec):
    def encode(self, values):
        return torch.log1p(values)

    def decode(self, out):
        return torch.expm1(out[:, 0].double().clamp(max=30.0)).clamp(min=0.0)


class ClassifyCodec(Codec):
    def __init__(self, values: tuple[int, ...]):
        self.classes = tuple(values)  # the values, as ints (the exact head computes a distribution over them)
        self.values = torch.tensor(values, dtype=torch.float64)
        self.out_dim = len(values)

    def encode(self, values):
        v = self.values.to(values.device)
        i = torch.searchsorted(v, values.double())
        if (i >= len(v)).any() or (v[i.clamp(max=len(v) - 1)] != values).any():
            raise ValueError("a target value outside the class set")
        return i

    def decode(self, out):
        return self.values.to(out.device)[out.argmax(1)]

    def mean(self, out):
        """The mean of the predicted distribution over the values: the prediction with the least expected
        squared error (`*/mean_mse`), where decode's argmax is the one most often exact."""
        return out.double().softmax(1) @ self.values.to(out.device)

    def loss(self, out, values, weight=None):
        if weight is None:
            return F.cross_entropy(out, self.encode(values))
        return _weighted(F.cross_entropy(out, self.encode(values), reduction="none"), weight)


class ValueCodec(Codec):
    """An arithmetic head's output is the value itself: mse on it, or (loss log) on its symmetric log
    sign(x) log(1 + |x|), which is log1p for the non-negative values the tasks produce."""

    def __init__(self, log: bool = False):
        self.log = log

    def encode(self, values):
        return torch.log1p(values) if self.log else values

    def decode(self, out):
        return out[:, 0].double()

    def loss(self, out, values, weight=None):
        x = out[:, 0]
        if self.log:
            x = torch.sign(x) * torch.log1p(x.abs())
        sq = (x - self.encode(values).to(out.dtype)) ** 2
        return sq.mean() if weight is None else _weighted(sq, weight)


def make_codec(train: TrainConfig, data: DataConfig, head: str = "dense") -> Codec:
    if head in ("nau", "nmu"):  # config validation allows only mse and log here (exact: classify only)
        return ValueCodec(log=train.loss == "log")
    if train.loss == "mse":
        if train.standardize:
            return MseCodec(*value_stats(train.task, data.min_len, data.max_len, data.digits))
        return MseCodec()
    if train.loss == "log":
        return LogCodec()
    if train.loss == "classify":
        # Cover the test lengths too, so extrapolated targets have a class.
        return ClassifyCodec(achievable_values(train.task, data.test_max_len, data.digits))
    raise ConfigError(f"unknown loss {train.loss!r}; allowed: mse, log, classify")
