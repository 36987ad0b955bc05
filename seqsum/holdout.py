"""Held-out digit pairs (`data.holdout`): parsing a spec and the longest training sequence that avoids them.
Torch-free: the config's checks use both."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from itertools import combinations

from .choices import ALL_DIGITS

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
