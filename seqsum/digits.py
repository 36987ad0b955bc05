"""`data.digits`: the digits sequences draw from (default all ten; the NAU paper's products use 1..9, since a
single 0 factor zeroes every other factor's gradient).

With all ten digits every function here returns its input unchanged, so the default draws exactly the
sequences it drew before the switch existed. Otherwise the image pools a sequence draws from hold only
images of the allowed digits, the digit tuples that balance/holdout enumerate hold only allowed digits, the
classify classes are the values the allowed digits can produce, and the pair grid has a cell only for two
allowed digits.
"""

from __future__ import annotations

import torch

from .choices import ALL_DIGITS


def is_all(digits: tuple[int, ...]) -> bool:
    return tuple(sorted(digits)) == ALL_DIGITS


def restrict_pool(pool: torch.Tensor, labels: torch.Tensor, digits: tuple[int, ...]) -> torch.Tensor:
    """The indices of `pool` whose image shows one of `digits` (CPU tensors; `pool` itself for all ten)."""
    if is_all(digits):
        return pool
    return pool[torch.isin(labels[pool], torch.tensor(digits, dtype=labels.dtype))]


def allowed_rows(tuples: torch.Tensor, digits: tuple[int, ...]) -> torch.Tensor:
    """(M, L) digit tuples -> (M,) bool: every digit of the tuple is one of `digits`."""
    return torch.isin(tuples, torch.tensor(digits, dtype=tuples.dtype)).all(dim=1)


def moments(digits: tuple[int, ...]) -> tuple[float, float]:
    """E[d] and E[d^2] of a digit drawn uniformly from `digits` (4.5 and 28.5 for all ten)."""
    return sum(digits) / len(digits), sum(d * d for d in digits) / len(digits)
