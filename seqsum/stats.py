"""The two intervals seqsum reports, defined once.

- `wilson(k, n)`: the Wilson score 95% interval of a proportion k/n (one run's exact-match rate, one
  pair cell). Vectorized; n = 0 gives NaN.
- `seed_interval(values)`: across seeds, the mean and a 95% bootstrap interval of the mean
  (scipy.stats.bootstrap, percentile method, fixed random state so reports are reproducible). When every
  seed gives the same value (or there is one seed) the interval is that value, never NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

Z95 = float(stats.norm.ppf(0.975))


def wilson(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper Wilson score bounds of k successes in n trials (arrays or scalars)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    # exact at the edges (rounding can leave 1e-17 off)
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == n, 1.0, high)
    return low, high


def seed_interval(values, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of per-seed values: a 95% percentile bootstrap interval of the mean.

    NaN values are dropped; no values give (nan, nan, nan).
    """
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) == 1 or np.all(x == x[0]):
        return mean, mean, mean
    res = stats.bootstrap(
        (x,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile", random_state=seed
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return mean, min(low, mean), max(high, mean)


def separated(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals (low, high) do not overlap."""
    return a[1] < b[0] or b[1] < a[0]
